package xy

import (
	"context"
	"net"
	"testing"

	"github.com/labctl/labctl/proto/internal/prototest"
)

const waitLimit = prototest.Wait

// sink adapts prototest.Sink to this package's tests.
type sink struct{ *prototest.Sink }

func (s sink) expect(t *testing.T, want string) string { t.Helper(); return s.Expect(t, want) }
func (s sink) lines() []string                         { return s.Lines() }

type running struct {
	*prototest.Running
	addr string
	out  sink
	logs sink
}

// start serves s on a loopback port; it is stopped at cleanup.
func start(t *testing.T, s *Server) *running {
	t.Helper()
	ln := prototest.ListenTCP(t)
	r := &running{addr: ln.Addr().String(), out: sink{prototest.NewSink()}, logs: sink{prototest.NewSink()}}
	s.Out, s.Logger = r.out.Sink, prototest.Logger(r.logs.Sink)
	r.Running = prototest.Start(t, func(ctx context.Context) error { return s.Serve(ctx, ln) })
	r.out.expect(t, "Server is started")
	return r
}

func (r *running) waitExit(t *testing.T) { t.Helper(); r.Exited(t) }
func (r *running) stop()                 { r.Stop() }

// raw is a hand-driven client.
type raw struct {
	*prototest.Conn
	conn net.Conn
}

func dial(t *testing.T, addr string) *raw {
	t.Helper()
	c := prototest.Dial(t, "tcp", addr)
	return &raw{Conn: c, conn: c.Conn}
}

func (c *raw) send(s string)      { c.Send(s) }
func (c *raw) expect(want string) { c.Expect(want) }
func (c *raw) expectClosed()      { c.Closed() }

// pair connects X then Y and reads their "connected" lines.
func pair(t *testing.T, addr string) (x, y *raw) {
	x = dial(t, addr)
	y = dial(t, addr)
	x.expect("Client X connected")
	y.expect("Client Y connected")
	return x, y
}
