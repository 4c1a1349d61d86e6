// Package prototest is the one test server helper of the proto packages:
// a line sink for a server's output and logs, a server run on loopback and
// stopped at cleanup, and a hand-driven raw client. Every wait has a
// deadline (Wait); nothing sleeps for readiness.
package prototest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Wait is the longest any helper waits for a line, a connection or a stop.
const Wait = 10 * time.Second

// Sink is an io.Writer that hands complete lines to a test. It keeps every
// line (for Lines) and queues up to 8192 for Expect; beyond that a line is
// only kept, so a test that never waits cannot block the server.
type Sink struct {
	mu      sync.Mutex
	partial string
	all     []string
	ch      chan string
}

// NewSink makes an empty sink.
func NewSink() *Sink { return &Sink{ch: make(chan string, 8192)} }

func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial += string(p)
	for {
		i := strings.IndexByte(s.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := s.partial[:i]
		s.partial = s.partial[i+1:]
		s.all = append(s.all, line)
		select {
		case s.ch <- line:
		default:
		}
	}
}

// Lines is every complete line so far.
func (s *Sink) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.all...)
}

// Expect waits for the next line containing want (lines before it are
// passed over) and returns it.
func (s *Sink) Expect(t testing.TB, want string) string {
	t.Helper()
	deadline := time.After(Wait)
	for {
		select {
		case line := <-s.ch:
			if strings.Contains(line, want) {
				return line
			}
		case <-deadline:
			t.Fatalf("no line containing %q; got %q", want, s.Lines())
		}
	}
}

// Logger logs at debug level, as text, into s.
func Logger(s *Sink) *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Running is a server started by Start.
type Running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// Start runs serve on its own goroutine with a context that Stop (or the
// test's cleanup) cancels; cleanup fails the test if serve does not return
// within Wait, or returns an error.
func Start(t testing.TB, serve func(context.Context) error) *Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, r.wait(t))
	})
	return r
}

// Stop cancels the server's context.
func (r *Running) Stop() { r.cancel() }

// Exited waits for serve to return by itself and checks it returned nil.
func (r *Running) Exited(t testing.TB) {
	t.Helper()
	require.NoError(t, r.wait(t))
}

func (r *Running) wait(t testing.TB) error {
	r.once.Do(func() {
		select {
		case r.err = <-r.done:
		case <-time.After(Wait):
			r.err = errors.New("server did not stop")
		}
	})
	return r.err
}

// ListenTCP is a loopback listener on a free port.
func ListenTCP(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return ln
}

// ListenUDP is a loopback UDP socket on a free port.
func ListenUDP(t testing.TB) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	return pc
}

// Conn is a hand-driven client: it sends exactly the bytes given and reads
// the server's lines.
type Conn struct {
	t    testing.TB
	Conn net.Conn
	r    *bufio.Reader
}

// Dial connects over network ("tcp", "udp4") and closes at cleanup.
func Dial(t testing.TB, network, addr string) *Conn {
	t.Helper()
	c, err := net.DialTimeout(network, addr, Wait)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &Conn{t: t, Conn: c, r: bufio.NewReaderSize(c, 64<<10)}
}

// Send writes s as is.
func (c *Conn) Send(s string) {
	c.t.Helper()
	require.NoError(c.t, c.Conn.SetWriteDeadline(time.Now().Add(Wait)))
	_, err := io.WriteString(c.Conn, s)
	require.NoError(c.t, err)
}

// Line reads one line, without its `\n` or `\r\n`.
func (c *Conn) Line() string {
	c.t.Helper()
	require.NoError(c.t, c.Conn.SetReadDeadline(time.Now().Add(Wait)))
	l, err := c.r.ReadString('\n')
	require.NoError(c.t, err, "partial line %q", l)
	return strings.TrimSuffix(strings.TrimSuffix(l, "\n"), "\r")
}

// Expect reads one line and checks it is want.
func (c *Conn) Expect(want string) {
	c.t.Helper()
	require.Equal(c.t, want, c.Line())
}

// Segment reads what one recv(1024) gets, as a student's Python client does.
func (c *Conn) Segment() string {
	c.t.Helper()
	require.NoError(c.t, c.Conn.SetReadDeadline(time.Now().Add(Wait)))
	if n := c.r.Buffered(); n > 0 {
		b, _ := c.r.Peek(min(n, 1024))
		s := string(b)
		_, _ = c.r.Discard(len(b))
		return s
	}
	buf := make([]byte, 1024)
	n, err := c.Conn.Read(buf)
	require.NoError(c.t, err)
	return string(buf[:n])
}

// Closed waits until the server has closed the connection (EOF or reset).
func (c *Conn) Closed() {
	c.t.Helper()
	require.NoError(c.t, c.Conn.SetReadDeadline(time.Now().Add(Wait)))
	_, err := io.Copy(io.Discard, c.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection still open after %v", Wait)
	}
}
