package console

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/nodes"
	"github.com/labctl/labctl/topo"
)

// defaultIperfTime is how long iperf sends, as Mininet's `iperf` (5 s).
const defaultIperfTime = 5 * time.Second

// maxIperfTime bounds one test.
const maxIperfTime = 60 * time.Second

// iperfArgs parses `[A B] [-t SECS]`.
func (c *Console) iperfArgs(f []string) (a, b string, d time.Duration, err error) {
	d = defaultIperfTime
	var ns []string
	for i := 0; i < len(f); i++ {
		if f[i] == "-t" && i+1 < len(f) {
			s, err := strconv.ParseFloat(f[i+1], 64)
			if err != nil || s <= 0 || time.Duration(s*float64(time.Second)) > maxIperfTime {
				return "", "", 0, fmt.Errorf("-t %q: want seconds, at most %v", f[i+1], maxIperfTime)
			}
			d = time.Duration(s * float64(time.Second))
			i++
			continue
		}
		ns = append(ns, f[i])
	}
	hs := c.hosts()
	switch len(ns) {
	case 0:
		if len(hs) < 2 {
			return "", "", 0, fmt.Errorf("lab %s has fewer than two hosts", c.Lab)
		}
		a, b = hs[0], hs[len(hs)-1]
	case 2:
		a, b = ns[0], ns[1]
	default:
		return "", "", 0, fmt.Errorf("name two hosts, or none")
	}
	for _, n := range []string{a, b} {
		nd, ok := c.st.Node(n)
		if !ok {
			return "", "", 0, fmt.Errorf("no node %q", n)
		}
		if nd.Addr() == "" {
			return "", "", 0, fmt.Errorf("node %q has no address", n)
		}
	}
	return a, b, d, nil
}

func cmdIperf(ctx context.Context, c *Console, args string) error {
	a, b, d, err := c.iperfArgs(strings.Fields(args))
	if err != nil {
		return err
	}
	c.say("*** Iperf: testing TCP bandwidth between %s and %s", a, b)
	srv, cli, err := TCPThroughput(ctx, c.st, a, b, d)
	if err != nil {
		return err
	}
	c.say("*** Results: ['%s', '%s']", bitsPerSec(srv), bitsPerSec(cli))
	return nil
}

func cmdIperfUDP(ctx context.Context, c *Console, args string) error {
	f := strings.Fields(args)
	if len(f) == 0 {
		return fmt.Errorf("usage: iperfudp BW [A B] [-t SECS] (BW like 10M)")
	}
	bw, err := topo.ParseRate(f[0] + "bit")
	if err != nil || bw <= 0 {
		return fmt.Errorf("bandwidth %q: want bits per second like 10M or 500K", f[0])
	}
	a, b, d, err := c.iperfArgs(f[1:])
	if err != nil {
		return err
	}
	c.say("*** Iperf: testing UDP bandwidth between %s and %s", a, b)
	srv, cli, err := UDPThroughput(ctx, c.st, a, b, float64(bw), d)
	if err != nil {
		return err
	}
	c.say("*** Results: ['%s', '%s', '%s']", f[0], bitsPerSec(srv), bitsPerSec(cli))
	return nil
}

// bitsPerSec formats a rate the way iperf does.
func bitsPerSec(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.2f Gbits/sec", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.2f Mbits/sec", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.2f Kbits/sec", bps/1e3)
	}
	return fmt.Sprintf("%.0f bits/sec", bps)
}

// listenIn and dialIn make sockets inside a node's namespace: a socket
// stays in the namespace it was made in, whatever thread uses it later.
func listenIn(st *nodes.State, node, network string) (addr string, ln net.Listener, pc net.PacketConn, err error) {
	n, _ := st.Node(node)
	addr = n.Addr()
	err = nsdo.DoNamed(n.NS, func() error {
		var err error
		if network == "tcp4" {
			ln, err = net.Listen(network, net.JoinHostPort(addr, "0"))
		} else {
			pc, err = net.ListenPacket(network, net.JoinHostPort(addr, "0"))
		}
		return err
	})
	return addr, ln, pc, err
}

func dialIn(ctx context.Context, st *nodes.State, node, network, to string) (net.Conn, error) {
	n, _ := st.Node(node)
	var conn net.Conn
	err := nsdo.DoNamed(n.NS, func() error {
		var err error
		d := net.Dialer{Timeout: 5 * time.Second}
		conn, err = d.DialContext(ctx, network, to)
		return err
	})
	return conn, err
}

