package nodes

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labctl/labctl/topo"
)

// Their own ports: a replaced server (a student's) listens on whatever
// port it likes, often on 127.0.0.1 only. The supervisor learns those
// ports from the sockets of the program's process tree, exposes a
// loopback-only one on the host's lab addresses (as `expose:` does) and
// starts a localhost forwarder for it on every client host (those with
// `localhost: auto`, and those that forward some port to this host), so a
// student client that connects to localhost:PORT reaches it.

const (
	// learnPoll is how often a replaced server's sockets are read at
	// first; after learnFast it backs off to learnSlow.
	learnPoll = 50 * time.Millisecond
	learnFast = 10 * time.Second
	learnSlow = time.Second
	// maxLearned bounds the ports one program may publish; more are
	// ignored (and logged once).
	maxLearned = 32
	// maxTree bounds the processes of a program's tree that are read.
	maxTree = 256
)

// autoPorts is the supervisor's record of the ports published so far
// ("host/proto/port"), so a port is exposed and forwarded once however
// often its server restarts.
type autoPorts struct {
	ctx  context.Context
	mu   sync.Mutex
	done map[string]bool
	// to: "client/proto/port" -> the host its forwarder leads to.
	to map[string]string
}

// learnedPort is one socket a program listens on.
type learnedPort struct {
	proto string
	port  int
	addrs []netip.Addr
}

// learns reports whether the supervisor learns this program's ports: a
// replaced program that the lab treats as a server (it has TCP or UDP
// readiness, or is a service).
func (p *proc) learns() bool {
	if !p.p.Overridden {
		return false
	}
	return p.p.Service || (p.p.Ready != nil && (p.p.Ready.TCP != "" || p.p.Ready.UDP != ""))
}

// learnPorts watches the sockets of the program's process tree until it
// exits, and publishes each port it listens on. first is closed once the
// first port is reachable from the lab (and forwarded on the client
// hosts), named once proto/port is.
func (p *proc) learnPorts(pid int, exited <-chan struct{}, proto string, port int) (first, named <-chan struct{}) {
	firstC, namedC := make(chan struct{}), make(chan struct{})
	go func() {
		seen := map[string]bool{}
		every, start := learnPoll, time.Now()
		var once sync.Once
		warned := false
		for {
			for _, lp := range programSockets(pid) {
				k := lp.proto + "/" + strconv.Itoa(lp.port)
				if seen[k] {
					continue
				}
				if len(seen) >= maxLearned {
					if !warned {
						p.line("sys", fmt.Sprintf("listens on more than %d ports: the others are not forwarded", maxLearned))
						warned = true
					}
					continue
				}
				seen[k] = true
				if p.s.publish(p, lp) {
					once.Do(func() { close(firstC) })
					if lp.proto == proto && lp.port == port {
						close(namedC)
					}
				}
			}
			if time.Since(start) > learnFast {
				every = learnSlow
			}
			select {
			case <-exited:
				return
			case <-p.s.auto.ctx.Done():
				return
			case <-time.After(every):
			}
		}
	}()
	return firstC, namedC
}

