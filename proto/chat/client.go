package chat

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labctl/labctl/proto/internal/filestore"
	"github.com/labctl/labctl/proto/internal/progress"
	"github.com/labctl/labctl/proto/internal/wire"
)

// ClientConfig tunes a Client.
type ClientConfig struct {
	DownloadDir string        // where FILE transfers are saved (default ".")
	Timeout     time.Duration // per read/write of a transfer, and to wait for replies (default 30s)
	WaitTimeout time.Duration // for the script command /wait (default 10s)
	MaxLine     int           // longest line sent, in bytes (default 4096, the server's default)
	Pause       time.Duration // a received line without a newline ends after this quiet time (0: 200ms; <0: lines only)
	Delay       time.Duration // pause between input lines (scripts; default none)
	Diag        io.Writer     // where Run reports failed script commands (default: out)
	// Progress, when set, gets a bar per transfer.
	Progress func(desc string, total int64) io.WriteCloser
	UDP      UDPConfig // /get: the reliable UDP download (get.go)
}

// Client is a chat connection: one goroutine prints what arrives (and saves
// downloads) while the caller sends lines.
type Client struct {
	cfg ClientConfig
	raw net.Conn
	c   *wire.Conn
	mr  *wire.MessageReader
	br  *bufio.Reader // mr's buffer, for download bytes
	out io.Writer

	mu        sync.Mutex
	outMu     sync.Mutex
	history   []string   // lines received (escaped), for /wait
	pending   []*request // commands sent, oldest first, awaiting their reply
	joined    bool
	lastWords string        // the last ERROR no command was waiting for (the server's reason to close)
	base      int           // index of history[0] (old lines are dropped)
	notify    chan struct{} // closed and replaced on each new line
	ended     chan struct{} // closed when the reader stops
	readErr   error
}

// maxReceived is the longest line the client takes from a server.
const maxReceived = 1 << 20

// historyMax bounds the lines a client keeps for /wait.
const historyMax = 10000

// Dial connects to addr; what arrives is printed to out.
func Dial(ctx context.Context, addr string, cfg ClientConfig, out io.Writer) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %q: %w", addr, err)
	}
	return NewClient(conn, cfg, out), nil
}

// NewClient starts the reader on conn.
func NewClient(conn net.Conn, cfg ClientConfig, out io.Writer) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.WaitTimeout <= 0 {
		cfg.WaitTimeout = 10 * time.Second
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = 4096
	}
	if cfg.DownloadDir == "" {
		cfg.DownloadDir = "."
	}
	if cfg.Diag == nil {
		cfg.Diag = out
	}
	wc := wire.NewConn(conn, cfg.Timeout)
	mr := wire.NewMessageReader(wc, maxReceived, cfg.Pause)
	c := &Client{cfg: cfg, raw: conn, c: wc, mr: mr, br: mr.Reader(), out: out,
		notify: make(chan struct{}), ended: make(chan struct{})}
	go c.read()
	return c
}

// Close drops the connection.
func (c *Client) Close() error { return c.raw.Close() }

// Done is closed when the server has closed the connection (or it failed).
func (c *Client) Done() <-chan struct{} { return c.ended }

func (c *Client) print(line string) {
	c.outMu.Lock()
	fmt.Fprintln(c.out, line)
	c.outMu.Unlock()
}

