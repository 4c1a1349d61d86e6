package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/labctl/labctl/proto/internal/filestore"
	"github.com/labctl/labctl/proto/internal/wire"
)

// NotAvailableGet is the reply to /get while no GetHandler is set.
const NotAvailableGet = "ERROR /get (reliable UDP download) is not available yet"

// GetRequest is a /get for a file that exists in the repository.
type GetRequest struct {
	Nick   string
	Name   string
	File   *os.File // opened safely inside the repository; the handler owns it
	Size   int64
	Remote net.Addr // the client's TCP address (the UDP peer's host)
	Algo   string   // "seed", "sack" or "" (the server's default): /get <name> [seed|sack]
}

// GetHandler starts a reliable-UDP transfer and returns the reply line
// ("UDP <port> <size> <sha256>", docs/PROTOCOLS.md section 5). An error
// becomes "ERROR <err>". This is the seam for the reliable UDP download.
type GetHandler func(ctx context.Context, req GetRequest) (string, error)

// Config tunes a Server; zero fields take the defaults in doc.go.
type Config struct {
	Repo        string        // shared file folder (created if missing)
	MaxClients  int           // connections at once, joined or joining (default 100)
	JoinTimeout time.Duration // to send an acceptable nickname (default 30s)
	IdleTimeout time.Duration // to receive a whole line once joined (default 10m)
	IOTimeout   time.Duration // per read/write in a transfer or reply (default 30s)
	MinRate     int64         // bytes/s a transfer may not fall below over any RateWindow (default 4096)
	RateWindow  time.Duration // the sliding window of MinRate, and its grace period (default 10s)
	Pause       time.Duration // quiet time that ends a line sent without a newline (0: 200ms; <0: lines only)
	MaxLine     int           // longest line in bytes (default 4096)
	MaxFileSize int64         // largest upload (default 1 GiB)
	QueueBytes  int           // outbound queue per client, in bytes (default 1 MiB; see queue.go)
	UploadQuiet time.Duration // window after an upload that must stay silent (default 25ms)
	Get         GetHandler    // nil: /get answers NotAvailableGet
	Logger      *slog.Logger
	Out         io.Writer // program output: joins, leaves, public messages (nil: none)
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.JoinTimeout, 30*time.Second)
	def(&c.IdleTimeout, 10*time.Minute)
	def(&c.IOTimeout, 30*time.Second)
	def(&c.UploadQuiet, 25*time.Millisecond)
	if c.MaxClients <= 0 {
		c.MaxClients = 100
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
	if c.QueueBytes <= 0 {
		c.QueueBytes = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
}

// tooLongClosing ends a connection whose line runs past what the server
// reads to stay in step (wire.MaxDiscard).
func (s *Server) tooLongClosing() string {
	return fmt.Sprintf("ERROR line too long (limit %d bytes); closing after %d bytes", s.cfg.MaxLine, wire.MaxDiscard)
}

// maxNickTries bounds how many nicknames one connection may try.
const maxNickTries = 10

// Server is the chat server.
type Server struct {
	cfg   Config
	store *filestore.Store

	mu      sync.RWMutex
	members map[string]*member
	outMu   sync.Mutex
}

// NewServer opens the file folder.
func NewServer(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Repo == "" {
		return nil, errors.New("chat: no file folder")
	}
	store, err := filestore.Open(cfg.Repo, cfg.MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("chat: %w", err)
	}
	return &Server{cfg: cfg, store: store, members: map[string]*member{}}, nil
}

// Close releases the file folder; call it after Serve returns.
func (s *Server) Close() error { return s.store.Close() }

// Nicks returns the joined nicknames, sorted.
func (s *Server) Nicks() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	nicks := make([]string, 0, len(s.members))
	for n, m := range s.members {
		if m != nil { // a nil entry is a nickname reserved by a join in progress
			nicks = append(nicks, n)
		}
	}
	slices.Sort(nicks)
	return nicks
}

func (s *Server) println(line string) {
	s.outMu.Lock()
	fmt.Fprintln(s.cfg.Out, line)
	s.outMu.Unlock()
}

// FullMessage is the line a connection beyond MaxClients gets before the close.
const FullMessage = "ERROR server full, try later"

// Serve accepts clients on ln until ctx is cancelled (then it returns nil
// after closing every connection and waiting for their goroutines) or ln
// is closed. Serve closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.cfg.Logger.Info("chat server listening", "addr", ln.Addr(), "files", s.store.Dir())
	full := func(c net.Conn) { // cheap and bounded, on the accept loop
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(c, FullMessage+"\n")
	}
	return wire.Serve(ctx, ln, wire.ServeOptions{MaxConns: s.cfg.MaxClients, Full: full, Log: s.cfg.Logger},
		func(ctx context.Context, c net.Conn) {
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			s.handle(ctx, c)
		})
}

