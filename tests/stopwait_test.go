package tests

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/proto/stopwait"
)

// The stop-and-wait lab (seed 000) across namespaces: exactly-once,
// in-order delivery under the client's seeded faults and under the lab's
// own loss, duplication, reordering and corruption; TCHAU; the session cap;
// bad clients.

// TestStopwaitLabPassesItsChecks runs the embedded lab as a grader would.
func TestStopwaitLabPassesItsChecks(t *testing.T) {
	r := labctl(t, "run", "stopwait", "--name", labName("sw"))
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "9 passed, 0 failed")
}

// swMessages returns n messages "<prefix>-00".."<prefix>-(n-1)" and the
// client arguments that carry them: lines of five messages joined by "||".
func swMessages(prefix string, n int) (msgs []string, args string) {
	var lines []string
	for i := 0; i < n; i++ {
		msgs = append(msgs, fmt.Sprintf("%s-%02d", prefix, i))
		if i%5 == 4 || i == n-1 {
			lines = append(lines, "'"+strings.Join(msgs[len(msgs)-1-i%5:], "||")+"'")
		}
	}
	return msgs, strings.Join(lines, " ")
}

// requireDeliveredOnce requires that the server printed exactly msgs, in
// order, among its lines that start with prefix + "-".
//
// The server's output reaches its log through the supervisor, a moment
// after the server wrote it, so this waits (bounded) until the log holds at
// least as many such lines as expected, then compares exactly.
func requireDeliveredOnce(t *testing.T, lab, host, prog, prefix string, msgs []string) {
	t.Helper()
	delivered := func() []string {
		var got []string
		for _, l := range progStdout(t, lab, host, prog) {
			if strings.HasPrefix(l, prefix+"-") {
				got = append(got, l)
			}
		}
		return got
	}
	var got []string
	assert.Eventually(t, func() bool { got = delivered(); return len(got) >= len(msgs) }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, msgs, got, "%s/%s must deliver each %s message exactly once, in order", host, prog, prefix)
}

// requireClientDelivered requires a client's stdout to report every message
// delivered, in order, then BYE.
func requireClientDelivered(t *testing.T, lab, host, prog string, msgs []string) {
	t.Helper()
	out := progStdout(t, lab, host, prog)
	var want []string
	for i, m := range msgs {
		want = append(want, fmt.Sprintf("delivered %d %q", i, m))
	}
	var got []string
	for _, l := range out {
		if strings.HasPrefix(l, "delivered ") {
			got = append(got, l[:strings.LastIndex(l, " (")])
		}
	}
	require.Equal(t, want, got, "%s/%s", host, prog)
	require.Equal(t, "BYE", out[len(out)-1], "%s/%s ends with BYE", host, prog)
}

func TestStopwaitSeededFaultsOverTCP(t *testing.T) {
	// Three clients at once, each with the seed's channel (half the frames
	// corrupted, sent with a wrong seq, dropped or delayed), seeded.
	var progs, checks strings.Builder
	want := map[string][]string{}
	for seed := 1; seed <= 3; seed++ {
		prefix := fmt.Sprintf("s%d", seed)
		msgs, args := swMessages(prefix, 15)
		want[prefix] = msgs
		fmt.Fprintf(&progs, `
      - name: %s
        command: labctl -v app stopwait-client --server ${server}:9000 --faulty --seed %d --timeout 200ms --tries 40 %s TCHAU
        after: [server/tcp]
        time_limit: 40s`, prefix, seed, args)
		fmt.Fprintf(&checks, "  - {exit: client/%s}\n", prefix)
	}
	f := writeLab(t, "sw.yaml", fmt.Sprintf(`
hosts:
  server:
    programs:
      - {name: tcp, command: labctl -v app stopwait-server --port 9000, service: true, ready: {tcp: 9000, timeout: 10s}}
  client:
    programs:%s
switches: [s1]
links:
  - endpoints: [server, s1]
    netem: {delay: 5ms}
  - endpoints: [client, s1]
checks:
%s`, progs.String(), checks.String()))
	lab, r := up(t, "swtcp", "-f", f)
	require.Contains(t, r.stdout, "3 passed, 0 failed", "%s", r)
	faults := map[string]int{}
	for prefix, msgs := range want {
		requireDeliveredOnce(t, lab, "server", "tcp", prefix, msgs)
		requireClientDelivered(t, lab, "client", prefix, msgs)
		for _, kind := range []string{"fault=corrupt", `fault="wrong seq"`, "fault=drop", "fault=delay", `msg="NACK, retransmitting"`} {
			faults[kind] += progLineCount(lab, "client", prefix, regexp.MustCompile(regexp.QuoteMeta(kind)))
		}
	}
	for kind, n := range faults {
		assert.Positive(t, n, "no %s in the clients' logs: the channel was not faulty", kind)
	}
	requireProgRunning(t, lab, "server", "tcp")
}

