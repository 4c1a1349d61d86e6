package stopwait

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func both(t *testing.T, f func(t *testing.T, udp bool)) {
	t.Run("tcp", func(t *testing.T) { f(t, false) })
	t.Run("udp", func(t *testing.T) { f(t, true) })
}

func TestServerReplies(t *testing.T) {
	both(t, func(t *testing.T, udp bool) {
		srv := start(t, &Server{}, udp)
		c := dial(t, srv.addr, udp)
		c.exchange(frame(0, "hello"), "ACK 0")
		c.exchange(frame(0, "hello"), "ACK 0")                         // duplicate: ACKed again
		c.exchange("1 00000000 world\r\n", "NACK 1")                   // bad checksum
		c.exchange(frame(5, "ahead"), "NACK 5")                        // not the expected seq
		c.exchange("1 ABCDEF12 world\n", "NACK 1")                     // checksum not lowercase hex
		c.exchange("1\n", "NACK 1")                                    // no checksum
		c.exchange("x 00000000 y\n", `ERROR bad sequence number: "x"`) // no seq
		c.exchange(frame(1, "world with  spaces "), "ACK 1")
		c.exchange(frame(2, ""), "ACK 2") // an empty message is a message
		c.exchange("TCHAU\n", "BYE")
		assert.Equal(t, []string{"Server is started", "hello", "world with  spaces ", ""}, srv.out.lines())
	})
}

func TestHugeLine(t *testing.T) {
	srv := start(t, &Server{}, false)
	c := dial(t, srv.addr, false)
	go func() { _, _ = c.conn.Write(append(bytes.Repeat([]byte("9"), 1<<20), '\n')) }()
	assert.Equal(t, "ERROR frame too long (max 8192 bytes)", c.recv())
	// Others are served as before.
	d := dial(t, srv.addr, false)
	d.exchange(frame(0, "fine"), "ACK 0")
}

func TestHugeDatagram(t *testing.T) {
	srv := start(t, &Server{}, true)
	c := dial(t, srv.addr, true)
	c.exchange(strings.Repeat("9", 60000), "ERROR frame too long (max 8192 bytes)")
	c.exchange(frame(0, "fine"), "ACK 0")
}

func TestIdleTimeout(t *testing.T) {
	srv := start(t, &Server{IdleTimeout: 200 * time.Millisecond}, false)
	c := dial(t, srv.addr, false)
	assert.Equal(t, "ERROR idle timeout (no frame within 200ms)", c.recv())
}

// An expired session that delivered something is remembered like an ended
// one, so a late copy of its frame 0 is not delivered again; once the record
// ages out the address opens a new session that expects 0. One that
// delivered nothing is simply forgotten.
func TestUDPIdleExpiry(t *testing.T) {
	srv := start(t, &Server{IdleTimeout: 100 * time.Millisecond, EndedAge: 300 * time.Millisecond}, true)
	c := dial(t, srv.addr, true)
	c.exchange(frame(0, "a"), "ACK 0")
	srv.logs.expect(t, "session expired")
	c.exchange(frame(0, "a"), "ERROR session ended") // a late copy
	deadline := time.Now().Add(waitLimit)
	for {
		c.send(frame(1, "b"))
		if got := c.recv(); got == "NACK 1" { // a new session expects 0
			break
		} else {
			require.Equal(t, "ERROR session ended", got)
		}
		require.True(t, time.Now().Before(deadline), "the record never aged out")
	}
	c.exchange(frame(0, "c"), "ACK 0")
	assert.Equal(t, []string{"Server is started", "a", "c"}, srv.out.lines())

	quiet := dial(t, srv.addr, true)
	quiet.exchange(frame(3, "x"), "NACK 3") // opens a session, delivers nothing
	srv.logs.expect(t, `msg="session expired" net=udp remote=`+quiet.conn.LocalAddr().String())
	quiet.exchange(frame(0, "y"), "ACK 0")
}