// publish makes one learned port reachable: exposed on the serving host's
// lab addresses if it listens on loopback only, and forwarded from the
// client hosts' localhost. It reports whether the port is reachable.
func (s *Supervisor) publish(p *proc, lp learnedPort) bool {
	h := p.host
	ctx := s.auto.ctx
	key := h.Name + "/" + lp.proto + "/" + strconv.Itoa(lp.port)
	s.auto.mu.Lock()
	defer s.auto.mu.Unlock()
	if s.auto.done[key] {
		return true
	}
	how := "on " + lp.addrs[0].Unmap().String()
	switch {
	case public(lp.addrs):
	case exposes(h, lp.port):
		// watchExpose makes this one reachable; wait for it.
		select {
		case <-s.exposed.ch(h.Name, lp.proto, lp.port):
		case <-ctx.Done():
			return false
		case <-time.After(dialLimit):
			return false
		}
	default:
		if !s.expose(ctx, h, lp.proto, lp.port, lp.addrs[0].Unmap()) {
			return false
		}
		how += ", exposed on " + strings.Join(h.Addrs, ", ")
	}
	var clients []string
	if len(h.Addrs) > 0 {
		target := net.JoinHostPort(h.Addrs[0], strconv.Itoa(lp.port))
		for _, c := range s.plan.Hosts {
			if c.Name == h.Name || !clientOf(c, h.Name) {
				continue
			}
			if f, ok := forwardsPort(c, lp.port); ok {
				if f.Node != h.Name {
					s.emit("labctl", "sys", fmt.Sprintf("%s: localhost port %d already leads to %s, not to %s's server", c.Name, lp.port, f.Node, h.Name))
				}
				continue
			}
			ck := c.Name + "/" + lp.proto + "/" + strconv.Itoa(lp.port)
			if to, ok := s.auto.to[ck]; ok {
				if to != h.Name {
					s.emit("labctl", "sys", fmt.Sprintf("%s: localhost %s port %d already leads to %s, not to %s", c.Name, lp.proto, lp.port, to, h.Name))
				}
				continue
			}
			if s.forwardLocal(ctx, c, lp.proto, lp.port, target) {
				s.auto.to[ck] = h.Name
				clients = append(clients, c.Name)
			}
		}
	}
	msg := fmt.Sprintf("%s: %s listens on %s port %d (%s)", h.Name, p.p.Name, lp.proto, lp.port, how)
	if len(clients) > 0 {
		msg += fmt.Sprintf("; localhost:%d on %s leads to it", lp.port, strings.Join(clients, ", "))
	}
	s.emit("labctl", "sys", msg)
	p.line("sys", msg)
	s.auto.done[key] = true
	if !exposes(h, lp.port) {
		close(s.exposed.ch(h.Name, lp.proto, lp.port))
	}
	s.alias(p, lp)
	return true
}

// labPort is the port the lab names for a program (its ready: port
// before --ready replaced it), 0 if none.
func labPort(p topo.Program) int {
	r := p.Ready
	if p.StrictReady {
		r = p.LabReady
	}
	if r == nil {
		return 0
	}
	if r.UDP != "" {
		return topo.ParsePort(r.UDP)
	}
	return topo.ParsePort(r.TCP)
}

