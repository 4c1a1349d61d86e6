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
	br  *bufio.Reader
	out io.Writer

	mu      sync.Mutex
	outMu   sync.Mutex
	history []string      // lines received, for /wait and reply matching
	base    int           // index of history[0] (old lines are dropped)
	notify  chan struct{} // closed and replaced on each new line
	ended   chan struct{} // closed when the reader stops
	readErr error
}

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
	if cfg.DownloadDir == "" {
		cfg.DownloadDir = "."
	}
	if cfg.Diag == nil {
		cfg.Diag = out
	}
	wc := wire.NewConn(conn, cfg.Timeout)
	c := &Client{cfg: cfg, raw: conn, c: wc, br: bufio.NewReaderSize(wc, 64<<10), out: out,
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

// read prints every line that arrives and saves FILE transfers. The reader
// never times out on an idle chat; the per-read timeout applies to payloads.
func (c *Client) read() {
	defer close(c.ended)
	for {
		c.c.LimitRead(365*24*time.Hour, time.Time{})
		line, err := wire.ReadLine(c.br, 1<<20)
		if errors.Is(err, wire.ErrLineTooLong) {
			continue
		}
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			return
		}
		c.print(line)
		if rest, ok := strings.CutPrefix(line, "FILE "); ok {
			msg, err := c.save(rest)
			if err != nil {
				c.print("ERROR download: " + err.Error())
				c.record("ERROR download: " + err.Error())
				c.raw.Close() // out of step with the stream
				continue
			}
			c.print(msg)
			c.record(line)
			line = msg
		}
		c.record(line)
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
	c.c.LimitRead(c.cfg.Timeout, time.Time{})
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

func (c *Client) sendLine(line string) error {
	c.c.LimitWrite(c.cfg.Timeout, time.Time{})
	if _, err := io.WriteString(c.c, line+"\n"); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// Join sends nick and waits for "* <nick> joined" (the server's confirmation)
// or an ERROR, which is returned.
func (c *Client) Join(ctx context.Context, nick string) error {
	from := c.mark()
	if err := c.sendLine(nick); err != nil {
		return err
	}
	l, _, err := c.await(ctx, from, c.cfg.Timeout, func(l string) bool {
		return l == "* "+nick+" joined" || strings.HasPrefix(l, "ERROR")
	})
	if err != nil {
		return fmt.Errorf("join as %q: %w", nick, err)
	}
	if strings.HasPrefix(l, "ERROR") {
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
	from := c.mark()
	size := info.Size()
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
	l, _, err := c.await(ctx, from, c.cfg.Timeout, func(l string) bool {
		return strings.HasPrefix(l, "OK ") || strings.HasPrefix(l, "ERROR")
	})
	if err != nil {
		return fmt.Errorf("upload %q: no reply: %w", name, err)
	}
	if strings.HasPrefix(l, "ERROR") {
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
	if err := c.sendLine("/quit"); err != nil {
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
