package chat

import (
	"bufio"
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
	MinRate     int64         // average bytes/s a transfer may not fall below (default 4096)
	MaxLine     int           // longest line in bytes (default 4096)
	MaxFileSize int64         // largest upload (default 1 GiB)
	QueueLen    int           // outbound queue per client, in items (default 1024)
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
	if c.MaxLine <= 0 {
		c.MaxLine = 4096
	}
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = 1 << 30
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 1024
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
}

// maxNickTries bounds how many nicknames one connection may try.
const maxNickTries = 10

// Server is the chat server.
type Server struct {
	cfg   Config
	store *filestore.Store
	slots chan struct{}

	mu      sync.RWMutex
	members map[string]*member
	conns   map[net.Conn]struct{}
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
	return &Server{cfg: cfg, store: store, slots: make(chan struct{}, cfg.MaxClients),
		members: map[string]*member{}, conns: map[net.Conn]struct{}{}}, nil
}

// Close releases the file folder; call it after Serve returns.
func (s *Server) Close() error { return s.store.Close() }

// Nicks returns the joined nicknames, sorted.
func (s *Server) Nicks() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	nicks := make([]string, 0, len(s.members))
	for n := range s.members {
		nicks = append(nicks, n)
	}
	slices.Sort(nicks)
	return nicks
}

func (s *Server) println(line string) {
	s.outMu.Lock()
	fmt.Fprintln(s.cfg.Out, line)
	s.outMu.Unlock()
}

// Serve accepts clients on ln until ctx is cancelled (then it returns nil
// after closing every connection) or ln fails. Serve closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer func() {
		s.closeAll()
		wg.Wait()
	}()
	s.cfg.Logger.Info("chat server listening", "addr", ln.Addr(), "files", s.store.Dir())
	backoff := time.Duration(0)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !errors.Is(err, net.ErrClosed) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.cfg.Logger.Warn("accept failed, retrying", "err", err, "in", backoff)
				select {
				case <-time.After(backoff):
					continue
				case <-ctx.Done():
					return nil
				}
			}
			return fmt.Errorf("chat: accept: %w", err)
		}
		backoff = 0
		select {
		case s.slots <- struct{}{}:
		default: // cheap and bounded, on the accept loop
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(c, "ERROR server full, try later\n")
			c.Close()
			continue
		}
		s.track(c, true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-s.slots }()
			defer s.track(c, false)
			defer c.Close()
			s.handle(ctx, c)
		}()
	}
}

