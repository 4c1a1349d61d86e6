package nodes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/labctl/labctl/internal/nsdo"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// PingResult is the outcome of echoes from one node to another.
type PingResult struct {
	From, To string
	Addr     string
	Sent     int
	Received int
	RTTs     []time.Duration
	Err      error
}

// Ping sends count ICMP echo requests from node from to node to's first
// address, one every interval, each waiting up to timeout. It uses the
// kernel's unprivileged ICMP sockets (the lab allows them in every node),
// so the kernel matches replies to this socket and several pings run at
// once without seeing each other's replies.
func Ping(ctx context.Context, st *State, from, to string, count int, interval, timeout time.Duration) PingResult {
	r := PingResult{From: from, To: to}
	src, ok := st.Node(from)
	if !ok {
		r.Err = fmt.Errorf("no node %q in lab %q", from, st.Lab)
		return r
	}
	dst, ok := st.Node(to)
	if !ok {
		r.Err = fmt.Errorf("no node %q in lab %q", to, st.Lab)
		return r
	}
	r.Addr = dst.Addr()
	if r.Addr == "" {
		r.Err = fmt.Errorf("node %q has no address", to)
		return r
	}
	var conn *icmp.PacketConn
	err := nsdo.DoNamed(src.NS, func() error {
		var err error
		conn, err = icmp.ListenPacket("udp4", "0.0.0.0")
		return err
	})
	if err != nil {
		r.Err = fmt.Errorf("node %q: icmp socket: %w", from, err)
		return r
	}
	defer conn.Close()
	daddr := &net.UDPAddr{IP: net.ParseIP(r.Addr)}
	buf := make([]byte, 1500)
	for seq := 1; seq <= count && ctx.Err() == nil; seq++ {
		if seq > 1 {
			select {
			case <-ctx.Done():
			case <-time.After(interval):
			}
		}
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: os.Getpid() & 0xffff, Seq: seq, Data: []byte("labctl-ping")}}
		b, _ := msg.Marshal(nil)
		start := time.Now()
		if _, err := conn.WriteTo(b, daddr); err != nil {
			r.Err = fmt.Errorf("send to %s: %w", r.Addr, err)
			return r
		}
		r.Sent++
		deadline := start.Add(timeout)
		for {
			_ = conn.SetReadDeadline(deadline)
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				break // timed out: this echo is lost
			}
			m, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.Seq == seq {
				r.Received++
				r.RTTs = append(r.RTTs, time.Since(start))
				break
			}
		}
	}
	return r
}

// Addr returns the node's first address without prefix length.
func (n *NodeState) Addr() string {
	for _, i := range n.Ifaces {
		for _, a := range i.Addrs {
			ip, _, err := net.ParseCIDR(a)
			if err == nil {
				return ip.String()
			}
		}
	}
	return ""
}

// PingAll pings every ordered pair of hosts and routers. A pair counts as
// reachable when one of tries echoes comes back within timeout, so that a
// lossy link shows as slow, not as broken. Results come in node order.
func PingAll(ctx context.Context, st *State, tries int, timeout time.Duration, workers int) []PingResult {
	var names []string
	for _, n := range st.Nodes {
		if n.Kind != "switch" && n.Addr() != "" {
			names = append(names, n.Name)
		}
	}
	type pair struct{ i, j int }
	var pairs []pair
	for i := range names {
		for j := range names {
			if i != j {
				pairs = append(pairs, pair{i, j})
			}
		}
	}
	results := make([]PingResult, len(pairs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	for k, p := range pairs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[k] = pingUntil(ctx, st, names[p.i], names[p.j], tries, timeout)
		}()
	}
	wg.Wait()
	return results
}

// pingUntil sends up to tries echoes and stops at the first reply.
func pingUntil(ctx context.Context, st *State, from, to string, tries int, timeout time.Duration) PingResult {
	var r PingResult
	for t := 0; t < tries; t++ {
		r = Ping(ctx, st, from, to, 1, 0, timeout)
		if r.Received > 0 || r.Err != nil {
			return r
		}
	}
	return r
}

// RTTStats summarises round-trip times.
func RTTStats(rtts []time.Duration) (min, avg, max time.Duration, err error) {
	if len(rtts) == 0 {
		return 0, 0, 0, errors.New("no replies")
	}
	s := append([]time.Duration(nil), rtts...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return s[0], sum / time.Duration(len(s)), s[len(s)-1], nil
}