func TestStopwaitUDPUnderLabLossDuplicationReordering(t *testing.T) {
	// The server's link loses, duplicates and reorders for real, both ways;
	// one client is clean, the other adds its own seeded faults on top.
	clean, cleanArgs := swMessages("u", 30)
	faulty, faultyArgs := swMessages("f", 20)
	f := writeLab(t, "swudp.yaml", fmt.Sprintf(`
seed: 7
hosts:
  server:
    programs:
      - {name: udp, command: labctl -v app stopwait-server --udp --port 9000, service: true, ready: {udp: 9000, timeout: 10s}}
  client:
    programs:
      - name: clean
        command: labctl -v app stopwait-client --udp --server ${server}:9000 --timeout 150ms --tries 40 %s TCHAU
        after: [server/udp]
        time_limit: 40s
      - name: faulty
        command: labctl -v app stopwait-client --udp --server ${server}:9000 --faulty --seed 3 --timeout 150ms --tries 40 %s TCHAU
        after: [server/udp]
        time_limit: 40s
switches: [s1]
links:
  - endpoints: [server, s1]
    netem: {delay: 10ms, loss: 15%%, duplicate: 20%%, reorder: 30%%}
  - endpoints: [client, s1]
checks:
  - {exit: client/clean}
  - {exit: client/faulty}
`, cleanArgs, faultyArgs))
	lab, r := up(t, "swudp", "-f", f)
	require.Contains(t, r.stdout, "2 passed, 0 failed", "%s", r)
	requireDeliveredOnce(t, lab, "server", "udp", "u", clean)
	requireDeliveredOnce(t, lab, "server", "udp", "f", faulty)
	requireClientDelivered(t, lab, "client", "clean", clean)
	requireClientDelivered(t, lab, "client", "faulty", faulty)
	// The link really did its worst: the clean client (no faults of its
	// own) timed out on losses and saw stale replies (duplicates, or
	// answers to retransmissions), and the server answered more frames than
	// it delivered.
	assert.Positive(t, progLineCount(lab, "client", "clean", regexp.MustCompile(`msg="timeout, retransmitting"`)))
	assert.Positive(t, progLineCount(lab, "client", "clean", regexp.MustCompile(`msg="ignoring stale reply"`)))
	acks := progLineCount(lab, "server", "udp", regexp.MustCompile(`msg=frame .*reply="ACK `))
	assert.Greater(t, acks, len(clean)+len(faulty), "duplicates reached the server and were ACKed again")
}