func TestUDPSessionEnded(t *testing.T) {
	srv := start(t, &Server{}, true)
	c := dial(t, srv.addr, true)
	c.exchange(frame(0, "a"), "ACK 0")
	c.exchange("TCHAU", "BYE")
	c.exchange("TCHAU", "BYE")                       // BYE lost: TCHAU again
	c.exchange(frame(0, "a"), "ERROR session ended") // a late duplicate is not delivered again
	assert.Equal(t, []string{"Server is started", "a"}, srv.out.lines())
}

func TestShutdown(t *testing.T) {
	srv := start(t, &Server{}, false)
	c := dial(t, srv.addr, false)
	c.exchange(frame(0, "a"), "ACK 0")
	srv.stop(t)
	assert.Equal(t, "ERROR server shutting down", c.recv())
}

func TestShutdownUDP(t *testing.T) {
	srv := start(t, &Server{}, true)
	c := dial(t, srv.addr, true)
	c.exchange(frame(0, "a"), "ACK 0")
	srv.stop(t)
}

// A client beyond the cap waits (its timer retransmits into the void),
// then proceeds when a slot frees; its retransmissions are not delivered
// twice.
func TestSessionCap(t *testing.T) {
	both(t, func(t *testing.T, udp bool) {
		srv := start(t, &Server{MaxSessions: 1}, udp)
		a := dial(t, srv.addr, udp)
		a.exchange(frame(0, "from a"), "ACK 0")

		out, logs := newSink(), newSink()
		errc := make(chan error, 1)
		conn := dialNet(t, srv.addr, udp)
		go func() {
			c := &Client{Out: out, Logger: quietLogger(logs), Timeout: 50 * time.Millisecond, MaxTries: 200}
			errc <- c.Run(context.Background(), conn, strings.NewReader("from b\nTCHAU\n"))
		}()
		for range 3 {
			logs.expect(t, "timeout, retransmitting")
		}
		assert.Empty(t, out.lines(), "b must wait while a holds the only slot")

		a.exchange("TCHAU\n", "BYE")
		select {
		case err := <-errc:
			require.NoError(t, err)
		case <-time.After(waitLimit):
			t.Fatal("waiting client never proceeded")
		}
		lines := out.lines()
		require.Len(t, lines, 2)
		assert.Regexp(t, `^delivered 0 "from b" \(\d+ tries\)$`, lines[0])
		assert.Equal(t, "BYE", lines[1])
		assert.Equal(t, []string{"Server is started", "from a", "from b"}, srv.out.lines())
	})
}

// Many clients at once, each with its own faults, each delivered exactly
// once and in order; a garbage client alongside hurts nobody.
func TestManyClients(t *testing.T) {
	both(t, func(t *testing.T, udp bool) {
		srv := start(t, &Server{}, udp)
		bad := dial(t, srv.addr, udp)
		bad.exchange("\x00\xff garbage\n", `ERROR bad sequence number: "\x00\xff"`)
		var wg sync.WaitGroup
		outs := make([]sink, 8)
		errs := make([]error, len(outs))
		for i := range outs {
			outs[i] = newSink()
			conn := dialNet(t, srv.addr, udp)
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &Client{Out: outs[i], Logger: quietLogger(newSink()), Timeout: 50 * time.Millisecond,
					MaxTries: 50, Faults: SeedFaults(uint64(i))}
				in := fmt.Sprintf("c%d-a||c%d-b\nc%d-c\nTCHAU\n", i, i, i)
				errs[i] = c.Run(context.Background(), conn, strings.NewReader(in))
			}()
		}
		wg.Wait()
		got := map[string][]string{}
		for _, line := range srv.out.lines()[1:] {
			client, _, _ := strings.Cut(line, "-")
			got[client] = append(got[client], line)
		}
		for i := range outs {
			require.NoError(t, errs[i])
			c := fmt.Sprintf("c%d", i)
			assert.Equal(t, []string{c + "-a", c + "-b", c + "-c"}, got[c])
		}
	})
}