// read prints every line that arrives and saves FILE transfers. It tells
// replies from chat by the framing alone (docs/PROTOCOLS.md section 4)
// and hands each reply to the oldest command still waiting for one. The
// reader never times out on an idle chat; the per-read timeout applies to
// payloads. Nothing received is printed raw: Printable first.
func (c *Client) read() {
	defer close(c.ended)
	inList := false
	for {
		c.c.LimitRead(365*24*time.Hour, time.Time{})
		line, err := c.mr.ReadMessage(context.Background(), time.Time{})
		if errors.Is(err, wire.ErrLineTooLong) || errors.Is(err, wire.ErrDiscardLimit) {
			c.show("ERROR received a line over 1 MiB (dropped)")
			continue
		}
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			return
		}
		shown := Printable(line)
		switch {
		case !c.isJoined():
			c.show(shown)
			if line == "* "+c.joining()+" joined" {
				c.setJoined()
				c.answer(shown)
			} else if Classify(line) == ReplyLine {
				c.answer(shown)
			}
		case inList: // every line up to "." is an entry, whatever it looks like
			c.show(shown)
			if line == "." {
				inList = false
				c.answer(shown)
			}
		case Classify(line) == ChatLine:
			c.show(shown)
		case Classify(line) == EntryLine && c.awaitsListing():
			c.show(shown)
			if line == "." {
				c.answer(shown)
			} else {
				inList = true
			}
		case Classify(line) == EntryLine: // no listing is due: a line of another server's making
			c.show(shown)
		case strings.HasPrefix(line, "FILE ") && c.awaitsFile():
			c.show(shown)
			msg, err := c.save(strings.TrimPrefix(line, "FILE "))
			if err != nil {
				msg = "ERROR download: " + err.Error()
				c.show(msg)
				c.answer(msg)
				c.raw.Close() // out of step with the stream
				continue
			}
			c.show(msg)
			c.answer(msg)
		default:
			c.show(shown)
			c.answer(shown)
		}
	}
}

// show prints a line and records it for /wait.
func (c *Client) show(line string) {
	c.print(line)
	c.record(line)
}

func (c *Client) isJoined() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.joined
}

func (c *Client) setJoined() {
	c.mu.Lock()
	c.joined = true
	c.mu.Unlock()
}

// joining is the nickname of the oldest pending nickname line.
func (c *Client) joining() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return ""
	}
	return c.pending[0].nick
}

// awaitsListing says whether the oldest pending request is a /who or /files.
func (c *Client) awaitsListing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) > 0 && c.pending[0].listing
}

// awaitsFile says whether the oldest pending request is a /download.
func (c *Client) awaitsFile() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) > 0 && c.pending[0].file
}

// maxPending bounds the commands sent whose replies have not arrived.
const maxPending = 1024

// request is a line sent that the server answers with exactly one reply.
type request struct {
	nick    string      // a nickname line: its confirmation is "* <nick> joined"
	listing bool        // /who or /files: the reply may be a listing
	file    bool        // /download: the reply may be a FILE header and bytes
	reply   chan string // buffered: the reader never blocks on it
}

func commandWord(line string) string {
	word, _, _ := strings.Cut(strings.TrimSpace(line), " ")
	return word
}

// expect registers a request before its line is written (the reply may
// arrive before the write returns): a nickname line (nick set) or a
// command line.
func (c *Client) expect(nick, line string) (*request, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) >= maxPending {
		return nil, fmt.Errorf("%d commands still await their replies", len(c.pending))
	}
	w := commandWord(line)
	r := &request{nick: nick, listing: nick == "" && (w == "/who" || w == "/files"),
		file: nick == "" && w == "/download", reply: make(chan string, 1)}
	c.pending = append(c.pending, r)
	return r, nil
}

// answer hands a reply to the oldest pending request; a reply nobody
// asked for (an ERROR before a close, say) is only printed.
func (c *Client) answer(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		if strings.HasPrefix(line, "ERROR ") {
			c.lastWords = line
		}
		return
	}
	r := c.pending[0]
	c.pending = c.pending[1:]
	r.reply <- line
}

