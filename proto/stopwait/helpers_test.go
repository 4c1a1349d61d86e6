package stopwait

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labctl/labctl/proto/internal/prototest"
)

const waitLimit = prototest.Wait

// sink adapts prototest.Sink to this package's tests.
type sink struct{ *prototest.Sink }

func newSink() sink                             { return sink{prototest.NewSink()} }
func (s sink) expect(t *testing.T, want string) { t.Helper(); s.Expect(t, want) }
func (s sink) lines() []string                  { return s.Lines() }
func quietLogger(s sink) *slog.Logger           { return prototest.Logger(s.Sink) }

type running struct {
	*prototest.Running
	addr string
	out  sink
	logs sink
}

// stop cancels the server and checks that it returns nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.Stop()
	r.Exited(t)
}

// start runs s on loopback, over UDP if udp; it is stopped at cleanup.
func start(t *testing.T, s *Server, udp bool) *running {
	t.Helper()
	r := &running{out: newSink(), logs: newSink()}
	s.Out, s.Logger = r.out.Sink, quietLogger(r.logs)
	if udp {
		pc := prototest.ListenUDP(t)
		r.addr = pc.LocalAddr().String()
		r.Running = prototest.Start(t, func(ctx context.Context) error { return s.ServePacket(ctx, pc) })
	} else {
		ln := prototest.ListenTCP(t)
		r.addr = ln.Addr().String()
		r.Running = prototest.Start(t, func(ctx context.Context) error { return s.Serve(ctx, ln) })
	}
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
