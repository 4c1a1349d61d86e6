package stopwait

import (
	"context"
	"errors"
	"fmt"
	"github.com/labctl/labctl/proto/internal/wire"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Defaults for the zero values of Server's fields.
const (
	DefaultMaxSessions  = 16
	DefaultIdleTimeout  = 60 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	// DefaultEndedAge is how long a UDP session that ended by TCHAU is
	// remembered, so that a late duplicate of one of its frames is never
	// delivered again (see the package documentation for why it is safe).
	DefaultEndedAge = 2 * time.Minute
	// DefaultMaxEnded bounds the ended sessions remembered at once (about
	// 100 bytes each: 6.5 MB). At the bound no new UDP session opens until
	// the oldest record ages out; no record is ever dropped early.
	DefaultMaxEnded = 1 << 16
	DefaultPause    = wire.DefaultPause // quiet time that ends a TCP frame sent without a newline
)

// Server is the stop-and-wait receiver. The zero value is usable.
type Server struct {
	Out          io.Writer     // program output: "Server is started", then each delivered message
	Logger       *slog.Logger  // diagnostics
	MaxSessions  int           // sessions served at once (the seed's max_threads)
	IdleTimeout  time.Duration // a session with no frame for this long ends
	WriteTimeout time.Duration // how long one TCP reply may take to send
	Pause        time.Duration // TCP: quiet time that ends a frame without a newline (0: DefaultPause; <0: lines only)
	EndedAge     time.Duration // UDP: how long an ended session is remembered (default DefaultEndedAge)
	MaxEnded     int           // UDP: ended sessions remembered at once (default DefaultMaxEnded)
}

type server struct {
	Server
	log *slog.Logger
	mu  sync.Mutex // keeps output lines whole
}

func (s *Server) withDefaults() *server {
	srv := &server{Server: *s, log: s.Logger}
	if srv.Out == nil {
		srv.Out = io.Discard
	}
	if srv.log == nil {
		srv.log = slog.Default()
	}
	if srv.MaxSessions <= 0 {
		srv.MaxSessions = DefaultMaxSessions
	}
	if srv.IdleTimeout <= 0 {
		srv.IdleTimeout = DefaultIdleTimeout
	}
	if srv.WriteTimeout <= 0 {
		srv.WriteTimeout = DefaultWriteTimeout
	}
	if srv.EndedAge <= 0 {
		srv.EndedAge = DefaultEndedAge
	}
	if srv.MaxEnded <= 0 {
		srv.MaxEnded = DefaultMaxEnded
	}
	return srv
}

// deliver prints one delivered message on one line: control characters
// (a `\n` included) and invalid UTF-8 escaped by wire.Escape.
func (srv *server) deliver(msg string) { srv.println(wire.Escape(msg)) }

func (srv *server) println(s string) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	fmt.Fprintln(srv.Out, s)
}

// Serve runs TCP sessions, one per connection, until ctx is cancelled. At
// MaxSessions it stops accepting until a session ends. It closes ln and
// every connection before it returns; a clean stop returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := s.withDefaults()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()
	srv.println("Server is started")
	srv.log.Info("listening", "net", "tcp", "addr", ln.Addr().String())

	return wire.Serve(ctx, ln, wire.ServeOptions{MaxConns: srv.MaxSessions, Log: srv.log}, srv.serveConn)
}

func (srv *server) serveConn(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	log := srv.log.With("net", "tcp", "remote", conn.RemoteAddr().String())
	log.Info("session started")
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	mr := wire.NewMessageReader(conn, MaxFrame, srv.Pause)
	var sess session
	for {
		line, err := mr.ReadMessage(ctx, time.Now().Add(srv.IdleTimeout))
		switch {
		case err == nil:
		case ctx.Err() != nil:
			srv.fail(conn, log, "ERROR server shutting down")
			return
		case errors.Is(err, ErrFrameLong), errors.Is(err, wire.ErrDiscardLimit):
			srv.fail(conn, log, fmt.Sprintf("ERROR frame too long (max %d bytes)", MaxFrame))
			return
		case isTimeout(err):
			srv.fail(conn, log, fmt.Sprintf("ERROR idle timeout (no frame within %v)", srv.IdleTimeout))
			return
		default:
			log.Info("session ended", "reason", err, "next_seq", sess.expected)
			return
		}
		v := sess.handle(line)
		if v.deliver {
			srv.deliver(v.msg)
		}
		log.Debug("frame", "reply", v.reply)
		if err := writeLine(conn, srv.WriteTimeout, v.reply); err != nil {
			log.Info("session ended", "reason", err)
			return
		}
		if v.end {
			log.Info("session ended", "reason", "TCHAU", "delivered", sess.expected)
			return
		}
	}
}

// fail sends one ERROR line and closes gently, so that the close does not
// reset the connection before the client reads it.
func (srv *server) fail(conn net.Conn, log *slog.Logger, line string) {
	log.Warn("session dropped", "reply", line)
	if writeLine(conn, srv.WriteTimeout, line) != nil {
		return
	}
	wire.CloseGently(conn)
}
