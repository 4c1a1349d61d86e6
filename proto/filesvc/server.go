package filesvc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/labctl/labctl/proto/internal/filestore"
	"github.com/labctl/labctl/proto/internal/wire"
)

// FullMessage is the whole reply to a client beyond the cap.
const FullMessage = "Server full, try later"

// Config tunes a Server; zero fields take the defaults documented in doc.go.
type Config struct {
	Repo        string        // repository folder (created if missing)
	LogPath     string        // persistent connection log; "" keeps it in memory only
	MaxClients  int           // concurrent clients admitted (default 3)
	IdleTimeout time.Duration // to receive a whole command line (default 5m)
	IOTimeout   time.Duration // per read/write during a transfer or reply (default 30s)
	MinRate     int64         // bytes/s a transfer may not fall below over any RateWindow (default 4096)
	RateWindow  time.Duration // the sliding window of MinRate, and its grace period (default 10s)
	Pause       time.Duration // quiet time that ends a command sent without a newline (0: 200ms; <0: lines only)
	MaxLine     int           // longest command line in bytes (default 4096)
	MaxFileSize int64         // largest upload (default 1 GiB)
	FullTimeout time.Duration // write deadline for the full reply (default 1s)
	UploadQuiet time.Duration // window after an upload that must stay silent (default 25ms)
	Logger      *slog.Logger  // diagnostics (default slog.Default())
	Out         io.Writer     // program output: connects, disconnects, refusals (nil: none)
}

func (c *Config) setDefaults() {
	if c.MaxClients <= 0 {
		c.MaxClients = 3
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.IOTimeout <= 0 {
		c.IOTimeout = 30 * time.Second
	}
	if c.MinRate <= 0 {
		c.MinRate = 4096
	}
	if c.RateWindow <= 0 {
		c.RateWindow = wire.DefaultRateWindow
	}
	if c.MaxLine <= 0 {
		c.MaxLine = 4096
	}
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = 1 << 30
	}
	if c.FullTimeout <= 0 {
		c.FullTimeout = time.Second
	}
	if c.UploadQuiet <= 0 {
		c.UploadQuiet = 25 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
}

// Server is the CP372 file server.
type Server struct {
	cfg   Config
	store *filestore.Store
	log   *connLog
	outMu sync.Mutex
}

// NewServer opens the repository and the connection log.
func NewServer(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Repo == "" {
		return nil, errors.New("filesvc: no repository folder")
	}
	store, err := filestore.Open(cfg.Repo, cfg.MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("filesvc: %w", err)
	}
	l, err := openConnLog(cfg.LogPath, time.Now(), cfg.Logger)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("filesvc: %w", err)
	}
	return &Server{
		cfg: cfg, store: store, log: l,
	}, nil
}

// Close releases the repository and the log; call it after Serve returns.
func (s *Server) Close() error {
	return errors.Join(s.log.close(), s.store.Close())
}

// Status is what the `status` command reports, oldest connection first.
func (s *Server) Status() []Record { return s.log.snapshot() }

func (s *Server) printf(format string, args ...any) {
	s.outMu.Lock()
	fmt.Fprintf(s.cfg.Out, format+"\n", args...)
	s.outMu.Unlock()
}

// Serve accepts clients on ln until ctx is cancelled or ln fails, then
// closes every connection and waits for the handlers. It returns nil when
// stopped by ctx. Serve closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.cfg.Logger.Info("file server listening", "addr", ln.Addr(), "repo", s.store.Dir())
	return wire.Serve(ctx, ln, wire.ServeOptions{MaxConns: s.cfg.MaxClients, Full: s.refuse, Log: s.cfg.Logger},
		func(ctx context.Context, c net.Conn) {
			name := s.log.connect(c.RemoteAddr().String(), time.Now())
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			s.handle(ctx, c, name)
		})
}

// refuse runs on the accept loop, so it must be cheap: one short write into
// an empty socket buffer under a deadline (wire.Serve then closes c).
func (s *Server) refuse(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(s.cfg.FullTimeout))
	_, _ = io.WriteString(c, FullMessage+"\n")
	s.cfg.Logger.Debug("refused client: server full", "remote", c.RemoteAddr())
}

// session is one admitted client.
type session struct {
	s    *Server
	name string
	c    *wire.Conn
	mr   *wire.MessageReader
	br   *bufio.Reader // mr's buffer, for payloads
	bw   *bufio.Writer
	log  *slog.Logger
}

