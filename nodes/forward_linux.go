package nodes

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/topo"
)

const (
	// forwardConns bounds the connections one forwarder relays at once;
	// more are accepted and closed at once.
	forwardConns = 256
	// exposePoll is how often the supervisor looks for loopback-only
	// listeners to expose.
	exposePoll = 50 * time.Millisecond
	dialLimit  = 5 * time.Second
	// udpSessions bounds the clients one UDP forwarder serves at once;
	// udpIdle ends a client's session.
	udpSessions = 256
	udpIdle     = 60 * time.Second
)

// listenIn makes a TCP listener inside a host's namespace: a socket keeps
// the namespace it was made in, whichever thread uses it later.
func listenIn(ns, addr string) (net.Listener, error) {
	var ln net.Listener
	err := nsdo.DoNamed(ns, func() error {
		var err error
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	return ln, err
}

func listenPacketIn(ns, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := nsdo.DoNamed(ns, func() error {
		var err error
		pc, err = net.ListenPacket("udp4", addr)
		return err
	})
	return pc, err
}

func dialIn(ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := nsdo.DoNamed(ns, func() error {
		var err error
		c, err = net.DialTimeout(network, addr, dialLimit)
		return err
	})
	return c, err
}

// relay accepts on ln until ctx ends, and joins each connection to a new
// one to target, made inside ns.
func (s *Supervisor) relay(ctx context.Context, ns string, ln net.Listener, target string) {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	slots := make(chan struct{}, forwardConns)
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			c.Close()
			continue
		}
		go func() {
			defer func() { <-slots }()
			defer c.Close()
			up, err := dialIn(ns, "tcp4", target)
			if err != nil {
				return // the client sees its connection closed, as if refused
			}
			defer up.Close()
			splice(c, up)
		}()
	}
}

// relayUDP passes datagrams between the clients of pc and target: each
// client address gets its own socket to target, made inside ns, so
// replies find their way back. At most udpSessions at once; a session
// idle for udpIdle ends.
func (s *Supervisor) relayUDP(ctx context.Context, ns string, pc net.PacketConn, target string) {
	go func() {
		<-ctx.Done()
		pc.Close()
	}()
	var mu sync.Mutex
	sessions := map[string]net.Conn{}
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		key := from.String()
		mu.Lock()
		up := sessions[key]
		mu.Unlock()
		if up == nil {
			mu.Lock()
			full := len(sessions) >= udpSessions
			mu.Unlock()
			if full {
				continue // dropped, as a full queue would
			}
			if up, err = dialIn(ns, "udp4", target); err != nil {
				continue
			}
			mu.Lock()
			sessions[key] = up
			mu.Unlock()
			go func(up net.Conn, from net.Addr) {
				defer func() {
					mu.Lock()
					delete(sessions, from.String())
					mu.Unlock()
					up.Close()
				}()
				b := make([]byte, 64<<10)
				for {
					_ = up.SetReadDeadline(time.Now().Add(udpIdle))
					m, err := up.Read(b)
					if err != nil {
						if ne, ok := err.(net.Error); ok && !ne.Timeout() && ctx.Err() == nil {
							continue // ICMP refusal: the server may come back
						}
						return
					}
					if _, err := pc.WriteTo(b[:m], from); err != nil {
						return
					}
				}
			}(up, from)
		}
		_, _ = up.Write(buf[:n])
	}
}

// splice copies both ways until both sides are done, passing on each
// half-close.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		} else {
			dst.Close()
		}
	}
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
}

// startLocalhost starts each host's localhost: forwarders, on 127.0.0.1
// and on the address its own name resolves to.
func (s *Supervisor) startLocalhost(ctx context.Context) {
	for _, h := range s.plan.Hosts {
		for _, f := range h.Localhost {
			target := net.JoinHostPort(f.Addr, strconv.Itoa(f.ToPort))
			for _, lo := range []string{"127.0.0.1", topo.HostnameAddr} {
				addr := net.JoinHostPort(lo, strconv.Itoa(f.Port))
				ln, err := listenIn(h.NS, addr)
				if err != nil {
					s.emit("labctl", "sys", fmt.Sprintf("%s: cannot forward localhost TCP port %d to %s: %v", h.Name, f.Port, f.Node, err))
				} else {
					go s.relay(ctx, h.NS, ln, target)
				}
				pc, err := listenPacketIn(h.NS, addr)
				if err != nil {
					s.emit("labctl", "sys", fmt.Sprintf("%s: cannot forward localhost UDP port %d to %s: %v", h.Name, f.Port, f.Node, err))
					continue
				}
				go s.relayUDP(ctx, h.NS, pc, target)
			}
		}
	}
}

// exposed is a host's set of exposed ports that have their forwarder
// (closed channel: up).
type exposed struct {
	mu    sync.Mutex
	ports map[string]chan struct{} // "host/port"
}

func (e *exposed) ch(host, proto string, port int) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := host + "/" + proto + "/" + strconv.Itoa(port)
	if e.ports[k] == nil {
		e.ports[k] = make(chan struct{})
	}
	return e.ports[k]
}