// swLab is a server (TCP and UDP on port 9000, -v, short idle timeout, at
// most two sessions unless told) and client hosts: client on a clean link,
// fixed on a link that corrupts half of what it sends with the UDP checksum
// fixed up, raw on one that corrupts half as the kernel's netem does. (Not
// all: ARP crosses the same link.)
func swLab(t *testing.T, prefix, serverFlags string) (lab, tcpAddr, udpAddr string) {
	t.Helper()
	f := writeLab(t, "sw.yaml", fmt.Sprintf(`
seed: 3
hosts:
  server:
    programs:
      - {name: tcp, command: labctl -v app stopwait-server --port 9000 --idle-timeout 1s %[1]s, service: true, ready: {tcp: 9000, timeout: 10s}}
      - {name: udp, command: labctl -v app stopwait-server --udp --port 9000 --idle-timeout 1s %[1]s, service: true, ready: {udp: 9000, timeout: 10s}}
  client: {}
  fixed: {}
  raw: {}
switches: [s1]
links:
  - endpoints: [server, s1]
  - endpoints: [client, s1]
  - endpoints: [fixed, s1]
    egress: {fixed: {corrupt: 50%%, corrupt_fix_checksum: true}}
  - endpoints: [raw, s1]
    egress: {raw: {corrupt: 50%%}}
`, serverFlags))
	lab, _ = up(t, prefix, "-f", f)
	a := inspect(t, lab).addr("server")
	return lab, a + ":9000", a + ":9000"
}

// frame is the wire form of message seq.
func frame(seq uint64, msg string) string { return stopwait.NewFrame(seq, msg).String() }

// udpConn is a UDP socket in a lab host, connected to the server, with one
// datagram per line.
func udpConn(t *testing.T, lab, host, addr string) *hostConn {
	c := newHostConn(t, hostDial(t, lab, host, "udp", addr))
	return c
}

// sendDatagram sends one datagram (no line break).
func (c *hostConn) sendDatagram(s string) {
	c.t.Helper()
	_, err := c.c.Write([]byte(s))
	require.NoError(c.t, err)
}

// recvDatagram reads one datagram within d.
func (c *hostConn) recvDatagram(d time.Duration) (string, error) {
	if err := c.c.SetReadDeadline(time.Now().Add(d)); err != nil {
		return "", err
	}
	b := make([]byte, 65536)
	n, err := c.c.Read(b)
	return strings.TrimSuffix(string(b[:n]), "\n"), err
}

func (c *hostConn) expectDatagram(want string) {
	c.t.Helper()
	got, err := c.recvDatagram(10 * time.Second)
	require.NoError(c.t, err, "waiting for %q", want)
	require.Equal(c.t, want, got)
}

// goodSession sends three messages from host with the real client (run by
// the test, its socket in the host) and requires each delivered once.
func goodSession(t *testing.T, lab, host, network, addr, prefix string) {
	t.Helper()
	msgs := []string{prefix + "-a", prefix + "-b", prefix + "-c"}
	var out bytes.Buffer
	c := stopwait.Client{Out: &out, Timeout: 200 * time.Millisecond, MaxTries: 100}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := hostDial(t, lab, host, network, addr)
	require.NoError(t, c.Run(ctx, conn, strings.NewReader(strings.Join(msgs, "||")+"\nTCHAU\n")), "%s", out.String())
	assert.Contains(t, out.String(), fmt.Sprintf("delivered 2 %q", msgs[2]))
	prog := map[string]string{"tcp": "tcp", "udp": "udp"}[network]
	awaitProgLine(t, lab, "server", prog, "^"+regexp.QuoteMeta(msgs[2])+"$", 1)
	requireDeliveredOnce(t, lab, "server", prog, prefix, msgs)
}

