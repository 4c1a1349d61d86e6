package xy

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const waitLimit = 5 * time.Second

// sink is an io.Writer that hands complete lines to a test.
type sink struct {
	mu      sync.Mutex
	partial string
	all     []string
	ch      chan string
}

func newSink() *sink { return &sink{ch: make(chan string, 8192)} }

func (s *sink) Write(p []byte) (int, error) {
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
		default: // a test that does not wait on lines still sees them in all
		}
	}
}

func (s *sink) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.all...)
}

// expect waits for a line containing want.
func (s *sink) expect(t *testing.T, want string) string {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case line := <-s.ch:
			if strings.Contains(line, want) {
				return line
			}
		case <-deadline:
			t.Fatalf("no line containing %q; got %q", want, s.lines())
		}
	}
}

type running struct {
	addr string
	out  *sink
	logs *sink
	done chan error
	stop context.CancelFunc
}

func start(t *testing.T, s *Server) *running {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &running{addr: ln.Addr().String(), out: newSink(), logs: newSink(), done: make(chan error, 1)}
	s.Out = r.out
	s.Logger = slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() { r.done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(waitLimit):
			t.Error("server did not stop")
		}
	})
	r.out.expect(t, "Server is started")
	return r
}

func (r *running) waitExit(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.done:
		require.NoError(t, err)
		r.done <- nil // for Cleanup
	case <-time.After(waitLimit):
		t.Fatal("server did not exit")
	}
}

// raw is a hand-driven client.
type raw struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *raw {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitLimit)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return &raw{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *raw) send(line string) {
	c.t.Helper()
	_, err := c.conn.Write([]byte(line))
	require.NoError(c.t, err)
}

func (c *raw) expect(want string) {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(waitLimit)))
	line, err := c.r.ReadString('\n')
	require.NoError(c.t, err, "want %q", want)
	require.Equal(c.t, want, strings.TrimRight(line, "\r\n"))
}

// expectClosed checks that the server closed the connection.
func (c *raw) expectClosed() {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(waitLimit)))
	_, err := c.r.ReadString('\n')
	require.Error(c.t, err)
	require.False(c.t, isTimeout(err), "connection still open")
}

// pair connects X then Y and reads their "connected" lines.
func pair(t *testing.T, addr string) (x, y *raw) {
	x = dial(t, addr)
	y = dial(t, addr)
	x.expect("Client X connected")
	y.expect("Client Y connected")
	return x, y
}