func (s *Server) handle(ctx context.Context, c net.Conn, name string) {
	ss := &session{
		s: s, name: name,
		c:   wire.NewConn(c, s.cfg.IOTimeout),
		log: s.cfg.Logger.With("client", name, "remote", c.RemoteAddr()),
	}
	ss.mr = wire.NewMessageReader(ss.c, s.cfg.MaxLine, s.cfg.Pause)
	ss.br = ss.mr.Reader()
	ss.bw = bufio.NewWriterSize(ss.c, 64<<10)
	s.printf("%s connected from %s", name, c.RemoteAddr())
	why := ss.run(ctx)
	if ctx.Err() != nil {
		why = "server stopping"
	}
	s.log.disconnect(name, why, time.Now()) // no-op after exit
	c.Close()
	s.printf("%s disconnected (%s)", name, why)
	ss.log.Info("client disconnected", "reason", why)
}

// run serves commands until the client leaves; it returns why.
func (ss *session) run(ctx context.Context) string {
	if err := ss.reply(ss.name); err != nil {
		return "write failed"
	}
	cfg := &ss.s.cfg
	for ctx.Err() == nil {
		ss.c.LimitRead(cfg.IdleTimeout, time.Time{})
		line, err := ss.mr.ReadMessage(ctx, time.Now().Add(cfg.IdleTimeout))
		switch {
		case errors.Is(err, wire.ErrLineTooLong):
			if ss.reply(fmt.Sprintf("ERROR line too long (limit %d bytes)", cfg.MaxLine)) != nil {
				return "write failed"
			}
			continue
		case errors.Is(err, wire.ErrDiscardLimit):
			if ss.reply(fmt.Sprintf("ERROR line too long (limit %d bytes); closing after %d bytes", cfg.MaxLine, wire.MaxDiscard)) == nil {
				wire.CloseGently(ss.c)
			}
			return "line too long"
		case ctx.Err() != nil:
			return "server stopping"
		case errors.Is(err, io.EOF):
			return "closed by client"
		case wire.IsTimeout(err):
			_ = ss.reply("ERROR idle timeout")
			return "idle timeout"
		case err != nil:
			return "read failed: " + err.Error()
		}
		done, why := ss.command(ctx, line)
		if done {
			return why
		}
	}
	return "server stopping"
}

// command runs one line; done means the connection ends, for reason why.
func (ss *session) command(ctx context.Context, line string) (done bool, why string) {
	cmd, err := ParseCommand(line, ss.s.cfg.MaxFileSize)
	if err != nil {
		return ss.refuse(err)
	}
	var werr error
	switch cmd.Kind {
	case Echo:
		werr = ss.reply(wire.Escape(cmd.Text) + " ACK")
	case Status:
		recs := ss.s.log.snapshot()
		lines := make([]string, 0, len(recs)+1)
		for _, r := range recs {
			lines = append(lines, r.StatusLine())
		}
		werr = ss.reply(append(lines, ".")...)
	case List:
		names, err := ss.s.store.List()
		if err != nil {
			ss.log.Error("list failed", "err", err)
			werr = ss.reply("ERROR cannot list the repository")
		} else {
			werr = ss.reply(append(names, ".")...)
		}
	case Get:
		return ss.get(ctx, cmd.Name)
	case Put:
		return ss.put(ctx, cmd.Name, cmd.Size)
	case Exit:
		ss.s.log.disconnect(ss.name, "exit", time.Now()) // before BYE: status is right once BYE is read
		_ = ss.reply("BYE")
		return true, "exit"
	}
	if werr != nil {
		return true, "write failed"
	}
	return false, ""
}

// refuse answers a bad line; a put with an unknown payload length ends the
// connection since the stream can no longer be framed.
func (ss *session) refuse(err error) (bool, string) {
	var pe *ParseError
	if errors.As(err, &pe) && pe.Follow != 0 {
		if pe.Follow < 0 {
			_ = ss.reply("ERROR " + pe.Reason + "; closing, the upload cannot be skipped")
			return true, "bad upload header"
		}
		if done, why := ss.skip(pe.Follow); done {
			return done, why
		}
	}
	if ss.reply("ERROR "+reason(err)) != nil {
		return true, "write failed"
	}
	return false, ""
}

