package nodes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/topo"
	"github.com/vishvananda/netlink"
)

// ErrLabUp is returned by Deploy for a lab that is already up.
var ErrLabUp = errors.New("already up")

// Options tune a deployment.
type Options struct {
	// Backend overrides the lab file's impairment backend.
	Backend string
	// Workers bounds how many namespaces and links are made at once.
	Workers int
	Log     *slog.Logger
}

// hostSysctls apply in every lab namespace. IPv6 is off so that router
// solicitations and MLD reports do not wander through captures and
// measurements; unprivileged ICMP echo sockets are allowed so that ping
// works for the programs, which run without privileges.
var hostSysctls = map[string]string{
	"net/ipv6/conf/all/disable_ipv6":     "1",
	"net/ipv6/conf/default/disable_ipv6": "1",
	"net/ipv4/ping_group_range":          "0 2147483647",
}

// Deploy builds the lab. The state file is written before anything is
// created and lists all of it, so a crash at any point leaves nothing that
// Destroy cannot find. On error Deploy destroys what it made.
func Deploy(ctx context.Context, lab *topo.Lab, opt Options) (st *State, err error) {
	log := opt.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("lab", lab.Name)
	if opt.Workers <= 0 {
		opt.Workers = 8
	}
	unlock, err := lockLab(ctx, lab.Name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if old, err := Load(lab.Name); err == nil {
		if old.Phase == PhaseUp {
			return nil, fmt.Errorf("lab %q is %w (since %s): take it down first with `labctl down %s`", lab.Name, ErrLabUp, old.Created.Format(time.TimeOnly), lab.Name)
		}
		return nil, fmt.Errorf("lab %q: a previous run left it %s: run `labctl down %s` first", lab.Name, old.Phase, lab.Name)
	}
	st, backend, err := plan(ctx, lab, opt, log)
	if err != nil {
		return nil, err
	}
	for _, ns := range st.Namespaces {
		if nsdo.Exists(ns) {
			return nil, fmt.Errorf("lab %q: network namespace %q exists already and is not this lab's: rename the lab or remove it", lab.Name, ns)
		}
	}
	if err := st.save(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
			defer cancel()
			if derr := destroyLocked(dctx, st, log); derr != nil {
				err = errors.Join(err, fmt.Errorf("cleaning up: %w", derr))
			}
		}
	}()
	t0 := time.Now()
	if err := forEach(ctx, opt.Workers, lab.Nodes, func(n *topo.Node) error { return createNode(st, n) }); err != nil {
		return st, err
	}
	log.Debug("namespaces made", "n", len(lab.Nodes), "took", time.Since(t0))
	t1 := time.Now()
	if err := forEach(ctx, opt.Workers, indexes(len(st.Links)), func(i int) error {
		return createLink(ctx, backend, st, &st.Links[i])
	}); err != nil {
		return st, err
	}
	log.Debug("links made", "n", len(st.Links), "backend", backend.Name(), "took", time.Since(t1))
	if err := forEach(ctx, opt.Workers, lab.Nodes, func(n *topo.Node) error { return addressNode(st, n) }); err != nil {
		return st, err
	}
	if err := writeHostsFiles(lab, st); err != nil {
		return st, err
	}
	if r, ok := backend.(netem.Runner); ok {
		if err := r.Start(ctx, st.Links); err != nil {
			return st, err
		}
	}
	st.Phase = PhaseUp
	if err := st.save(); err != nil {
		return st, err
	}
	log.Debug("lab up", "took", time.Since(t0))
	return st, nil
}