// watchExpose waits, per host with expose:, for a server to listen on an
// exposed TCP port or bind an exposed UDP port; if it does so on loopback
// only (127.0.0.1, or the host's own name), a forwarder on the host's lab
// addresses leads to it. A server on the lab's address needs none.
func (s *Supervisor) watchExpose(ctx context.Context, h PlanHost) {
	type key struct {
		proto string
		port  int
	}
	todo := map[key]bool{}
	for _, p := range h.Expose {
		todo[key{"tcp", p}], todo[key{"udp", p}] = true, true
	}
	// Poll often at first, when servers start; then less.
	every, start := exposePoll, time.Now()
	for len(todo) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		if time.Since(start) > 10*time.Second && every < time.Second {
			every *= 2
		}
		found := map[key][]netip.Addr{}
		_ = nsdo.DoNamed(h.NS, func() error {
			for k := range todo {
				if addrs := procSockets("/proc/thread-self/net", k.proto, k.port); len(addrs) > 0 {
					found[k] = addrs
				}
			}
			return nil
		})
		for k, addrs := range found {
			delete(todo, k)
			if public(addrs) {
				close(s.exposed.ch(h.Name, k.proto, k.port))
				continue
			}
			if s.expose(ctx, h, k.proto, k.port, addrs[0].Unmap()) {
				close(s.exposed.ch(h.Name, k.proto, k.port))
			}
		}
	}
}

// expose starts the forwarders of one port on the host's lab addresses.
func (s *Supervisor) expose(ctx context.Context, h PlanHost, proto string, port int, lo netip.Addr) bool {
	target := net.JoinHostPort(lo.String(), strconv.Itoa(port))
	n := 0
	for _, a := range h.Addrs {
		addr := net.JoinHostPort(a, strconv.Itoa(port))
		var err error
		if proto == "tcp" {
			var ln net.Listener
			if ln, err = listenIn(h.NS, addr); err == nil {
				go s.relay(ctx, h.NS, ln, target)
			}
		} else {
			var pc net.PacketConn
			if pc, err = listenPacketIn(h.NS, addr); err == nil {
				go s.relayUDP(ctx, h.NS, pc, target)
			}
		}
		if err != nil {
			s.emit("labctl", "sys", fmt.Sprintf("%s: cannot expose %s port %d on %s: %v", h.Name, proto, port, a, err))
			continue
		}
		n++
	}
	if n > 0 {
		s.emit("labctl", "sys", fmt.Sprintf("%s: %s port %d listens on %s only: exposed on %s", h.Name, proto, port, lo, strings.Join(h.Addrs, ", ")))
	}
	return n > 0
}

// watchReady decides when the program is ready: at once without a
// readiness condition; when its host has a TCP socket listening on the
// port (or a UDP socket bound to it) that other hosts can reach; or when
// the line matcher in line() fires. Each has a deadline. A socket on
// loopback only counts when the host exposes the port, once the
// forwarder is up.
func (p *proc) watchReady(pid int, exited <-chan struct{}) {
	r := p.p.Ready
	proto, port := "tcp", 0
	if r != nil {
		port = topo.ParsePort(r.TCP)
		if r.UDP != "" {
			proto, port = "udp", topo.ParsePort(r.UDP)
		}
	}
	// A replaced server's ports are learned (autoports_linux.go): it is
	// ready once the port named for it, or without StrictReady any port
	// it listens on, is reachable and forwarded.
	var learned, named <-chan struct{}
	learning := p.learns()
	if learning {
		learned, named = p.learnPorts(pid, exited, proto, port)
		if p.p.StrictReady {
			learned = nil
		}
	}
	if r == nil {
		p.markReady()
		return
	}
	timeout := r.Timeout.D()
	if timeout == 0 {
		timeout = defaultReady
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	// The socket tables of the host also count, as for the lab's own
	// programs (a server that daemonizes leaves its process tree), for
	// the lab's port and exposed ones, whose forwarders the lab declares;
	// a port named only by --ready is the learner's alone.
	direct := !learning || exposes(p.host, port) || port == labPort(p.p)
	var tick <-chan time.Time
	if (r.TCP != "" || r.UDP != "") && direct {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	var exposeUp chan struct{}
	if exposes(p.host, port) && direct {
		exposeUp = p.s.exposed.ch(p.host.Name, proto, port)
	}
	why := ""
	for {
		select {
		case <-p.ready:
			return
		case <-exited:
			p.markFailed("exited before it was ready")
			return
		case <-deadline.C:
			msg := fmt.Sprintf("not ready within %s", timeout)
			if why != "" {
				msg += ": " + why
			}
			p.line("sys", msg)
			p.markFailed(msg)
			return
		case <-exposeUp:
			p.line("sys", fmt.Sprintf("ready (%s port %d reachable on the lab's address)", proto, port))
			p.markReady()
			return
		case <-learned:
			p.line("sys", "ready (a port it listens on is reachable from the lab)")
			p.markReady()
			return
		case <-named:
			p.line("sys", fmt.Sprintf("ready (%s port %d reachable from the lab)", proto, port))
			p.markReady()
			return
		case <-tick:
			addrs := socketAddrs(pid, proto, port)
			switch {
			case len(addrs) == 0:
			case public(addrs):
				p.line("sys", "ready")
				p.markReady()
				return
			case why == "" && exposeUp == nil && !learning:
				why = fmt.Sprintf("%s port %d is bound to %s only, which other hosts cannot reach (bind 0.0.0.0, or give host %s `expose: [%d]`)",
					proto, port, addrs[0].Unmap(), p.host.Name, port)
				p.line("sys", "not ready yet: "+why)
			}
		}
	}
}

func exposes(h PlanHost, port int) bool {
	for _, p := range h.Expose {
		if p == port {
			return true
		}
	}
	return false
}
