package filesvc

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
	"time"

	"github.com/labctl/labctl/proto/internal/filestore"
	"github.com/labctl/labctl/proto/internal/progress"
	"github.com/labctl/labctl/proto/internal/wire"
)

// ErrServerFull is returned by NewClient when the server sent FullMessage.
var ErrServerFull = errors.New("server full, try later")

// ServerError is an `ERROR <reason>` reply.
type ServerError struct{ Line string }

func (e *ServerError) Error() string { return "server: " + e.Line }

// ClientConfig tunes a Client.
type ClientConfig struct {
	DownloadDir string        // where Download saves files (default ".")
	Timeout     time.Duration // per read/write while waiting for the server (default 30s)
	// Progress, when set, gets a bar per transfer (see cmd/labctl).
	Progress func(desc string, total int64) io.WriteCloser
}

// Client talks to a file server over one connection.
type Client struct {
	Name string // the name the server gave us, e.g. "Client01"

	cfg ClientConfig
	raw net.Conn
	c   *wire.Conn
	mr  *wire.MessageReader // a server line, or what arrived before a pause
	br  *bufio.Reader       // mr's buffer, for downloads
	bw  *bufio.Writer
}

// Dial connects to addr and reads the greeting.
func Dial(ctx context.Context, addr string, cfg ClientConfig) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %q: %w", addr, err)
	}
	c, err := NewClient(ctx, conn, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// NewClient reads the server's greeting on conn: the client's name, or
// FullMessage (ErrServerFull).
func NewClient(ctx context.Context, conn net.Conn, cfg ClientConfig) (*Client, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.DownloadDir == "" {
		cfg.DownloadDir = "."
	}
	wc := wire.NewConn(conn, cfg.Timeout)
	c := &Client{cfg: cfg, raw: conn, c: wc, mr: wire.NewMessageReader(wc, maxReplyLine, 0), bw: bufio.NewWriterSize(wc, 64<<10)}
	c.br = c.mr.Reader()
	defer c.watch(ctx)()
	line, err := c.readLine()
	if err != nil {
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	if line == FullMessage {
		return nil, ErrServerFull
	}
	if _, ok := clientNumber(line); !ok {
		return nil, fmt.Errorf("unexpected greeting %q", line)
	}
	c.Name = line
	return c, nil
}

// Close closes the connection without saying goodbye (see Exit).
func (c *Client) Close() error { return c.raw.Close() }

// watch makes ctx cancellation interrupt blocked I/O; call the result when done.
func (c *Client) watch(ctx context.Context) func() {
	stop := context.AfterFunc(ctx, func() { _ = c.raw.SetDeadline(time.Now()) })
	return func() { stop() }
}

// maxReplyLine is the longest server line the client reads (an echo of a
// long line, a long status line).
const maxReplyLine = 1 << 20

// readLine reads one server line; a line sent without a newline ends at a
// 200 ms pause, as the server reads commands.
func (c *Client) readLine() (string, error) {
	c.c.LimitRead(c.cfg.Timeout, time.Time{})
	return c.mr.ReadMessage(context.Background(), time.Time{})
}

func (c *Client) send(line string) error {
	if _, err := c.bw.WriteString(line + "\n"); err != nil {
		return err
	}
	return c.bw.Flush()
}

// roundTrip sends line and reads one reply line; ERROR replies are errors.
func (c *Client) roundTrip(ctx context.Context, line string) (string, error) {
	defer c.watch(ctx)()
	if err := c.send(line); err != nil {
		return "", fmt.Errorf("send: %w", err)
	}
	reply, err := c.readLine()
	if err != nil {
		return "", fmt.Errorf("read reply: %w", err)
	}
	if strings.HasPrefix(reply, "ERROR") {
		return reply, &ServerError{Line: reply}
	}
	return reply, nil
}

// multi sends line and reads a reply that ends with ".".
func (c *Client) multi(ctx context.Context, line string) ([]string, error) {
	first, err := c.roundTrip(ctx, line)
	if err != nil {
		return nil, err
	}
	defer c.watch(ctx)()
	var lines []string
	for l := first; l != "."; {
		lines = append(lines, l)
		if l, err = c.readLine(); err != nil {
			return lines, fmt.Errorf("read reply: %w", err)
		}
	}
	return lines, nil
}

// Echo sends text and returns the reply ("<text> ACK").
func (c *Client) Echo(ctx context.Context, text string) (string, error) {
	return c.roundTrip(ctx, text)
}

// Status returns the status lines (without the final ".").
func (c *Client) Status(ctx context.Context) ([]string, error) { return c.multi(ctx, "status") }

// List returns the repository's file names.
func (c *Client) List(ctx context.Context) ([]string, error) { return c.multi(ctx, "list") }

// Exit says goodbye, reads BYE and closes the connection.
func (c *Client) Exit(ctx context.Context) error {
	defer c.raw.Close()
	reply, err := c.roundTrip(ctx, "exit")
	if err != nil {
		return err
	}
	if reply != "BYE" {
		return fmt.Errorf("exit: unexpected reply %q", reply)
	}
	return nil
}

// Get downloads name into w and returns the byte count.
func (c *Client) Get(ctx context.Context, name string, w io.Writer) (int64, error) {
	size, err := c.startGet(ctx, name)
	if err != nil {
		return 0, err
	}
	return c.receive(ctx, name, size, w)
}

// startGet sends the request and reads START <size>.
func (c *Client) startGet(ctx context.Context, name string) (int64, error) {
	head, err := c.roundTrip(ctx, "get "+name)
	if err != nil {
		return 0, err
	}
	sizeText, ok := strings.CutPrefix(head, "START ")
	if !ok {
		return 0, fmt.Errorf("get %q: unexpected reply %q", name, head)
	}
	size, err := wire.ParseSize(sizeText, math.MaxInt64)
	if err != nil {
		return 0, fmt.Errorf("get %q: bad START line %q: %w", name, head, err)
	}
	return size, nil
}

// receive reads exactly size bytes into w, then END.
func (c *Client) receive(ctx context.Context, name string, size int64, w io.Writer) (int64, error) {
	defer c.watch(ctx)()
	c.c.LimitRead(c.cfg.Timeout, time.Time{})
	w, done := c.bar("get "+name, size, w)
	n, err := io.CopyN(w, c.br, size)
	done()
	if err != nil {
		return n, fmt.Errorf("get %q: got %d of %d bytes: %w", name, n, size, err)
	}
	end, err := c.readLine()
	if err != nil {
		return n, fmt.Errorf("get %q: read END: %w", name, err)
	}
	if end != "END" {
		return n, fmt.Errorf("get %q: expected END after %d bytes, got %q", name, size, end)
	}
	return n, nil
}

// Download gets name into the download folder (atomically: a cut-short
// transfer leaves nothing) and returns the path, size and SHA-256.
func (c *Client) Download(ctx context.Context, name string) (string, int64, string, error) {
	if err := filestore.ValidateName(name); err != nil {
		return "", 0, "", fmt.Errorf("get %q: %w", name, err)
	}
	store, err := filestore.Open(c.cfg.DownloadDir, math.MaxInt64)
	if err != nil {
		return "", 0, "", err
	}
	defer store.Close()
	size, err := c.startGet(ctx, name)
	if err != nil {
		return "", 0, "", err
	}
	up, err := store.Begin(name, size)
	if err != nil {
		_, _ = c.receive(ctx, name, size, io.Discard) // stay in step
		return "", 0, "", fmt.Errorf("save %q: %w", name, err)
	}
	pr, pw := io.Pipe()
	saved := make(chan error, 1)
	go func() {
		_, err := up.ReadFrom(pr)
		pr.CloseWithError(err)
		saved <- err
	}()
	n, err := c.receive(ctx, name, size, pw)
	pw.CloseWithError(err)
	if serr := <-saved; err == nil && serr != nil {
		err = fmt.Errorf("save %q: %w", name, serr)
	}
	if err != nil {
		up.Abort()
		return "", n, "", err
	}
	sum, err := up.Commit()
	if err != nil {
		return "", n, "", fmt.Errorf("save %q: %w", name, err)
	}
	return filepath.Join(c.cfg.DownloadDir, name), n, sum, nil
}

// Put uploads size bytes from r as name and returns the server's SHA-256,
// after checking it against the bytes sent.
func (c *Client) Put(ctx context.Context, name string, r io.Reader, size int64) (string, error) {
	defer c.watch(ctx)()
	h := sha256.New()
	if _, err := c.bw.WriteString("put " + name + " " + strconv.FormatInt(size, 10) + "\n"); err != nil {
		return "", fmt.Errorf("put %q: %w", name, err)
	}
	w, done := c.bar("put "+name, size, io.MultiWriter(c.bw, h))
	n, err := io.CopyN(w, r, size)
	done()
	if err != nil {
		return "", fmt.Errorf("put %q: read local data: %d of %d bytes: %w", name, n, size, err)
	}
	if err := c.bw.Flush(); err != nil {
		return "", fmt.Errorf("put %q: %w", name, err)
	}
	reply, err := c.readLine()
	if err != nil {
		return "", fmt.Errorf("put %q: read reply: %w", name, err)
	}
	if strings.HasPrefix(reply, "ERROR") {
		return "", &ServerError{Line: reply}
	}
	sum, ok := strings.CutPrefix(reply, "OK ")
	if !ok {
		return "", fmt.Errorf("put %q: unexpected reply %q", name, reply)
	}
	if want := hex.EncodeToString(h.Sum(nil)); sum != want {
		return sum, fmt.Errorf("put %q: server has sha256 %s, sent %s", name, sum, want)
	}
	return sum, nil
}

// Upload puts the local file at path under name (default: its base name).
func (c *Client) Upload(ctx context.Context, path, name string) (string, error) {
	if name == "" {
		name = filepath.Base(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("put: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("put: %w", err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("put: %q is not a regular file", path)
	}
	return c.Put(ctx, name, f, info.Size())
}

func (c *Client) bar(desc string, total int64, w io.Writer) (io.Writer, func()) {
	if c.cfg.Progress == nil {
		return w, func() {}
	}
	b := c.cfg.Progress(desc, total)
	return io.MultiWriter(w, b), func() { b.Close() }
}

// TerminalProgress returns a ClientConfig.Progress drawing bars on w, or
// nil when disabled or w is not a terminal.
func TerminalProgress(w *os.File, enabled bool) func(desc string, total int64) io.WriteCloser {
	return progress.For(w, enabled)
}
