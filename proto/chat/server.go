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
	MinRate     int64         // average bytes/s a transfer may not fall below (default 4096)
	MaxLine     int           // longest line in bytes (default 4096)
	MaxFileSize int64         // largest upload (default 1 GiB)
	QueueLen    int           // outbound queue per client, in items (default 1024)
	QueueWait   time.Duration // how long a sender waits for room in a full queue (default 2s)
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
	def(&c.QueueWait, 2*time.Second)
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
	for {
		c, err := wire.Accept(ctx, ln, s.cfg.Logger)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("chat: accept: %w", err)
		}
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
// joined; everyone else enqueues. q is never closed (senders work from a
// snapshot of the room and may race with a leave): quit ends the writer.
type member struct {
	nick string
	c    *wire.Conn
	q    chan item
	wait time.Duration

	kickOnce sync.Once
	kicked   chan struct{}
	reason   string
	quit     chan struct{} // closed by the handler when the client leaves
	done     chan struct{} // closed when the writer has finished
}

// send enqueues it. A full queue gets up to m.wait to make room (the sender
// waits: that is the room's flow control); a client that makes no room in
// that time reads too slowly for the room and is disconnected.
func (m *member) send(it item) {
	select {
	case m.q <- it:
		return
	default:
	}
	t := time.NewTimer(m.wait)
	defer t.Stop()
	select {
	case m.q <- it:
		return
	case <-m.done:
	case <-t.C:
		m.kick("outbound queue overflow (reading too slowly)")
	}
	if it.file != nil {
		it.file.Close()
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
	m := &member{nick: nick, c: wc, q: make(chan item, s.cfg.QueueLen), wait: s.cfg.QueueWait,
		kicked: make(chan struct{}), quit: make(chan struct{}), done: make(chan struct{})}
	m.q <- item{lines: []string{"* " + nick + " joined"}} // the newcomer's confirmation comes first
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

	why := s.serveMember(ctx, m, br)

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
	for len(m.q) > 0 { // the writer gave up early: release queued files
		if it := <-m.q; it.file != nil {
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

// broadcast sends line to every member but skip, outside the lock: a send
// may wait for a slow queue and must not hold up joins and leaves.
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

func (s *Server) writer(m *member, log *slog.Logger) {
	defer close(m.done)
	defer m.c.Close()
	bw := bufio.NewWriterSize(m.c, 64<<10)
	for {
		var it item
		select {
		case it = <-m.q:
		case <-m.kicked:
			s.lastWords(m)
			return
		case <-m.quit:
			for len(m.q) > 0 { // flush what was queued before the leave
				if err := s.write(m, bw, <-m.q); err != nil {
					return
				}
			}
			_ = bw.Flush()
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