func TestStopwaitTCHAUEndsTheSession(t *testing.T) {
	lab, tcpAddr, udpAddr := swLab(t, "swbye", "")
	t.Run("tcp", func(t *testing.T) {
		c := newHostConn(t, hostDial(t, lab, "client", "tcp", tcpAddr))
		c.send(frame(0, "tb-0"))
		c.expect("ACK 0")
		c.send("TCHAU")
		c.expect("BYE")
		c.expectEOF()
	})
	t.Run("udp", func(t *testing.T) {
		c := udpConn(t, lab, "client", udpAddr)
		c.sendDatagram(frame(0, "ub-0"))
		c.expectDatagram("ACK 0")
		c.sendDatagram("TCHAU")
		c.expectDatagram("BYE")
		c.sendDatagram("TCHAU") // as if the BYE had been lost
		c.expectDatagram("BYE")
		c.sendDatagram(frame(0, "ub-0")) // a late duplicate
		c.expectDatagram("ERROR session ended")
	})
	// The real client stops at TCHAU: what follows it is never sent.
	for _, network := range []string{"tcp", "udp"} {
		t.Run("client "+network, func(t *testing.T) {
			var out bytes.Buffer
			c := stopwait.Client{Out: &out, Timeout: 200 * time.Millisecond}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			conn := hostDial(t, lab, "client", network, tcpAddr)
			in := "c" + network + "-0||c" + network + "-1||TCHAU||c" + network + "-never\nc" + network + "-never-either\n"
			require.NoError(t, c.Run(ctx, conn, strings.NewReader(in)))
			assert.Equal(t, fmt.Sprintf("delivered 0 \"c%[1]s-0\" (1 try)\ndelivered 1 \"c%[1]s-1\" (1 try)\nBYE\n", network), out.String())
			requireDeliveredOnce(t, lab, "server", network, "c"+network, []string{"c" + network + "-0", "c" + network + "-1"})
		})
	}
}

func TestStopwaitSessionCap(t *testing.T) {
	lab, tcpAddr, udpAddr := swLab(t, "swcap", "--max-sessions 2")
	t.Run("tcp", func(t *testing.T) {
		var held []*hostConn
		for i := 0; i < 2; i++ {
			c := newHostConn(t, hostDial(t, lab, "client", "tcp", tcpAddr))
			c.send(frame(0, fmt.Sprintf("tcap-%d", i)))
			c.expect("ACK 0")
			held = append(held, c)
		}
		// A third session waits in the backlog, unanswered...
		late := newHostConn(t, hostDial(t, lab, "client", "tcp", tcpAddr))
		late.send(frame(0, "tcap-late"))
		_, err := late.readLine(300 * time.Millisecond)
		require.True(t, netTimeout(err), "a session beyond the cap was answered: %v", err)
		// ...until one ends: then its frame is answered.
		held[0].send("TCHAU")
		held[0].expect("BYE")
		late.expect("ACK 0")
		late.send("TCHAU")
		late.expect("BYE")
		held[1].send("TCHAU")
		held[1].expect("BYE")
	})
	t.Run("udp", func(t *testing.T) {
		var held []*hostConn
		for i := 0; i < 2; i++ {
			c := udpConn(t, lab, "client", udpAddr)
			c.sendDatagram(frame(0, fmt.Sprintf("ucap-%d", i)))
			c.expectDatagram("ACK 0")
			held = append(held, c)
		}
		late := udpConn(t, lab, "client", udpAddr)
		late.sendDatagram(frame(0, "ucap-late"))
		_, err := late.recvDatagram(300 * time.Millisecond)
		require.True(t, netTimeout(err), "a session beyond the cap was answered: %v", err)
		held[0].sendDatagram("TCHAU")
		held[0].expectDatagram("BYE")
		// The ignored frame was not kept: the client's timer resends it.
		var got string
		for try := 0; try < 50 && got == ""; try++ {
			late.sendDatagram(frame(0, "ucap-late"))
			got, _ = late.recvDatagram(200 * time.Millisecond)
		}
		require.Equal(t, "ACK 0", got)
		for _, c := range []*hostConn{late, held[1]} {
			c.sendDatagram("TCHAU")
			c.expectDatagram("BYE")
		}
	})
	requireDeliveredOnce(t, lab, "server", "tcp", "tcap", []string{"tcap-0", "tcap-1", "tcap-late"})
	requireDeliveredOnce(t, lab, "server", "udp", "ucap", []string{"ucap-0", "ucap-1", "ucap-late"})
}

