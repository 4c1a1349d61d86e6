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
)

// Server is the stop-and-wait receiver. The zero value is usable.
type Server struct {
	Out          io.Writer     // program output: "Server is started", then each delivered message
	Logger       *slog.Logger  // diagnostics
	MaxSessions  int           // sessions served at once (the seed's max_threads)
	IdleTimeout  time.Duration // a session with no frame for this long ends
	WriteTimeout time.Duration // how long one TCP reply may take to send
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
	return srv
}

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

	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, srv.MaxSessions)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		conn, err := wire.Accept(ctx, ln, srv.log)
		if err != nil {
			return nil // ctx is done or ln closed: a clean stop
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			srv.serveConn(ctx, conn)
		}()
	}
}

func (srv *server) serveConn(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	log := srv.log.With("net", "tcp", "remote", conn.RemoteAddr().String())
	log.Info("session started")
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	lr := newLineReader(conn, MaxFrame)
	var sess session
	for {
		if err := conn.SetReadDeadline(time.Now().Add(srv.IdleTimeout)); err != nil {
			return
		}
		if ctx.Err() != nil { // after setting the deadline: see AfterFunc above
			srv.fail(conn, log, "ERROR server shutting down")
			return
		}
		line, err := lr.ReadLine()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			srv.fail(conn, log, "ERROR server shutting down")
			return
		case errors.Is(err, ErrFrameLong):
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
			srv.println(v.msg)
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

// fail sends one ERROR line and drains unread input for a bounded time, so
// that closing does not reset the connection before the client reads it.
func (srv *server) fail(conn net.Conn, log *slog.Logger, line string) {
	log.Warn("session dropped", "reply", line)
	if writeLine(conn, srv.WriteTimeout, line) != nil {
		return
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	if conn.SetReadDeadline(time.Now().Add(500*time.Millisecond)) == nil {
		_, _ = io.CopyN(io.Discard, conn, 4<<20)
	}
}
