package kernel

import (
	"context"
	"fmt"

	"github.com/labctl/labctl/netem"
	"github.com/vishvananda/netlink"
)

// Counters reads a link's counters from the kernel (netem.Counter): the
// statistics of labctl's netem qdisc on each sending end and of both
// interfaces, read through rtnetlink. netem does not say why it dropped a
// packet, so drops are not split (Split is false, every drop is in
// Dropped). Per direction, with S the sending and R the receiving end:
//
//	Delivered = S's transmitted packets (a veth's peer receives exactly those)
//	Dropped   = the qdisc's drops (loss and a full queue) + S's tx_dropped
//	Queued    = the packets the qdisc holds (delayed or waiting for the rate)
//	Packets   = Delivered + Dropped + Queued
//	Bytes     = S's transmitted bytes + the bytes the qdisc holds
//
// The interfaces count since the link was made; the qdisc since its
// direction was last impaired (making a direction clean removes the qdisc
// and its counts). netem sends its duplicates, so they count as delivered,
// and a corrupted packet is delivered too (the receiving kernel drops it).
func (kernel) Counters(ctx context.Context, l netem.Link) (atob, btoa netem.Counts, err error) {
	var out [2]netem.Counts
	for i, d := range []netem.Dir{netem.AtoB, netem.BtoA} {
		if err := ctx.Err(); err != nil {
			return atob, btoa, err
		}
		s := end(l, d)
		ls, err := linkStats(s)
		if err != nil {
			return atob, btoa, fmt.Errorf("link %q %s: %w", l.ID, d, err)
		}
		q, ok, err := qdiscRoot(s.NS, s.Iface)
		if err != nil {
			return atob, btoa, fmt.Errorf("link %q %s: node %q: %q: read qdisc: %w", l.ID, d, s.Node, s.Iface, err)
		}
		var qs qdiscStats
		if ok && q.kind == "netem" && q.handle == qdiscHandle {
			qs = q.stats
		}
		out[i] = countsFrom(ls, qs)
	}
	return out[0], out[1], nil
}

func countsFrom(ls netlink.LinkStatistics, qs qdiscStats) netem.Counts {
	c := netem.Counts{
		Delivered: ls.TxPackets,
		Dropped:   uint64(qs.drops) + ls.TxDropped,
		Queued:    int(qs.qlen),
		Bytes:     ls.TxBytes + uint64(qs.backlog),
	}
	c.Packets = c.Delivered + c.Dropped + uint64(c.Queued)
	return c
}

// linkStats reads one end's interface counters.
func linkStats(e netem.End) (netlink.LinkStatistics, error) {
	var st netlink.LinkStatistics
	err := netem.WithHandle(e.NS, func(h *netlink.Handle) error {
		lk, err := h.LinkByName(e.Iface)
		if err != nil {
			return fmt.Errorf("node %q: find %q: %w", e.Node, e.Iface, err)
		}
		if s := lk.Attrs().Statistics; s != nil {
			st = netlink.LinkStatistics(*s)
		}
		return nil
	})
	return st, err
}