func TestStopwaitCorruptedDatagramEarnsNACK(t *testing.T) {
	// Sessions must not expire between the copies (a frame after expiry
	// would get "ERROR session ended", or open a new session, instead of
	// the answer the test expects).
	lab, _, udpAddr := swLab(t, "swcrc", "--idle-timeout 1m")
	long := strings.Repeat("0123456789abcdef", 60) // so a flipped bit lands in the message
	delivered := map[string]bool{"bad-0": true}    // what may be delivered
	t.Run("wrong checksum", func(t *testing.T) {
		c := udpConn(t, lab, "client", udpAddr)
		c.sendDatagram("0 deadbeef bad-0")
		c.expectDatagram("NACK 0")
		c.sendDatagram(frame(0, "bad-0"))
		c.expectDatagram("ACK 0")
		c.sendDatagram("TCHAU")
		c.expectDatagram("BYE")
	})
	// Half of what fixed sends gets one bit flipped in its payload, with the
	// UDP checksum fixed up; half of what raw sends gets one bit flipped
	// anywhere, as the kernel's netem does, so only datagrams sent with no
	// UDP checksum (as the client sends them) reach the server's CRC check
	// when the flip is in the payload. Each socket sends the same frame ten
	// times: intact copies are ACKed (and delivered once), corrupted ones
	// NACKed, and none is ever delivered corrupted.
	for _, tc := range []struct {
		host       string
		noChecksum bool
		nack       bool
	}{
		{"fixed", false, true},
		{"raw", true, true},
		{"raw", false, false}, // the kernel drops them: they look like loss
	} {
		name := fmt.Sprintf("link corruption from %s, UDP checksum off %v", tc.host, tc.noChecksum)
		t.Run(name, func(t *testing.T) {
			c := udpConn(t, lab, tc.host, udpAddr)
			if tc.noChecksum {
				require.NoError(t, stopwait.DisableUDPChecksum(c.c.(*net.UDPConn)))
			}
			msg := fmt.Sprintf("%s-%v-%s", tc.host, tc.noChecksum, long)
			var replies []string
			for i := 0; i < 10; i++ {
				c.sendDatagram(frame(0, msg))
				if got, err := c.recvDatagram(500 * time.Millisecond); err == nil {
					replies = append(replies, got)
				}
			}
			if tc.nack {
				assert.Contains(t, replies, "NACK 0", "a corrupted frame is NACKed")
			} else {
				assert.NotContains(t, replies, "NACK 0", "with its checksum on, a corrupted datagram never reaches the server")
			}
			delivered[msg] = true
		})
	}
	// Nothing corrupted was delivered, and nothing twice. (The server's
	// lines reach its log a moment after it prints them.)
	assert.Eventually(t, func() bool {
		for _, l := range progStdout(t, lab, "server", "udp") {
			if l == "bad-0" {
				return true
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond)
	seen := map[string]bool{}
	for _, l := range progStdout(t, lab, "server", "udp") {
		if l == "Server is started" {
			continue
		}
		assert.True(t, delivered[l], "delivered a message nobody sent: %.60q", l)
		assert.False(t, seen[l], "delivered twice: %.60q", l)
		seen[l] = true
	}
	assert.True(t, seen["bad-0"])
}

func TestStopwaitBadClientsNeverStopTheServer(t *testing.T) {
	lab, tcpAddr, udpAddr := swLab(t, "swbad", "")
	t.Run("silent", func(t *testing.T) {
		c := newHostConn(t, hostDial(t, lab, "client", "tcp", tcpAddr))
		c.expect("ERROR idle timeout (no frame within 1s)")
		c.expectEOF()
		goodSession(t, lab, "client", "tcp", tcpAddr, "silent")
	})
	t.Run("garbage tcp", func(t *testing.T) {
		c := newHostConn(t, hostDial(t, lab, "client", "tcp", tcpAddr))
		for _, g := range []struct{ send, want string }{
			{"hello", "ERROR bad sequence number"},
			{"\x00\xff\xfe\x7f", "ERROR bad sequence number"},
			{"-1 00000000 x", "ERROR bad sequence number"},
			{"18446744073709551616 00000000 x", "ERROR bad sequence number"},
			{"007 00000000 x", "ERROR bad sequence number"},
			{"5 zzzz msg", "NACK 5"},
			{"0 00000000 x", "NACK 0"},
			{"0", "NACK 0"},
		} {
			c.send(g.send)
			got := c.expect(g.want, g.want)
			assert.True(t, strings.HasPrefix(got, g.want), "%q: got %q", g.send, got)
		}
		// The session survives its garbage.
		c.send(frame(0, "gt-0"))
		c.expect("ACK 0")
		c.send("TCHAU")
		c.expect("BYE")
		requireDeliveredOnce(t, lab, "server", "tcp", "gt", []string{"gt-0"})
	})
	t.Run("garbage udp", func(t *testing.T) {
		c := udpConn(t, lab, "client", udpAddr)
		c.sendDatagram("hello")
		got, err := c.recvDatagram(10 * time.Second)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(got, "ERROR bad sequence number"), "%q", got)
		c.sendDatagram("\x00\xff")
		got, err = c.recvDatagram(10 * time.Second)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(got, "ERROR "), "%q", got)
		c.sendDatagram(frame(0, "gu-0")) // garbage opened no session: this does
		c.expectDatagram("ACK 0")
		c.sendDatagram("TCHAU")
		c.expectDatagram("BYE")
	})
	t.Run("leaves mid-session", func(t *testing.T) {
		c := newHostConn(t, hostDial(t, lab, "client", "tcp", tcpAddr))
		c.send(frame(0, "gone-0"))
		c.expect("ACK 0")
		c.send(frame(1, "gone-1"))
		c.c.Close()
		goodSession(t, lab, "client", "tcp", tcpAddr, "after-gone")
	})
	t.Run("1 MB line", func(t *testing.T) {
		c := newHostConn(t, hostDial(t, lab, "client", "tcp", tcpAddr))
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			_ = c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			_, _ = c.c.Write([]byte("0 00000000 " + strings.Repeat("m", 1<<20) + "\n"))
		}()
		c.expect("ERROR frame too long (max 8192 bytes)")
		c.expectEOF()
		<-sent // bounded by the write deadline
		u := udpConn(t, lab, "client", udpAddr)
		u.sendDatagram("0 00000000 " + strings.Repeat("m", 60000))
		u.expectDatagram("ERROR frame too long (max 8192 bytes)")
		goodSession(t, lab, "client", "tcp", tcpAddr, "after-long")
		goodSession(t, lab, "client", "udp", udpAddr, "after-long-udp")
	})
	t.Run("500 tcp connections", func(t *testing.T) {
		conns := make([]net.Conn, 0, 500)
		t.Cleanup(func() {
			for _, c := range conns {
				c.Close()
			}
		})
		require.NoError(t, nsdo.DoNamed("lab-"+lab+"-client", func() error {
			for i := 0; i < 500; i++ {
				c, err := net.DialTimeout("tcp", tcpAddr, 5*time.Second)
				if err != nil {
					return fmt.Errorf("connection %d: %w", i, err)
				}
				conns = append(conns, c)
			}
			return nil
		}))
		// The first is served (the others wait beyond the cap): garbage
		// still earns its ERROR.
		first := newHostConn(t, conns[0])
		first.send("garbage")
		first.expect("ERROR bad sequence number", "ERROR bad sequence number")
		for _, c := range conns {
			c.Close()
		}
		goodSession(t, lab, "client", "tcp", tcpAddr, "after-flood")
	})
	t.Run("500 udp sockets", func(t *testing.T) {
		var socks []*net.UDPConn
		t.Cleanup(func() {
			for _, c := range socks {
				c.Close()
			}
		})
		raddr, err := net.ResolveUDPAddr("udp", udpAddr)
		require.NoError(t, err)
		require.NoError(t, nsdo.DoNamed("lab-"+lab+"-client", func() error {
			for i := 0; i < 500; i++ {
				c, err := net.DialUDP("udp", nil, raddr)
				if err != nil {
					return fmt.Errorf("socket %d: %w", i, err)
				}
				socks = append(socks, c)
				if _, err := c.Write([]byte(frame(0, fmt.Sprintf("flood-%d", i)))); err != nil {
					return err
				}
			}
			return nil
		}))
		// At most the cap (16 by default) are answered; they end cleanly.
		deadline := time.Now().Add(2 * time.Second)
		acked := 0
		buf := make([]byte, 1024)
		for _, c := range socks {
			require.NoError(t, c.SetReadDeadline(deadline))
			n, err := c.Read(buf)
			if err != nil {
				continue
			}
			require.Equal(t, "ACK 0\n", string(buf[:n]))
			acked++
			_, err = c.Write([]byte("TCHAU"))
			require.NoError(t, err)
		}
		assert.Positive(t, acked)
		assert.LessOrEqual(t, acked, stopwait.DefaultMaxSessions)
		goodSession(t, lab, "client", "udp", udpAddr, "after-udp-flood")
	})
	requireProgRunning(t, lab, "server", "tcp")
	requireProgRunning(t, lab, "server", "udp")
}

