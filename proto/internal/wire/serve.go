package wire

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// ServeOptions shape Serve's accept loop.
type ServeOptions struct {
	// MaxConns bounds the connections held at once (0: no bound). A
	// connection holds its slot until its handler has returned and it is
	// closed.
	MaxConns int
	// Full, if set, is called on the accept loop for a connection beyond
	// MaxConns (it must be quick: one short write), and the connection is
	// then closed. If nil, the loop stops accepting at MaxConns and the
	// kernel's listen backlog holds newcomers until a slot frees.
	Full func(net.Conn)
	// Inline calls handle on the accept loop itself, in accept order; it
	// must not block (it starts its own goroutines, which Serve does not
	// wait for). Otherwise each handle runs on its own goroutine and Serve
	// waits for all of them before it returns.
	Inline bool
	Log    *slog.Logger // accept failures (default slog.Default())
}

// Serve accepts connections on ln until ctx is done (or ln is closed),
// hands each to handle, and closes ln before it returns. It returns nil on
// a clean stop. Closing the net.Conn given to handle frees its slot.
func Serve(ctx context.Context, ln net.Listener, o ServeOptions, handle func(context.Context, net.Conn)) error {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()
	var slots chan struct{}
	if o.MaxConns > 0 {
		slots = make(chan struct{}, o.MaxConns)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		if slots != nil && o.Full == nil {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
		}
		c, err := Accept(ctx, ln, log)
		if err != nil {
			if o.Full == nil && slots != nil {
				<-slots
			}
			return nil // ctx is done or ln closed: a clean stop
		}
		if slots != nil && o.Full != nil {
			select {
			case slots <- struct{}{}:
			default:
				o.Full(c)
				c.Close()
				continue
			}
		}
		sc := &slotConn{Conn: c, slots: slots}
		if o.Inline {
			handle(ctx, sc)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sc.Close()
			handle(ctx, sc)
		}()
	}
}

// slotConn frees its connection slot once, when closed.
type slotConn struct {
	net.Conn
	slots chan struct{}
	once  sync.Once
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.slots != nil {
			<-c.slots
		}
	})
	return err
}

// CloseWrite half-closes the underlying connection when it can.
func (c *slotConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Linger bounds CloseGently's drain of unread input.
const (
	LingerTime  = 500 * time.Millisecond
	LingerBytes = 4 << 20
)

// CloseGently closes c without destroying what was just written to it:
// closing a socket with unread input makes the kernel send a reset, which
// throws away data not yet delivered (an ERROR line). So it half-closes c,
// reads and drops input for at most LingerTime and LingerBytes, then
// closes it.
func CloseGently(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	if c.SetReadDeadline(time.Now().Add(LingerTime)) == nil {
		_, _ = io.CopyN(io.Discard, c, LingerBytes)
	}
	c.Close()
}