// A message holding control characters, a `\n` among them, is one escaped
// line on the server's output (issues 13.5, 17.3).
func TestDeliveredMessageIsOneLine(t *testing.T) {
	both(t, func(t *testing.T, udp bool) {
		srv := start(t, &Server{}, udp)
		c := dial(t, srv.addr, udp)
		msg := "two\rlines\x1b[2J"
		if udp {
			msg = "a\nb\r" + msg // a datagram may hold a newline
		}
		c.exchange(NewFrame(0, msg).String()+"\n", "ACK 0")
		c.exchange("TCHAU\n", "BYE")
		want := `two\rlines\x1b[2J`
		if udp {
			want = `a\nb\r` + want
		}
		assert.Equal(t, []string{"Server is started", want}, srv.out.lines())
	})
}

// Over TCP a frame, or TCHAU, sent without a newline ends at the pause.
func TestTCPFrameWithoutNewline(t *testing.T) {
	srv := start(t, &Server{Pause: 50 * time.Millisecond}, false)
	c := dial(t, srv.addr, false)
	c.exchange(NewFrame(0, "no newline").String(), "ACK 0")
	c.exchange("TCHAU", "BYE")
	assert.Equal(t, []string{"Server is started", "no newline"}, srv.out.lines())
}

// Over TCP a flood past the discard limit still gets its ERROR line.
func TestTCPFloodGetsError(t *testing.T) {
	srv := start(t, &Server{}, false)
	c := dial(t, srv.addr, false)
	go func() {
		chunk := bytes.Repeat([]byte("9"), 1<<20)
		for range 80 {
			if _, err := c.conn.Write(chunk); err != nil {
				return
			}
		}
	}()
	assert.Equal(t, "ERROR frame too long (max 8192 bytes)", c.recv())
}

// Exactly-once holds after any number of UDP sessions (issue 13.5): 5000
// sessions end, then a late duplicate of the first session's frame is not
// delivered again. Each session has its own loopback address, so no two
// share a key by port reuse.
func TestUDPExactlyOnceAfterManySessions(t *testing.T) {
	srv := start(t, &Server{}, true)
	server, err := net.ResolveUDPAddr("udp4", srv.addr)
	require.NoError(t, err)
	const n = 5000
	kept := map[int]*net.UDPConn{}
	for i := range n {
		local := &net.UDPAddr{IP: net.IPv4(127, 1, byte(i/250), byte(i%250+1))}
		c, err := net.DialUDP("udp4", local, server)
		require.NoError(t, err)
		r := &raw{t: t, conn: c, udp: true}
		r.exchange(frame(0, fmt.Sprintf("m%d", i)), "ACK 0")
		r.exchange("TCHAU", "BYE")
		if i == 0 || i == n-1 {
			kept[i] = c
			t.Cleanup(func() { c.Close() })
		} else {
			c.Close()
		}
	}
	for i, c := range kept { // late duplicates of the first and the last session
		late := &raw{t: t, conn: c, udp: true}
		late.exchange(frame(0, fmt.Sprintf("m%d", i)), "ERROR session ended")
	}
	lines := srv.out.lines()
	assert.Len(t, lines, n+1, "each message delivered once")
}

// With the table of ended sessions full, a newcomer waits (unanswered)
// instead of a record being dropped early; it gets in once one ages out.
func TestUDPEndedTableFullMakesNewcomersWait(t *testing.T) {
	srv := start(t, &Server{MaxEnded: 1, EndedAge: 300 * time.Millisecond, IdleTimeout: 100 * time.Millisecond}, true)
	a := dial(t, srv.addr, true)
	a.exchange(frame(0, "a"), "ACK 0")
	a.exchange("TCHAU", "BYE")
	b := dial(t, srv.addr, true)
	b.send(frame(0, "b"))
	require.NoError(t, b.conn.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
	_, err := b.conn.Read(make([]byte, 64))
	require.Error(t, err, "no answer while the table is full")
	a.exchange(frame(0, "a"), "ERROR session ended") // the record is still there
	deadline := time.Now().Add(waitLimit)
	for {
		b.send(frame(0, "b")) // the client's retransmission
		require.NoError(t, b.conn.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
		buf := make([]byte, 64)
		if n, err := b.conn.Read(buf); err == nil {
			require.Equal(t, "ACK 0\n", string(buf[:n]))
			break
		}
		require.True(t, time.Now().Before(deadline), "newcomer never got in")
	}
	assert.Equal(t, []string{"Server is started", "a", "b"}, srv.out.lines())
}
