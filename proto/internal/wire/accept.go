package wire

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"
)

// Accept waits for the next connection on ln. A failure other than a closed
// listener (out of file descriptors and the like) is logged and retried
// after a pause that doubles from 5 ms up to 1 s, as net/http does. It
// returns ctx's error once ctx is done, and an error wrapping net.ErrClosed
// when ln is closed: the servers close ln when their context ends.
func Accept(ctx context.Context, ln net.Listener, log *slog.Logger) (net.Conn, error) {
	backoff := time.Duration(0)
	for {
		c, err := ln.Accept()
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
		log.Warn("accept failed, retrying", "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