// plan resolves the backend and lays out the state of the lab to be.
func plan(ctx context.Context, lab *topo.Lab, opt Options, log *slog.Logger) (*State, netem.Backend, error) {
	want := lab.Backend
	if opt.Backend != "" {
		want = opt.Backend
	}
	if err := netem.ValidBackend(want); err != nil {
		return nil, nil, err
	}
	impaired, faults := false, false
	for _, l := range lab.Links {
		if !l.Spec(l.A.Node).IsZero() || !l.Spec(l.B.Node).IsZero() {
			impaired = true
		}
		faults = faults || len(l.Faults) > 0
	}
	// Only the userspace engine plays scripted faults.
	if faults {
		switch want {
		case "", netem.BackendAuto:
			want = netem.BackendUserspace
		case netem.BackendKernel:
			return nil, nil, fmt.Errorf("lab %q: scripted faults need the userspace backend, not %q", lab.Name, want)
		}
	}
	id, tag := newTag(lab.Name)
	st := &State{
		Lab: lab.Name, ID: id, Tag: tag, Phase: PhaseDeploying, Created: time.Now().UTC(),
		Source: lab.Source, Seed: lab.Seed,
	}
	for _, n := range lab.Nodes {
		ns := NSName(lab.Name, n.Name)
		st.Namespaces = append(st.Namespaces, ns)
		ndst := NodeState{Name: n.Name, Kind: string(n.Kind), NS: ns}
		for _, i := range n.Ifaces {
			is := IfaceState{Name: i.Name, Link: i.Link.Name, Peer: i.Peer.Name}
			if i.Addr != "" {
				is.Addrs = []string{i.Addr}
			}
			ndst.Ifaces = append(ndst.Ifaces, is)
		}
		for _, r := range n.Routes {
			ndst.Routes = append(ndst.Routes, r.String())
		}
		st.Nodes = append(st.Nodes, ndst)
	}
	for _, l := range lab.Links {
		st.Links = append(st.Links, netem.Link{
			Lab: lab.Name, ID: l.Name, Tag: tag, MTU: l.MTU,
			A:    netem.End{Node: l.A.Node, NS: NSName(lab.Name, l.A.Node), Iface: l.A.Iface},
			B:    netem.End{Node: l.B.Node, NS: NSName(lab.Name, l.B.Node), Iface: l.B.Iface},
			AtoB: l.Spec(l.A.Node), BtoA: l.Spec(l.B.Node), Faults: l.Faults,
		})
	}
	backend, err := netem.Select(ctx, want, candidates(st, log)...)
	if err != nil {
		if impaired || (want != "" && want != netem.BackendAuto) {
			return nil, nil, fmt.Errorf("lab %q: links are impaired but %w", lab.Name, err)
		}
		// Nothing to impair: plain veth pairs serve, and `netem set` will say
		// why it cannot impair them later.
		log.Warn("no impairment backend works here; links are plain veth pairs", "why", err)
		backend = netem.NewPlain()
	}
	st.Backend = backend.Name()
	return st, backend, nil
}

// createNode makes the node's namespace, marks it as the lab's, and sets
// it up: loopback, sysctls, and for a switch its bridge.
func createNode(st *State, n *topo.Node) error {
	ns := NSName(st.Lab, n.Name)
	if err := nsdo.NewNamed(ns); err != nil {
		return fmt.Errorf("node %q: %w", n.Name, err)
	}
	sysctls := map[string]string{}
	for k, v := range hostSysctls {
		sysctls[k] = v
	}
	if n.Kind == topo.Router {
		sysctls["net/ipv4/ip_forward"] = "1"
	}
	for k, v := range n.Sysctls {
		sysctls[k] = v
	}
	if err := nsdo.DoNamed(ns, func() error { return writeSysctls(sysctls) }); err != nil {
		return fmt.Errorf("node %q: %w", n.Name, err)
	}
	return netem.WithHandle(ns, func(h *netlink.Handle) error {
		lo, err := h.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("node %q: loopback: %w", n.Name, err)
		}
		if err := h.LinkSetAlias(lo, st.Tag); err != nil {
			return fmt.Errorf("node %q: tag loopback: %w", n.Name, err)
		}
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("node %q: loopback up: %w", n.Name, err)
		}
		if n.Kind != topo.Switch {
			return nil
		}
		// A new bridge has STP off, so its ports forward at once: no 30 s of
		// listening and learning before the first ping works.
		la := netlink.NewLinkAttrs()
		la.Name = n.Name
		br := &netlink.Bridge{LinkAttrs: la}
		if err := h.LinkAdd(br); err != nil {
			return fmt.Errorf("switch %q: add bridge: %w", n.Name, err)
		}
		if err := h.LinkSetAlias(br, st.Tag); err != nil {
			return fmt.Errorf("switch %q: tag bridge: %w", n.Name, err)
		}
		if err := h.LinkSetUp(br); err != nil {
			return fmt.Errorf("switch %q: bridge up: %w", n.Name, err)
		}
		return nil
	})
}