// wait returns the reply to r.
func (c *Client) wait(ctx context.Context, r *request) (string, error) {
	t := time.NewTimer(c.cfg.Timeout)
	defer t.Stop()
	select {
	case l := <-r.reply:
		return l, nil
	case <-c.ended:
		select {
		case l := <-r.reply:
			return l, nil
		default:
		}
		c.mu.Lock()
		last := c.lastWords
		c.mu.Unlock()
		if last != "" {
			return "", fmt.Errorf("connection closed after %q", last)
		}
		return "", errors.New("connection closed")
	case <-t.C:
		return "", fmt.Errorf("no reply within %v", c.cfg.Timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// save receives the bytes announced by "FILE <name> <size>".
func (c *Client) save(header string) (string, error) {
	i := strings.LastIndexByte(header, ' ')
	if i < 0 {
		return "", fmt.Errorf("bad FILE line %q", header)
	}
	name := header[:i]
	size, err := wire.ParseSize(header[i+1:], math.MaxInt64)
	if err != nil {
		return "", err
	}
	store, err := filestore.Open(c.cfg.DownloadDir, math.MaxInt64)
	if err != nil {
		return "", err
	}
	defer store.Close()
	up, err := store.Begin(name, size) // validates the server's name too
	if err != nil {
		return "", err
	}
	c.c.LimitRead(c.cfg.Timeout, time.Time{}) // also clears a pause deadline the reader left
	var r io.Reader = c.br
	if c.cfg.Progress != nil {
		b := c.cfg.Progress("download "+name, size)
		defer b.Close()
		r = io.TeeReader(r, b)
	}
	if _, err := up.ReadFrom(r); err != nil {
		up.Abort()
		return "", err
	}
	sum, err := up.Commit()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("saved %s (%d bytes, sha256 %s)", filepath.Join(c.cfg.DownloadDir, name), size, sum), nil
}

func (c *Client) record(line string) {
	c.mu.Lock()
	c.history = append(c.history, line)
	if len(c.history) > historyMax {
		drop := len(c.history) - historyMax/2
		c.history = append([]string(nil), c.history[drop:]...)
		c.base += drop
	}
	close(c.notify)
	c.notify = make(chan struct{})
	c.mu.Unlock()
}

// mark is a position in the received lines.
func (c *Client) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base + len(c.history)
}

// await waits until a line received at or after position from matches; it
// returns the line and the position after it.
func (c *Client) await(ctx context.Context, from int, timeout time.Duration, match func(string) bool) (string, int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for i := max(from-c.base, 0); i < len(c.history); i++ {
			if match(c.history[i]) {
				l := c.history[i]
				c.mu.Unlock()
				return l, c.base + i + 1, nil
			}
		}
		from = c.base + len(c.history)
		notify := c.notify
		c.mu.Unlock()
		select {
		case <-notify:
		case <-c.ended:
			return "", from, errors.New("connection closed")
		case <-deadline.C:
			return "", from, fmt.Errorf("nothing matching within %v", timeout)
		case <-ctx.Done():
			return "", from, ctx.Err()
		}
	}
}

func (c *Client) sendRaw(s string) error {
	c.c.LimitWrite(c.cfg.Timeout, time.Time{})
	if _, err := io.WriteString(c.c, s); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// Command sends a command line (IsCommand) and returns its reply: the
// reply line, "." for a listing (its entries are printed), or for a FILE
// the "saved …" or "ERROR download: …" line. It is how a caller reads a
// reply by the framing, e.g. /get's "UDP <port> <size> <sha256>".
func (c *Client) Command(ctx context.Context, line string) (string, error) {
	if !IsCommand(line) || strings.ContainsAny(line, "\n") {
		return "", fmt.Errorf("%q is not a command line", line)
	}
	if len(line) > c.cfg.MaxLine {
		return "", fmt.Errorf("line of %d bytes not sent: over the %d-byte limit", len(line), c.cfg.MaxLine)
	}
	r, err := c.expect("", line)
	if err != nil {
		return "", err
	}
	if err := c.sendRaw(line + "\n"); err != nil {
		return "", fmt.Errorf("%w: %w", errSend, err)
	}
	return c.wait(ctx, r)
}

// IsCommand says whether the server answers line (as typed, without its
// line ending) with exactly one reply: a line starting with "/" but not
// "//". A message line gets no reply.
func IsCommand(line string) bool {
	return strings.TrimSpace(line) != "" && strings.HasPrefix(line, "/") && !strings.HasPrefix(line, "//")
}

// Send sends one line as typed. A command's reply is awaited by the
// reader (and handed to nobody); a line the server would refuse without
// it being a command (over MaxLine, or holding a line break) is refused
// here, so every reply is matched to its command.
func (c *Client) Send(line string) error {
	if strings.ContainsAny(line, "\n") {
		return errors.New("a line may not contain a line break")
	}
	if len(line) > c.cfg.MaxLine {
		return fmt.Errorf("line of %d bytes not sent: over the %d-byte limit", len(line), c.cfg.MaxLine)
	}
	if IsCommand(line) {
		if _, err := c.expect("", line); err != nil {
			return err
		}
	}
	if err := c.sendRaw(line + "\n"); err != nil {
		return fmt.Errorf("%w: %w", errSend, err)
	}
	return nil
}

// Join sends nick and waits for "* <nick> joined" (the server's confirmation)
// or an ERROR, which is returned.
func (c *Client) Join(ctx context.Context, nick string) error {
	if strings.ContainsAny(nick, "\r\n") {
		return fmt.Errorf("join as %q: a nickname is one line", nick)
	}
	r, err := c.expect(nick, "")
	if err != nil {
		return fmt.Errorf("join as %q: %w", nick, err)
	}
	if err := c.sendRaw(nick + "\n"); err != nil {
		return err
	}
	l, err := c.wait(ctx, r)
	if err != nil {
		return fmt.Errorf("join as %q: %w", nick, err)
	}
	if l != "* "+nick+" joined" {
		return fmt.Errorf("join as %q: %s", nick, l)
	}
	return nil
}

// Upload sends the local file at path as name (default: its base name) and
// waits for the OK, checking its SHA-256.
func (c *Client) Upload(ctx context.Context, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		return fmt.Errorf("upload: %q is not a readable regular file", path)
	}
	if name == "" {
		name = filepath.Base(path)
	}
	if err := ValidateFileName(name); err != nil {
		return fmt.Errorf("upload %q: %w", name, err)
	}
	size := info.Size()
	r, err := c.expect("", "/upload")
	if err != nil {
		return fmt.Errorf("upload %q: %w", name, err)
	}
	c.c.LimitWrite(c.cfg.Timeout, time.Time{})
	if _, err := io.WriteString(c.c, "/upload "+name+" "+strconv.FormatInt(size, 10)+"\n"); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	h := sha256.New()
	w := io.MultiWriter(c.c, h)
	if c.cfg.Progress != nil {
		b := c.cfg.Progress("upload "+name, size)
		w = io.MultiWriter(w, b)
		defer b.Close()
	}
	if _, err := io.CopyN(w, f, size); err != nil {
		return fmt.Errorf("upload %q: %w", name, err)
	}
	l, err := c.wait(ctx, r)
	if err != nil {
		return fmt.Errorf("upload %q: %w", name, err)
	}
	if strings.HasPrefix(l, "ERROR ") {
		return &ServerError{Line: l}
	}
	if want := "OK " + hex.EncodeToString(h.Sum(nil)); l != want {
		return fmt.Errorf("upload %q: server replied %q, want %q", name, l, want)
	}
	return nil
}

// ServerError is an ERROR line in reply to our request.
type ServerError struct{ Line string }

func (e *ServerError) Error() string { return "server: " + e.Line }

// Quit sends /quit and waits for the server to close the connection.
func (c *Client) Quit(ctx context.Context) error {
	if err := c.Send("/quit"); err != nil {
		return err
	}
	select {
	case <-c.ended:
	case <-time.After(c.cfg.Timeout):
	case <-ctx.Done():
	}
	return c.Close()
}

// TerminalProgress returns a ClientConfig.Progress drawing bars on w, or
// nil when disabled or w is not a terminal.
func TerminalProgress(w *os.File, enabled bool) func(desc string, total int64) io.WriteCloser {
	return progress.For(w, enabled)
}
