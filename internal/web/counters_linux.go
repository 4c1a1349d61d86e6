package web

// The one adapter between the server and the sources of link counters:
// nodes.Counters, and netlink for what it leaves out and for whether each
// link is up. Everything else in this package sees only Counts.

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/nodes"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// handles keeps one netlink socket per lab namespace open between samples,
// so a sample costs one dump per namespace and no namespace switch. It is
// bounded by the lab's namespaces; close releases them all.
type handles struct {
	mu   sync.Mutex
	m    map[string]*netlink.Handle
	prev map[string][2]Counts // the last sample, to see drops while down grow
}

func newHandles() *handles { return &handles{m: map[string]*netlink.Handle{}} }

func (hs *handles) get(ns string) (*netlink.Handle, error) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if h, ok := hs.m[ns]; ok {
		return h, nil
	}
	fd, err := netns.GetFromPath(nsdo.Path(ns))
	if err != nil {
		return nil, fmt.Errorf("netns %q: %w", ns, err)
	}
	defer fd.Close()
	h, err := netlink.NewHandleAt(fd, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netns %q: netlink: %w", ns, err)
	}
	hs.m[ns] = h
	return h, nil
}

// drop forgets a namespace's handle (after an error: it may be gone).
func (hs *handles) drop(ns string) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if h, ok := hs.m[ns]; ok {
		h.Close()
		delete(hs.m, ns)
	}
}

func (hs *handles) close() {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for ns, h := range hs.m {
		h.Close()
		delete(hs.m, ns)
	}
}

// ifaceStats are what netlink says of one interface.
type ifaceStats struct {
	st netlink.LinkStatistics
	up bool // administratively up and with carrier
}

// nsStats dumps the interfaces of one namespace.
func nsStats(h *netlink.Handle) (map[string]ifaceStats, error) {
	links, err := h.LinkList()
	if err != nil {
		return nil, err
	}
	out := make(map[string]ifaceStats, len(links))
	for _, lk := range links {
		a := lk.Attrs()
		s := ifaceStats{up: a.Flags&unix.IFF_UP != 0 && a.OperState != netlink.OperDown && a.OperState != netlink.OperLowerLayerDown}
		if a.Statistics != nil {
			s.st = *a.Statistics
		}
		out[a.Name] = s
	}
	return out, nil
}

// readCounters samples every link of a lab: the backend's counters
// (nodes.Counters: the userspace engine's per-direction counts, tc-netem's
// qdisc and interface statistics) and, for links the backend leaves out
// (the plain veth links of a large userspace lab), the interfaces' own
// counters through netlink. down says which links are down: an end that
// is not up, or a link whose drops "while down" grew since the last sample
// (the engine's link down; netem.Counts has no flag for it).
func readCounters(ctx context.Context, st *nodes.State, hs *handles) (map[string][2]Counts, map[string]bool, error) {
	var errs []error
	counts, err := nodes.Counters(ctx, st.Lab)
	if err != nil && !errors.Is(err, netem.ErrUnsupported) {
		errs = append(errs, err)
	}
	if counts == nil {
		counts = map[string][2]Counts{}
	}
	ifs := map[string]map[string]ifaceStats{} // netns -> iface -> stats
	for _, l := range st.Links {
		for _, e := range []netem.End{l.A, l.B} {
			if _, done := ifs[e.NS]; done {
				continue
			}
			ifs[e.NS] = nil
			h, err := hs.get(e.NS)
			if err == nil {
				ifs[e.NS], err = nsStats(h)
			}
			if err != nil {
				hs.drop(e.NS)
				errs = append(errs, err)
			}
		}
	}
	down := map[string]bool{}
	for _, l := range st.Links {
		a, aok := ifs[l.A.NS][l.A.Iface]
		b, bok := ifs[l.B.NS][l.B.Iface]
		if (aok && !a.up) || (bok && !b.up) {
			down[l.ID] = true
		}
		c, ok := counts[l.ID]
		if !ok && l.Via == netem.ViaVeth && aok && bok {
			c, ok = [2]Counts{vethCounts(a, b), vethCounts(b, a)}, true
			counts[l.ID] = c
		}
		if !ok {
			if l.Via == netem.ViaTAP && err == nil {
				errs = append(errs, fmt.Errorf("link %q: no counters from its backend", l.ID))
			}
			continue
		}
		if p, had := hs.prev[l.ID]; had && (c[0].DownDrops > p[0].DownDrops || c[1].DownDrops > p[1].DownDrops) {
			down[l.ID] = true
		}
	}
	hs.prev = counts
	return counts, down, errors.Join(errs...)
}

// vethCounts is what from sends to to over a plain veth pair, from the
// interfaces' counters: a veth's peer receives exactly what it transmits.
func vethCounts(from, to ifaceStats) Counts {
	return Counts{
		Packets:   from.st.TxPackets + from.st.TxDropped,
		Bytes:     from.st.TxBytes,
		Delivered: to.st.RxPackets,
		Dropped:   from.st.TxDropped,
	}
}