// writeSysctls runs on a thread inside the node's namespace, where
// /proc/sys/net is that namespace's.
func writeSysctls(m map[string]string) error {
	for k, v := range m {
		p := filepath.Join("/proc/sys", filepath.Clean("/"+k))
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", k, v, err)
		}
	}
	return nil
}

// createLink asks the backend for the link and plugs switch ends into their
// bridge.
func createLink(ctx context.Context, b netem.Backend, st *State, l *netem.Link) error {
	if err := b.Create(ctx, l); err != nil {
		return err
	}
	for _, e := range []netem.End{l.A, l.B} {
		n, _ := st.Node(e.Node)
		if n == nil || n.Kind != string(topo.Switch) {
			continue
		}
		err := netem.WithHandle(e.NS, func(h *netlink.Handle) error {
			port, err := h.LinkByName(e.Iface)
			if err != nil {
				return err
			}
			br, err := h.LinkByName(e.Node)
			if err != nil {
				return err
			}
			return h.LinkSetMasterByIndex(port, br.Attrs().Index)
		})
		if err != nil {
			return fmt.Errorf("switch %q: attach %q to bridge: %w", e.Node, e.Iface, err)
		}
	}
	return nil
}

// addressNode gives a host or router its addresses and routes, and
// records the interfaces' MAC addresses.
func addressNode(st *State, n *topo.Node) error {
	ns, _ := st.Node(n.Name)
	if n.Kind == topo.Switch {
		return nil
	}
	return netem.WithHandle(ns.NS, func(h *netlink.Handle) error {
		for k, i := range n.Ifaces {
			lk, err := h.LinkByName(i.Name)
			if err != nil {
				return fmt.Errorf("node %q: find %q: %w", n.Name, i.Name, err)
			}
			ns.Ifaces[k].MAC = lk.Attrs().HardwareAddr.String()
			if i.Addr == "" {
				continue
			}
			a, err := netlink.ParseAddr(i.Addr)
			if err != nil {
				return fmt.Errorf("node %q: address %q: %w", n.Name, i.Addr, err)
			}
			if err := h.AddrAdd(lk, a); err != nil {
				return fmt.Errorf("node %q: add %s to %q: %w", n.Name, i.Addr, i.Name, err)
			}
		}
		for _, r := range n.Routes {
			rt := &netlink.Route{Gw: net.ParseIP(r.Via)}
			if r.Dst != "default" {
				_, dst, err := net.ParseCIDR(r.Dst)
				if err != nil {
					return fmt.Errorf("node %q: route %q: %w", n.Name, r, err)
				}
				rt.Dst = dst
			}
			if err := h.RouteAdd(rt); err != nil {
				return fmt.Errorf("node %q: route %q: %w", n.Name, r, err)
			}
		}
		return nil
	})
}

// forEach runs fn over items with at most workers at once, and stops
// handing out work at the first error.
func forEach[T any](ctx context.Context, workers int, items []T, fn func(T) error) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	ch := make(chan T)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range ch {
				if err := fn(it); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, it := range items {
		mu.Lock()
		failed := len(errs) > 0
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		ch <- it
	}
	close(ch)
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}
	return ctx.Err()
}

func indexes(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}
