package stopwait

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runClient runs a Client against srv and returns its output lines.
func runClient(t *testing.T, srv *running, udp bool, c *Client, input string) ([]string, sink, error) {
	t.Helper()
	out, logs := newSink(), newSink()
	c.Out, c.Logger = out, quietLogger(logs)
	if c.Timeout == 0 {
		c.Timeout = 40 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	err := c.Run(ctx, dialNet(t, srv.addr, udp), strings.NewReader(input))
	return out.lines(), logs, err
}

func TestClientClean(t *testing.T) {
	both(t, func(t *testing.T, udp bool) {
		srv := start(t, &Server{}, udp)
		lines, _, err := runClient(t, srv, udp, &Client{}, "hello || world\r\n\nbye||TCHAU||never sent\nnor this\n")
		require.NoError(t, err)
		assert.Equal(t, []string{`delivered 0 "hello" (1 try)`, `delivered 1 "world" (1 try)`,
			`delivered 2 "bye" (1 try)`, "BYE"}, lines)
		assert.Equal(t, []string{"Server is started", "hello", "world", "bye"}, srv.out.lines())
	})
}

// Every message arrives exactly once and in order whatever the seeded
// channel does: corrupt, wrong seq, drop and delay (late duplicates).
func TestClientFaults(t *testing.T) {
	var msgs []string
	for i := range 30 {
		msgs = append(msgs, fmt.Sprintf("m%02d", i))
	}
	input := strings.Join(msgs[:10], "||") + "\n" + strings.Join(msgs[10:], "\n") + "\n"
	for _, f := range []Faults{
		SeedFaults(1),
		{Corrupt: 0.3, WrongSeq: 0.3, Seed: 2},
		{Drop: 0.3, Delay: 0.5, MaxDelay: 100 * time.Millisecond, Seed: 3},
	} {
		both(t, func(t *testing.T, udp bool) {
			srv := start(t, &Server{}, udp)
			lines, logs, err := runClient(t, srv, udp, &Client{Faults: f, MaxTries: 100}, input)
			require.NoError(t, err)
			assert.Equal(t, append([]string{"Server is started"}, msgs...), srv.out.lines())
			require.Len(t, lines, len(msgs)+1)
			for i, m := range msgs {
				assert.Regexp(t, fmt.Sprintf(`^delivered %d "%s" \(\d+ tr(y|ies)\)$`, i, m), lines[i])
			}
			assert.Equal(t, "BYE", lines[len(msgs)])
			assert.Contains(t, strings.Join(logs.lines(), "\n"), "msg=fault", "faults were simulated")
		})
	}
}

func TestFaultsAreSeeded(t *testing.T) {
	draw := func(seed uint64) []fault {
		f := SeedFaults(seed)
		rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
		var got []fault
		for range 50 {
			got = append(got, f.pick(rng))
		}
		return got
	}
	assert.Equal(t, draw(7), draw(7))
	assert.NotEqual(t, draw(7), draw(8))
	assert.Contains(t, draw(7), faultNone)
	assert.Error(t, Faults{Drop: 0.6, Delay: 0.6}.Validate())
	assert.Error(t, Faults{Corrupt: -0.1}.Validate())
}

func TestCorruptAlwaysFailsCRC(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, msg := range []string{"", "a", "hello world", "ção", "~~~~", "!!!!"} {
		for range 100 {
			line := corrupt(NewFrame(3, msg), rng)
			require.NotContains(t, line, "\n")
			f, err := ParseFrame(line)
			require.NoError(t, err, line)
			require.False(t, f.Intact(), line)
		}
	}
}

// In UDP mode the client's socket sends with no UDP checksum, and a
// corrupted datagram reaches the server's CRC and earns a NACK.
func TestUDPCorruptedDatagram(t *testing.T) {
	srv := start(t, &Server{}, true)
	conn := dialNet(t, srv.addr, true).(*net.UDPConn)
	require.NoError(t, DisableUDPChecksum(conn))
	off, err := udpChecksumDisabled(conn)
	require.NoError(t, err)
	assert.True(t, off)
	c := &raw{t: t, conn: conn, udp: true}
	rng := rand.New(rand.NewPCG(9, 9))
	c.exchange(corrupt(NewFrame(0, "payload"), rng), "NACK 0")
	c.exchange(frame(0, "payload"), "ACK 0")
	assert.Equal(t, []string{"Server is started", "payload"}, srv.out.lines())
}

func TestClientGivesUp(t *testing.T) {
	both(t, func(t *testing.T, udp bool) {
		// A peer that never answers.
		r := &running{out: newSink(), logs: newSink()}
		if udp {
			pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
			require.NoError(t, err)
			t.Cleanup(func() { pc.Close() })
			r.addr = pc.LocalAddr().String()
		} else {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			t.Cleanup(func() { ln.Close() })
			r.addr = ln.Addr().String()
		}
		lines, _, err := runClient(t, r, udp, &Client{MaxTries: 3, Timeout: 20 * time.Millisecond}, "lost\n")
		require.ErrorIs(t, err, ErrGaveUp)
		assert.Equal(t, []string{`not delivered 0 "lost" (3 tries)`}, lines)
	})
}

func TestClientTooLongMessage(t *testing.T) {
	srv := start(t, &Server{}, false)
	_, _, err := runClient(t, srv, false, &Client{}, strings.Repeat("x", MaxMessage+1)+"\n")
	require.ErrorIs(t, err, ErrMessageBad)
}