func (s *Server) track(c net.Conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// item is one unit of a client's outbound queue: lines, or a file.
type item struct {
	lines []string
	file  *os.File // /download: written as FILE <name> <size> + bytes
	name  string
	size  int64
}

// member is a joined client. Only its writer goroutine writes to c once
// joined; everyone else enqueues.
type member struct {
	nick string
	c    *wire.Conn
	q    chan item

	kickOnce sync.Once
	kicked   chan struct{}
	reason   string
	done     chan struct{} // closed when the writer has finished
}

// send enqueues it without ever blocking; a full queue means the client
// reads too slowly for the room, and it is disconnected.
func (m *member) send(it item) {
	select {
	case m.q <- it:
	default:
		if it.file != nil {
			it.file.Close()
		}
		m.kick("outbound queue overflow (reading too slowly)")
	}
}

func (m *member) kick(reason string) {
	m.kickOnce.Do(func() {
		m.reason = reason
		close(m.kicked)
		m.c.LimitWrite(0, time.Now()) // unblock the writer at once
		_ = m.c.Conn.SetWriteDeadline(time.Now())
	})
}

func (s *Server) handle(ctx context.Context, c net.Conn) {
	wc := wire.NewConn(c, s.cfg.IOTimeout)
	br := bufio.NewReaderSize(wc, 64<<10)
	log := s.cfg.Logger.With("remote", c.RemoteAddr())
	nick, err := s.join(wc, br)
	if err != nil {
		log.Info("join failed", "err", err)
		return
	}
	m := &member{nick: nick, c: wc, q: make(chan item, s.cfg.QueueLen), kicked: make(chan struct{}), done: make(chan struct{})}
	go s.writer(m, log.With("nick", nick))
	s.mu.Lock()
	s.members[nick] = m
	s.broadcastLocked(nil, "* "+nick+" joined") // to the newcomer too: its confirmation
	s.mu.Unlock()
	s.println("* " + nick + " joined")

	why := s.serveMember(ctx, m, br)

	s.mu.Lock()
	delete(s.members, nick)
	s.broadcastLocked(nil, "* "+nick+" left")
	s.mu.Unlock()
	s.println("* " + nick + " left")
	// Drain what is queued (BYE included) within one IOTimeout, then close.
	wc.LimitWrite(s.cfg.IOTimeout, time.Now().Add(s.cfg.IOTimeout))
	close(m.q)
	<-m.done
	select {
	case <-m.kicked:
		why = m.reason
	default:
	}
	log.Info("client left", "nick", nick, "reason", why)
}

// join reads nickname lines until one is valid and free.
func (s *Server) join(wc *wire.Conn, br *bufio.Reader) (string, error) {
	wc.LimitRead(s.cfg.JoinTimeout, time.Now().Add(s.cfg.JoinTimeout))
	reply := func(l string) error {
		_, err := io.WriteString(wc, l+"\n")
		return err
	}
	for try := 0; try < maxNickTries; try++ {
		line, err := wire.ReadLine(br, s.cfg.MaxLine)
		if errors.Is(err, wire.ErrLineTooLong) {
			if err := reply("ERROR nickname longer than " + strconv.Itoa(MaxNickLen) + " characters"); err != nil {
				return "", err
			}
			continue
		}
		if err != nil {
			if wire.IsTimeout(err) {
				_ = reply("ERROR no nickname in time")
			}
			return "", fmt.Errorf("read nickname: %w", err)
		}
		if err := ValidateNick(line); err != nil {
			if err := reply("ERROR " + err.Error()); err != nil {
				return "", err
			}
			continue
		}
		s.mu.RLock()
		_, taken := s.members[line]
		s.mu.RUnlock()
		if taken {
			if err := reply("ERROR nickname taken"); err != nil {
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
	_ = reply("ERROR too many nickname attempts")
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

// broadcastLocked enqueues line for every member except skip; s.mu is held.
func (s *Server) broadcastLocked(skip *member, line string) {
	for _, m := range s.members {
		if m != nil && m != skip {
			m.send(item{lines: []string{line}})
		}
	}
}

func (s *Server) writer(m *member, log *slog.Logger) {
	defer close(m.done)
	defer func() {
		m.c.Close()
		for it := range m.q { // release files still queued
			if it.file != nil {
				it.file.Close()
			}
		}
	}()
	bw := bufio.NewWriterSize(m.c, 64<<10)
	for {
		var it item
		var ok bool
		select {
		case it, ok = <-m.q:
		case <-m.kicked:
			s.lastWords(m)
			return
		}
		if !ok {
			return
		}
		if err := s.write(m, bw, it); err != nil {
			select {
			case <-m.kicked:
				s.lastWords(m)
			default:
				log.Info("write failed", "err", err)
			}
			return
		}
	}
}

// lastWords tries, briefly, to tell a kicked client why.
func (s *Server) lastWords(m *member) {
	m.c.LimitWrite(200*time.Millisecond, time.Now().Add(200*time.Millisecond))
	_, _ = io.WriteString(m.c, "ERROR disconnected: "+m.reason+"\n")
}

func (s *Server) write(m *member, bw *bufio.Writer, it item) error {
	if it.file == nil {
		for _, l := range it.lines {
			if _, err := bw.WriteString(l + "\n"); err != nil {
				return err
			}
		}
		if len(m.q) > 0 { // more to come: let them share a syscall
			return nil
		}
		return bw.Flush()
	}
	defer it.file.Close()
	m.c.LimitWrite(s.cfg.IOTimeout, wire.TransferCap(it.size, s.cfg.IOTimeout, s.cfg.MinRate))
	defer m.c.LimitWrite(s.cfg.IOTimeout, time.Time{})
	if _, err := fmt.Fprintf(bw, "FILE %s %d\n", it.name, it.size); err != nil {
		return err
	}
	if _, err := io.CopyN(bw, it.file, it.size); err != nil {
		return fmt.Errorf("send %q: %w", it.name, err)
	}
	return bw.Flush()
}
