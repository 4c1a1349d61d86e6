package wire

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// flakyListener fails its first accepts with a transient error, then hands
// out one end of a pipe, then reports itself closed.
type flakyListener struct {
	net.Listener
	fails int
	conns int
}

var errTransient = errors.New("accept: too many open files")

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, errTransient
	}
	if l.conns > 0 {
		l.conns--
		c, _ := net.Pipe()
		return c, nil
	}
	return nil, net.ErrClosed
}

func TestAcceptRetriesTransientFailuresAndStopsWhenClosed(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ln := &flakyListener{fails: 3, conns: 1}
	c, err := Accept(context.Background(), ln, log)
	require.NoError(t, err)
	c.Close()
	assert.Zero(t, ln.fails, "it retried through every transient failure")
	_, err = Accept(context.Background(), ln, log)
	assert.ErrorIs(t, err, net.ErrClosed)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Accept(ctx, &flakyListener{fails: 1000}, log)
	assert.ErrorIs(t, err, context.Canceled, "a cancelled context ends the retries")
}
