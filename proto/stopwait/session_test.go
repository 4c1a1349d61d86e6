package stopwait

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFramedTchauEndsTheSessionWithoutBeingDelivered(t *testing.T) {
	var s session
	v := s.handle(NewFrame(0, "hello").String())
	assert.Equal(t, verdict{reply: "ACK 0", deliver: true, msg: "hello"}, v)
	v = s.handle(NewFrame(1, Tchau).String())
	assert.Equal(t, verdict{reply: "ACK 1", end: true}, v)
	// A framed TCHAU that is not the expected one is an ordinary frame.
	var s2 session
	assert.Equal(t, verdict{reply: "NACK 3"}, s2.handle(NewFrame(3, Tchau).String()))
}

func TestFramedTchauOverUDPIsAckedAgainAfterTheEnd(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &Server{Out: io.Discard}
	go func() { _ = srv.ServePacket(ctx, pc) }()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	require.NoError(t, err)
	defer c.Close()
	ask := func(line string) string {
		_, err := c.Write([]byte(line + "\n"))
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		b := make([]byte, 256)
		n, err := c.Read(b)
		require.NoError(t, err)
		return string(trimEOL(b[:n]))
	}
	assert.Equal(t, "ACK 0", ask(NewFrame(0, "hi").String()))
	assert.Equal(t, "ACK 1", ask(NewFrame(1, Tchau).String()))
	assert.Equal(t, "ACK 1", ask(NewFrame(1, Tchau).String()), "its ACK was lost: ACK again")
	assert.Equal(t, "ERROR session ended", ask(NewFrame(0, "hi").String()))
}