// alias leads the port the lab names for a replaced server (its ready:
// port) to the first port of that protocol the program listens on
// instead (the lowest of those seen at once; with --ready, the port it
// names), on the host's lab addresses: the lab's reference clients, and
// the clients' localhost: forwarders of that port, reach it. Called with
// s.auto.mu held.
func (s *Supervisor) alias(p *proc, lp learnedPort) {
	r, h := p.p.Ready, p.host
	if p.p.StrictReady {
		r = p.p.LabReady
	}
	if r == nil {
		return
	}
	want := topo.ParsePort(r.TCP)
	if lp.proto == "udp" {
		want = topo.ParsePort(r.UDP)
	}
	ak := h.Name + "/alias/" + lp.proto
	if want <= 0 || want == lp.port || s.auto.done[ak] {
		return
	}
	if p.p.StrictReady && p.p.Ready != nil {
		// The port named for the program is its service: only that one
		// stands for the lab's.
		named := p.p.Ready.TCP
		if lp.proto == "udp" {
			named = p.p.Ready.UDP
		}
		if topo.ParsePort(named) != lp.port {
			return
		}
	}
	s.auto.done[ak] = true
	to := lp.addrs[0].Unmap()
	if to.IsUnspecified() {
		to = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	target := net.JoinHostPort(to.String(), strconv.Itoa(lp.port))
	var up []string
	for _, a := range h.Addrs {
		addr := net.JoinHostPort(a, strconv.Itoa(want))
		var err error
		if lp.proto == "tcp" {
			var ln net.Listener
			if ln, err = listenIn(h.NS, addr); err == nil {
				go s.relay(s.auto.ctx, h.NS, ln, target)
			}
		} else {
			var pc net.PacketConn
			if pc, err = listenPacketIn(h.NS, addr); err == nil {
				go s.relayUDP(s.auto.ctx, h.NS, pc, target)
			}
		}
		if err != nil {
			s.emit("labctl", "sys", fmt.Sprintf("%s: cannot lead the lab's %s port %d to %s: %v", h.Name, lp.proto, want, target, err))
			continue
		}
		up = append(up, a)
	}
	if len(up) > 0 {
		msg := fmt.Sprintf("%s: the lab's %s port %d leads to %s's own port %d (on %s)", h.Name, lp.proto, want, p.p.Name, lp.port, strings.Join(up, ", "))
		s.emit("labctl", "sys", msg)
		p.line("sys", msg)
	}
}

// clientOf reports whether host c takes the learned ports of host server:
// it says `localhost: auto`, or forwards some port to server.
func clientOf(c PlanHost, server string) bool {
	if c.LocalhostAuto {
		return true
	}
	for _, f := range c.Localhost {
		if f.Node == server {
			return true
		}
	}
	return false
}

func forwardsPort(c PlanHost, port int) (topo.Forward, bool) {
	for _, f := range c.Localhost {
		if f.Port == port {
			return f, true
		}
	}
	return topo.Forward{}, false
}

// forwardLocal starts one localhost forwarder on host c (127.0.0.1 and its
// own name's address) to target, for one protocol.
func (s *Supervisor) forwardLocal(ctx context.Context, c PlanHost, proto string, port int, target string) bool {
	n := 0
	for _, lo := range []string{"127.0.0.1", topo.HostnameAddr} {
		addr := net.JoinHostPort(lo, strconv.Itoa(port))
		var err error
		if proto == "tcp" {
			var ln net.Listener
			if ln, err = listenIn(c.NS, addr); err == nil {
				go s.relay(ctx, c.NS, ln, target)
			}
		} else {
			var pc net.PacketConn
			if pc, err = listenPacketIn(c.NS, addr); err == nil {
				go s.relayUDP(ctx, c.NS, pc, target)
			}
		}
		if err != nil {
			s.emit("labctl", "sys", fmt.Sprintf("%s: cannot forward localhost %s port %d to %s: %v", c.Name, proto, port, target, err))
			continue
		}
		n++
	}
	return n > 0
}

// programSockets lists the ports the process tree of pid listens on: TCP
// sockets in LISTEN, and UDP sockets bound and not connected, matched by
// inode against the tree's open files. Sorted by protocol and port.
func programSockets(pid int) []learnedPort {
	inodes := map[string]bool{}
	for _, q := range processTree(pid) {
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", q))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", q, fd.Name()))
			if err == nil && strings.HasPrefix(l, "socket:[") {
				inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
			}
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	byPort := map[string]*learnedPort{}
	for _, proto := range []string{"tcp", "udp"} {
		for _, f := range []string{proto, proto + "6"} {
			for _, e := range readProcNet(fmt.Sprintf("/proc/%d/net/%s", pid, f), proto) {
				if !inodes[e.inode] {
					continue
				}
				k := proto + "/" + strconv.Itoa(e.port)
				if byPort[k] == nil {
					byPort[k] = &learnedPort{proto: proto, port: e.port}
				}
				byPort[k].addrs = append(byPort[k].addrs, e.addr)
			}
		}
	}
	out := make([]learnedPort, 0, len(byPort))
	for _, lp := range byPort {
		out = append(out, *lp)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].proto != out[j].proto {
			return out[i].proto < out[j].proto
		}
		return out[i].port < out[j].port
	})
	return out
}

type procNetEntry struct {
	addr  netip.Addr
	port  int
	inode string
}

// readProcNet reads the listening entries of one /proc/PID/net file: TCP
// in state LISTEN, UDP unconnected (state 07, remote port 0).
func readProcNet(path, proto string) []procNetEntry {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []procNetEntry
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		hexAddr, hexPort, ok1 := strings.Cut(fields[1], ":")
		_, remPort, ok2 := strings.Cut(fields[2], ":")
		if !ok1 || !ok2 {
			continue
		}
		if proto == "tcp" && fields[3] != tcpListen {
			continue
		}
		if proto == "udp" && (fields[3] != "07" || strings.Trim(remPort, "0") != "") {
			continue
		}
		port, err := strconv.ParseUint(hexPort, 16, 16)
		a, ok := parseProcAddr(hexAddr)
		if err != nil || !ok || port == 0 {
			continue
		}
		out = append(out, procNetEntry{addr: a, port: int(port), inode: fields[9]})
	}
	return out
}

// processTree is pid and its descendants (at most maxTree), from the
// parent pids in /proc/*/stat.
func processTree(pid int) []int {
	children := map[int][]int{}
	ents, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, e := range ents {
		b, err := os.ReadFile(e)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, err1 := strconv.Atoi(f[1])
		self, err2 := strconv.Atoi(filepath.Base(filepath.Dir(e)))
		if err1 == nil && err2 == nil {
			children[ppid] = append(children[ppid], self)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out) && len(out) < maxTree; i++ {
		out = append(out, children[out[i]]...)
	}
	if len(out) > maxTree {
		out = out[:maxTree]
	}
	return out
}
