package stopwait

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

const waitLimit = 10 * time.Second

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
		default:
		}
	}
}

func (s *sink) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.all...)
}

func (s *sink) expect(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case line := <-s.ch:
			if strings.Contains(line, want) {
				return
			}
		case <-deadline:
			t.Fatalf("no line containing %q; got %q", want, s.lines())
		}
	}
}

type running struct {
	addr   string
	out    *sink
	logs   *sink
	cancel context.CancelFunc
	done   chan error
}

// stop cancels the server and checks that it returns nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		require.NoError(t, err)
		r.done <- nil // for Cleanup
	case <-time.After(waitLimit):
		t.Fatal("server did not stop")
	}
}

func quietLogger(s *sink) *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// start runs s on loopback, over UDP if udp.
func start(t *testing.T, s *Server, udp bool) *running {
	t.Helper()
	r := &running{out: newSink(), logs: newSink()}
	s.Out, s.Logger = r.out, quietLogger(r.logs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	r.cancel, r.done = cancel, done
	if udp {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		require.NoError(t, err)
		r.addr = pc.LocalAddr().String()
		go func() { done <- s.ServePacket(ctx, pc) }()
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		r.addr = ln.Addr().String()
		go func() { done <- s.Serve(ctx, ln) }()
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(waitLimit):
			t.Error("server did not stop")
		}
	})
	r.out.expect(t, "Server is started")
	return r
}

func dialNet(t *testing.T, addr string, udp bool) net.Conn {
	t.Helper()
	network := "tcp"
	if udp {
		network = "udp4"
	}
	conn, err := net.DialTimeout(network, addr, waitLimit)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// raw is a hand-driven client; over UDP each line is one datagram.
type raw struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	udp  bool
}

func dial(t *testing.T, addr string, udp bool) *raw {
	conn := dialNet(t, addr, udp)
	return &raw{t: t, conn: conn, r: bufio.NewReader(conn), udp: udp}
}

func (c *raw) send(line string) {
	c.t.Helper()
	_, err := c.conn.Write([]byte(line))
	require.NoError(c.t, err)
}

func (c *raw) recv() string {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(waitLimit)))
	if c.udp {
		buf := make([]byte, MaxFrame+3)
		n, err := c.conn.Read(buf)
		require.NoError(c.t, err)
		return strings.TrimRight(string(buf[:n]), "\r\n")
	}
	line, err := c.r.ReadString('\n')
	require.NoError(c.t, err)
	return strings.TrimRight(line, "\r\n")
}

// exchange sends line and checks the one reply.
func (c *raw) exchange(line, want string) {
	c.t.Helper()
	c.send(line)
	require.Equal(c.t, want, c.recv(), "reply to %q", line)
}

func frame(seq uint64, msg string) string { return NewFrame(seq, msg).String() + "\n" }
