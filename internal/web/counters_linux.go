package web

// The one adapter between the server and the sources of link counters.
// Everything else in this package sees only Counts. When the engine
// boundary's nodes.Counters(ctx, lab) lands, readCounters becomes a call
// to it (keyed by link id, [a->b, b->a]); readCounters' down map stays.

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
	mu sync.Mutex
	m  map[string]*netlink.Handle
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
	st     netlink.LinkStatistics
	up     bool // administratively up and with carrier
	qdisc  bool // a root qdisc other than the default
	qsent  netlink.GnetStatsBasic
	qdrops uint64
	qlen   uint32
}

// nsStats dumps the interfaces of one namespace, with their qdiscs when
// withQdisc (the kernel backend's impairments live there).
func nsStats(h *netlink.Handle, withQdisc bool) (map[string]ifaceStats, error) {
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
		if withQdisc && a.Name != "lo" {
			qs, err := h.QdiscList(lk)
			if err == nil {
				for _, q := range qs {
					qa := q.Attrs()
					if qa.Statistics == nil || q.Type() == "noqueue" {
						continue
					}
					if qa.Statistics.Queue != nil {
						s.qdrops += uint64(qa.Statistics.Queue.Drops)
					}
					if qa.Parent == netlink.HANDLE_ROOT {
						s.qdisc = true
						if qa.Statistics.Basic != nil {
							s.qsent = *qa.Statistics.Basic
						}
						if qa.Statistics.Queue != nil {
							s.qlen = qa.Statistics.Queue.Qlen
						}
					}
				}
			}
		}
		out[a.Name] = s
	}
	return out, nil
}

// readCounters samples every link of a lab: for links through the
// userspace engine, the engine's per-direction counters (over its control
// socket), with bytes from the sending TAP; for veth links, the sending
// end's qdisc (kernel backend) or interface counters and the receiving
// end's. down says which links are down (engine "down", or an end not up).
func readCounters(ctx context.Context, st *nodes.State, hs *handles) (map[string][2]Counts, map[string]bool, error) {
	var engine map[string]netem.LinkStats
	var errs []error
	for _, l := range st.Links {
		if l.Via == netem.ViaTAP {
			ls, err := netem.EngineStats(ctx, st.Lab)
			if err != nil {
				errs = append(errs, err)
				break
			}
			engine = make(map[string]netem.LinkStats, len(ls))
			for _, s := range ls {
				engine[s.Link] = s
			}
			break
		}
	}
	withQdisc := st.Backend == netem.BackendKernel
	ifs := map[string]map[string]ifaceStats{} // netns -> iface -> stats
	for _, l := range st.Links {
		for _, e := range []netem.End{l.A, l.B} {
			if _, done := ifs[e.NS]; done {
				continue
			}
			ifs[e.NS] = nil
			h, err := hs.get(e.NS)
			if err == nil {
				ifs[e.NS], err = nsStats(h, withQdisc)
			}
			if err != nil {
				hs.drop(e.NS)
				errs = append(errs, err)
			}
		}
	}
	counts := make(map[string][2]Counts, len(st.Links))
	down := map[string]bool{}
	for _, l := range st.Links {
		a, aok := ifs[l.A.NS][l.A.Iface]
		b, bok := ifs[l.B.NS][l.B.Iface]
		if (aok && !a.up) || (bok && !b.up) {
			down[l.ID] = true
		}
		if l.Via == netem.ViaTAP {
			es, ok := engine[l.ID]
			if !ok {
				if engine != nil {
					errs = append(errs, fmt.Errorf("link %q: the engine does not report it", l.ID))
				}
				continue
			}
			if es.Down {
				down[l.ID] = true
			}
			counts[l.ID] = [2]Counts{engineCounts(es.AtoB, a.st.TxBytes), engineCounts(es.BtoA, b.st.TxBytes)}
			continue
		}
		if !aok || !bok {
			if ifs[l.A.NS] != nil && ifs[l.B.NS] != nil {
				errs = append(errs, fmt.Errorf("link %q: no interface %s:%s or %s:%s", l.ID, l.A.Node, l.A.Iface, l.B.Node, l.B.Iface))
			}
			continue
		}
		counts[l.ID] = [2]Counts{vethCounts(a, b), vethCounts(b, a)}
	}
	return counts, down, errors.Join(errs...)
}

func engineCounts(d netem.DirStats, bytes uint64) Counts {
	return Counts{
		Packets: d.Packets, Bytes: bytes, Delivered: d.Delivered,
		Dropped: d.Lost + d.QueueDrops + d.DownDrops + d.WriteErrors,
		Lost:    d.Lost, QueueDrops: d.QueueDrops, Corrupted: d.Corrupted, Duplicated: d.Duplicated,
		Reordered: d.Reordered, DownDrops: d.DownDrops, Queued: d.Queued, Split: true,
	}
}

// vethCounts is what from sends to to over a veth pair.
func vethCounts(from, to ifaceStats) Counts {
	c := Counts{Delivered: to.st.RxPackets}
	if from.qdisc {
		c.Dropped = from.qdrops + from.st.TxDropped
		c.Packets = uint64(from.qsent.Packets) + from.qdrops + uint64(from.qlen)
		c.Bytes = from.qsent.Bytes
		c.Queued = int(from.qlen)
		return c
	}
	c.Packets = from.st.TxPackets + from.st.TxDropped
	c.Bytes = from.st.TxBytes
	c.Dropped = from.st.TxDropped
	return c
}