// TestStopwaitUDPExactlyOnceAfter5000Sessions (issue 13.5): 5000 UDP
// sessions from a lab host each deliver one message and end; late
// duplicates of the first and the last session's frames are then refused,
// never delivered twice. Every socket stays open until the end, so no two
// sessions share an address by port reuse.
func TestStopwaitUDPExactlyOnceAfter5000Sessions(t *testing.T) {
	lab, _, udpAddr := swLab(t, "sw5k", "")
	const n = 5000
	conns := make([]*hostConn, n)
	require.NoError(t, nsdo.DoNamed("lab-"+lab+"-client", func() error {
		for i := range conns {
			c, err := net.DialTimeout("udp", udpAddr, 5*time.Second)
			if err != nil {
				return fmt.Errorf("socket %d: %w", i, err)
			}
			conns[i] = newHostConn(t, c)
		}
		return nil
	}))
	for i, c := range conns {
		c.sendDatagram(frame(0, fmt.Sprintf("s5k-%d", i)))
		c.expectDatagram("ACK 0")
		c.sendDatagram("TCHAU")
		c.expectDatagram("BYE")
	}
	for _, i := range []int{0, n - 1} {
		conns[i].sendDatagram(frame(0, fmt.Sprintf("s5k-%d", i))) // a late duplicate
		conns[i].expectDatagram("ERROR session ended")
	}
	awaitProgLine(t, lab, "server", "udp", `^s5k-4999$`, 1)
	assert.Equal(t, n, progLineCount(lab, "server", "udp", regexp.MustCompile(`^s5k-\d+$`)), "each delivered once")
}

// TestStopwaitDeliveredMessageIsOneEscapedLine (issues 13.5, 17.3): a
// datagram holding a newline, CR and ESC is one escaped line on the
// server's output; over TCP a frame sent without a newline is understood
// after the pause (issue 10.2).
func TestStopwaitDeliveredMessageIsOneEscapedLine(t *testing.T) {
	lab, tcpAddr, udpAddr := swLab(t, "swesc", "")
	u := udpConn(t, lab, "client", udpAddr)
	u.sendDatagram(frame(0, "esc-u\nforged line\r\x1b[2J"))
	u.expectDatagram("ACK 0")
	awaitProgLine(t, lab, "server", "udp", `^esc-u\\nforged line\\r\\x1b\[2J$`, 1)
	assert.Zero(t, progLineCount(lab, "server", "udp", regexp.MustCompile(`^forged line`)))

	c := newHostConn(t, hostDial(t, lab, "client", "tcp", tcpAddr))
	_, err := c.c.Write([]byte(frame(0, "esc-t\x07bell"))) // no newline
	require.NoError(t, err)
	c.expect("ACK 0")
	awaitProgLine(t, lab, "server", "tcp", `^esc-t\\abell$`, 1)
}