// TCPThroughput sends over one TCP connection from a to b for d and
// returns the rate b received (from its first byte to the end) and the rate
// a saw, counted until b confirmed every byte, so a's figure does not
// include what was still in its socket buffer.
func TCPThroughput(ctx context.Context, st *nodes.State, a, b string, d time.Duration) (server, client float64, err error) {
	_, ln, _, err := listenIn(st, b, "tcp4")
	if err != nil {
		return 0, 0, fmt.Errorf("iperf: listen on %s: %w", b, err)
	}
	defer ln.Close()
	type res struct {
		rate float64
		err  error
	}
	got := make(chan res, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- res{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(d + 30*time.Second))
		buf := make([]byte, 128<<10)
		var n int64
		var first time.Time
		for {
			k, err := conn.Read(buf)
			if k > 0 && first.IsZero() {
				first = time.Now()
			}
			n += int64(k)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				got <- res{err: err}
				return
			}
		}
		el := time.Since(first)
		var ack [8]byte
		binary.BigEndian.PutUint64(ack[:], uint64(n))
		_, err = conn.Write(ack[:])
		if el <= 0 {
			got <- res{err: errors.New("nothing received")}
			return
		}
		got <- res{rate: float64(n) * 8 / el.Seconds(), err: err}
	}()
	conn, err := dialIn(ctx, st, a, "tcp4", ln.Addr().String())
	if err != nil {
		return 0, 0, fmt.Errorf("iperf: %s cannot reach %s: %w", a, b, err)
	}
	defer conn.Close()
	tc := conn.(*net.TCPConn)
	buf := make([]byte, 128<<10)
	t0 := time.Now()
	end := t0.Add(d)
	_ = conn.SetDeadline(end.Add(30 * time.Second))
	for time.Now().Before(end) && ctx.Err() == nil {
		_ = conn.SetWriteDeadline(end)
		if _, err := tc.Write(buf); err != nil && !errors.Is(err, errTimeout) && !isTimeout(err) {
			return 0, 0, fmt.Errorf("iperf: send: %w", err)
		}
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.CloseWrite(); err != nil {
		return 0, 0, err
	}
	var ack [8]byte
	if _, err := io.ReadFull(tc, ack[:]); err != nil {
		return 0, 0, fmt.Errorf("iperf: %s did not confirm: %w", b, err)
	}
	el := time.Since(t0)
	r := <-got
	if r.err != nil {
		return 0, 0, fmt.Errorf("iperf: receive on %s: %w", b, r.err)
	}
	return r.rate, float64(binary.BigEndian.Uint64(ack[:])) * 8 / el.Seconds(), ctx.Err()
}

var errTimeout = errors.New("timeout")

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// udpPayload is iperf's default datagram size.
const udpPayload = 1470

// UDPThroughput paces datagrams from a to b at bw bits/s for d and returns
// the rate b received (between its first and last datagram) and the rate a
// sent.
func UDPThroughput(ctx context.Context, st *nodes.State, a, b string, bw float64, d time.Duration) (server, client float64, err error) {
	_, _, pc, err := listenIn(st, b, "udp4")
	if err != nil {
		return 0, 0, fmt.Errorf("iperfudp: listen on %s: %w", b, err)
	}
	defer pc.Close()
	conn, err := dialIn(ctx, st, a, "udp4", pc.LocalAddr().String())
	if err != nil {
		return 0, 0, fmt.Errorf("iperfudp: %w", err)
	}
	defer conn.Close()
	type res struct {
		bytes       int64
		first, last time.Time
	}
	got := make(chan res, 1)
	go func() {
		var r res
		buf := make([]byte, 64<<10)
		for {
			// The sender's end marker may be lost: silence ends it too.
			_ = pc.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				break
			}
			if n == 3 && string(buf[:3]) == "END" {
				break
			}
			now := time.Now()
			if r.first.IsZero() {
				r.first = now
			}
			r.last, r.bytes = now, r.bytes+int64(n)
		}
		got <- r
	}()
	pkt := make([]byte, udpPayload)
	gap := time.Duration(float64(udpPayload*8) / bw * float64(time.Second))
	t0 := time.Now()
	var sent int64
	for i := 0; ctx.Err() == nil; i++ {
		next := t0.Add(time.Duration(i) * gap)
		if next.After(t0.Add(d)) {
			break
		}
		if w := time.Until(next); w > 0 {
			time.Sleep(w)
		}
		if n, err := conn.Write(pkt); err == nil {
			sent += int64(n)
		}
	}
	el := time.Since(t0)
	for i := 0; i < 5; i++ {
		_, _ = conn.Write([]byte("END"))
		time.Sleep(10 * time.Millisecond)
	}
	r := <-got
	if r.bytes == 0 {
		return 0, float64(sent) * 8 / el.Seconds(), fmt.Errorf("iperfudp: %s received nothing from %s", b, a)
	}
	span := r.last.Sub(r.first)
	if span <= 0 {
		span = el
	}
	return float64(r.bytes) * 8 / span.Seconds(), float64(sent) * 8 / el.Seconds(), ctx.Err()
}
