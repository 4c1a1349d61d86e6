package nodes

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
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

func dialIn(ns, addr string) (net.Conn, error) {
	var c net.Conn
	err := nsdo.DoNamed(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, dialLimit)
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
			up, err := dialIn(ns, target)
			if err != nil {
				return // the client sees its connection closed, as if refused
			}
			defer up.Close()
			splice(c, up)
		}()
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
				ln, err := listenIn(h.NS, net.JoinHostPort(lo, strconv.Itoa(f.Port)))
				if err != nil {
					s.emit("labctl", "sys", fmt.Sprintf("%s: cannot forward localhost port %d to %s: %v", h.Name, f.Port, f.Node, err))
					continue
				}
				go s.relay(ctx, h.NS, ln, target)
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

func (e *exposed) ch(host string, port int) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := host + "/" + strconv.Itoa(port)
	if e.ports[k] == nil {
		e.ports[k] = make(chan struct{})
	}
	return e.ports[k]
}

// watchExpose waits, per host with expose:, for a server to listen on an
// exposed port; if it listens on loopback only (127.0.0.1, or the host's
// own name), a forwarder on the host's lab addresses leads to it. A
// server that listens on the lab's address needs none.
func (s *Supervisor) watchExpose(ctx context.Context, h PlanHost) {
	todo := map[int]bool{}
	for _, p := range h.Expose {
		todo[p] = true
	}
	t := time.NewTicker(exposePoll)
	defer t.Stop()
	for len(todo) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for port := range todo {
			var addrs []netip.Addr
			_ = nsdo.DoNamed(h.NS, func() error {
				addrs = procSockets("/proc/thread-self/net", "tcp", port)
				return nil
			})
			if len(addrs) == 0 {
				continue
			}
			delete(todo, port)
			if public(addrs) {
				close(s.exposed.ch(h.Name, port))
				continue
			}
			target := net.JoinHostPort(addrs[0].Unmap().String(), strconv.Itoa(port))
			n := 0
			for _, a := range h.Addrs {
				ln, err := listenIn(h.NS, net.JoinHostPort(a, strconv.Itoa(port)))
				if err != nil {
					s.emit("labctl", "sys", fmt.Sprintf("%s: cannot expose port %d on %s: %v", h.Name, port, a, err))
					continue
				}
				n++
				go s.relay(ctx, h.NS, ln, target)
			}
			if n > 0 {
				s.emit("labctl", "sys", fmt.Sprintf("%s: port %d listens on %s only: exposed on %v", h.Name, port, addrs[0].Unmap(), h.Addrs))
				close(s.exposed.ch(h.Name, port))
			}
		}
	}
}

// watchReady decides when the program is ready: at once without a
// readiness condition; when its host has a TCP socket listening on the
// port (or a UDP socket bound to it) that other hosts can reach; or when
// the line matcher in line() fires. Each has a deadline. A socket on
// loopback only counts when the host exposes the port, once the
// forwarder is up.
func (p *proc) watchReady(pid int, exited <-chan struct{}) {
	r := p.p.Ready
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
	var tick <-chan time.Time
	proto, port := "tcp", topo.ParsePort(r.TCP)
	if r.UDP != "" {
		proto, port = "udp", topo.ParsePort(r.UDP)
	}
	if r.TCP != "" || r.UDP != "" {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	var exposeUp chan struct{}
	if proto == "tcp" && exposes(p.host, port) {
		exposeUp = p.s.exposed.ch(p.host.Name, port)
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
			p.line("sys", fmt.Sprintf("ready (port %d exposed on the lab's address)", port))
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
			case why == "" && exposeUp == nil:
				why = fmt.Sprintf("%s port %d is bound to %s only, which other hosts cannot reach (bind 0.0.0.0, or give host %s `expose: [%d]`)",
					proto, port, addrs[0].Unmap(), p.host.Name, port)
				if proto == "udp" {
					why = fmt.Sprintf("udp port %d is bound to %s only, which other hosts cannot reach (bind 0.0.0.0)", port, addrs[0].Unmap())
				}
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