func (s *Server) handle(ctx context.Context, c net.Conn) {
	wc := wire.NewConn(c, s.cfg.IOTimeout)
	mr := wire.NewMessageReader(wc, s.cfg.MaxLine, s.cfg.Pause)
	log := s.cfg.Logger.With("remote", c.RemoteAddr())
	nick, err := s.join(ctx, wc, mr)
	if err != nil {
		log.Info("join failed", "err", err)
		return
	}
	m := newMember(nick, wc, s.cfg.QueueBytes)
	m.send(item{lines: []string{"* " + nick + " joined"}, reply: true}) // the newcomer's confirmation comes first
	// The room is snapshotted in the same critical section as the change,
	// so exactly those present before a join hear of it; the writer starts
	// after, so a client confirmed as joined is in the room.
	s.mu.Lock()
	s.members[nick] = m
	room := s.roomLocked(m)
	s.mu.Unlock()
	go s.writer(m, log.With("nick", nick))
	sendAll(room, "* "+nick+" joined")
	s.println("* " + nick + " joined")

	why := s.serveMember(ctx, m, mr)

	s.mu.Lock()
	delete(s.members, nick)
	room = s.roomLocked(m)
	s.mu.Unlock()
	sendAll(room, "* "+nick+" left")
	s.println("* " + nick + " left")
	// Drain what is queued (BYE included) within one IOTimeout, then close.
	wc.LimitWrite(s.cfg.IOTimeout, time.Now().Add(s.cfg.IOTimeout))
	close(m.quit)
	<-m.done
	for _, it := range m.q.take() { // the writer gave up early: release queued files
		if it.file != nil {
			it.file.Close()
		}
	}
	select {
	case <-m.kicked:
		why = m.reason
	default:
	}
	log.Info("client left", "nick", nick, "reason", why)
}

// broadcast sends line to every member but skip, from a snapshot taken
// under the lock; sends never wait.
func (s *Server) broadcast(skip *member, line string) {
	s.mu.RLock()
	room := s.roomLocked(skip)
	s.mu.RUnlock()
	sendAll(room, line)
}

// roomLocked lists the joined members but skip; s.mu is held.
func (s *Server) roomLocked(skip *member) []*member {
	room := make([]*member, 0, len(s.members))
	for _, m := range s.members {
		if m != nil && m != skip {
			room = append(room, m)
		}
	}
	return room
}

func sendAll(room []*member, line string) {
	for _, m := range room {
		m.send(item{lines: []string{line}})
	}
}

// join reads nickname lines until one is valid and free. Each gets one
// reply: an ERROR, or (from handle) the "* <nick> joined" confirmation.
func (s *Server) join(ctx context.Context, wc *wire.Conn, mr *wire.MessageReader) (string, error) {
	wc.LimitRead(s.cfg.JoinTimeout, time.Time{})
	deadline := time.Now().Add(s.cfg.JoinTimeout)
	reply := func(l string) error {
		wc.LimitWrite(s.cfg.IOTimeout, time.Time{})
		_, err := io.WriteString(wc, l+"\n")
		return err
	}
	for try := 0; try < maxNickTries; try++ {
		line, err := mr.ReadMessage(ctx, deadline)
		switch {
		case errors.Is(err, wire.ErrLineTooLong):
			if err := reply("ERROR nickname longer than " + strconv.Itoa(MaxNickLen) + " characters"); err != nil {
				return "", err
			}
			continue
		case errors.Is(err, wire.ErrDiscardLimit):
			if reply(s.tooLongClosing()) == nil {
				wire.CloseGently(wc.Conn)
			}
			return "", fmt.Errorf("read nickname: %w", err)
		case err != nil && ctx.Err() == nil && wire.IsTimeout(err):
			if reply("ERROR no nickname in time") == nil {
				wire.CloseGently(wc.Conn)
			}
			return "", fmt.Errorf("read nickname: %w", err)
		case err != nil:
			return "", fmt.Errorf("read nickname: %w", err)
		}
		if err := ValidateNick(line); err != nil {
			if err := reply("ERROR " + err.Error()); err != nil {
				return "", err
			}
			continue
		}
		if s.reserve(line) {
			return line, nil
		}
		if err := reply("ERROR nickname taken"); err != nil {
			return "", err
		}
	}
	if reply("ERROR too many nickname attempts") == nil {
		wire.CloseGently(wc.Conn)
	}
	return "", errors.New("too many nickname attempts")
}

// reserve claims nick (closing the check-then-act race between two joiners);
// handle replaces the placeholder with the member at once.
func (s *Server) reserve(nick string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.members[nick]; taken {
		return false
	}
	s.members[nick] = nil
	return true
}