func (ss *session) get(_ context.Context, name string) (bool, string) {
	f, size, err := ss.s.store.Open(name)
	if err != nil {
		ss.log.Info("get refused", "name", name, "err", err)
		if ss.reply("ERROR "+filestore.Reason(err)) != nil {
			return true, "write failed"
		}
		return false, ""
	}
	defer f.Close()
	cfg := &ss.s.cfg
	defer ss.c.LimitWrite(cfg.IOTimeout, time.Time{})
	if ss.reply("START "+strconv.FormatInt(size, 10)) != nil {
		return true, "write failed"
	}
	rw := wire.NewRateWriter(ss.c, ss.c, ss.rate())
	if n, err := io.CopyN(rw, f, size); err != nil {
		// The header promised size bytes; the stream cannot be repaired.
		ss.log.Warn("get aborted", "name", name, "sent", n, "size", size, "err", err)
		return true, "get aborted"
	}
	if ss.reply("END") != nil {
		return true, "write failed"
	}
	ss.log.Info("get", "name", name, "size", size)
	return false, ""
}

func (ss *session) put(_ context.Context, name string, size int64) (bool, string) {
	cfg := &ss.s.cfg
	up, err := ss.s.store.Begin(name, size)
	if err != nil {
		ss.log.Error("put: cannot start", "name", name, "err", err)
		// The payload is on its way: drop it to stay in step.
		if done, why := ss.skip(size); done {
			return done, why
		}
		return ss.replyOrDone("ERROR " + filestore.Reason(err))
	}
	defer ss.c.LimitRead(cfg.IOTimeout, time.Time{})
	if _, err := up.ReadFrom(wire.NewRateReader(ss.br, ss.c, ss.rate())); err != nil {
		up.Abort()
		ss.log.Info("put: upload cut short", "name", name, "err", err)
		return ss.cutShort(err)
	}
	if wire.ExtraBytes(ss.br, ss.c, cfg.UploadQuiet) {
		up.Abort()
		_ = ss.reply("ERROR upload longer than announced; closing")
		return true, "upload longer than announced"
	}
	sum, err := up.Commit()
	if err != nil {
		ss.log.Error("put: commit failed", "name", name, "err", err)
		return ss.replyOrDone("ERROR cannot store the file")
	}
	ss.log.Info("put", "name", name, "size", size, "sha256", sum)
	return ss.replyOrDone("OK " + sum)
}

// rate is the trickle rule for one payload; it also sets the per-read and
// per-write silence limit, IOTimeout, for the transfer.
func (ss *session) rate() wire.MinRate {
	ss.c.LimitRead(ss.s.cfg.IOTimeout, time.Time{})
	ss.c.LimitWrite(ss.s.cfg.IOTimeout, time.Time{})
	return wire.MinRate{Rate: ss.s.cfg.MinRate, Window: ss.s.cfg.RateWindow}
}

// skip reads and drops the n payload bytes of a refused upload, under the
// same trickle rule as an accepted one.
func (ss *session) skip(n int64) (bool, string) {
	defer ss.c.LimitRead(ss.s.cfg.IOTimeout, time.Time{})
	if _, err := io.CopyN(io.Discard, wire.NewRateReader(ss.br, ss.c, ss.rate()), n); err != nil {
		ss.log.Info("refused upload cut short", "err", err)
		return ss.cutShort(err)
	}
	return false, ""
}

// cutShort ends the connection after a payload that stopped or trickled.
func (ss *session) cutShort(err error) (bool, string) {
	cfg := &ss.s.cfg
	switch {
	case errors.Is(err, wire.ErrTooSlow):
		if ss.reply(fmt.Sprintf("ERROR upload too slow (under %d bytes/s over %v); closing", cfg.MinRate, cfg.RateWindow)) == nil {
			wire.CloseGently(ss.c)
		}
		return true, "upload too slow"
	case wire.IsTimeout(err):
		if ss.reply("ERROR upload timed out") == nil {
			wire.CloseGently(ss.c)
		}
	}
	return true, "upload cut short"
}

func (ss *session) replyOrDone(line string) (bool, string) {
	if ss.reply(line) != nil {
		return true, "write failed"
	}
	return false, ""
}

// reply writes lines and flushes them.
func (ss *session) reply(lines ...string) error {
	for _, l := range lines {
		if _, err := ss.bw.WriteString(l + "\n"); err != nil {
			return err
		}
	}
	return ss.bw.Flush()
}
