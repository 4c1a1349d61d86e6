package nodes

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/vishvananda/netlink"
)

// SetLinkUp takes both ends of a link down (up false) or brings them up,
// as Mininet's `link A B down` and `ip link set down` do, the same on
// both backends: a sender then gets "network unreachable" at once. (A
// link cut that drops silently, with the interfaces up, is the userspace
// engine's `labctl fault LAB LINK down`.)
func SetLinkUp(ctx context.Context, st *State, id string, up bool) error {
	l, ok := st.Link(id)
	if !ok {
		return fmt.Errorf("no link %q in lab %q", id, st.Lab)
	}
	for _, e := range []netem.End{l.A, l.B} {
		err := netem.WithHandle(e.NS, func(h *netlink.Handle) error {
			lk, err := h.LinkByName(e.Iface)
			if err != nil {
				return err
			}
			if up {
				return h.LinkSetUp(lk)
			}
			return h.LinkSetDown(lk)
		})
		if err != nil {
			return fmt.Errorf("link %q: %s:%s: %w", id, e.Node, e.Iface, err)
		}
	}
	return nil
}

// LinkBetween returns the id of the link that joins nodes a and b.
func (s *State) LinkBetween(a, b string) (string, bool) {
	for _, l := range s.Links {
		if (l.A.Node == a && l.B.Node == b) || (l.A.Node == b && l.B.Node == a) {
			return l.ID, true
		}
	}
	return "", false
}

// PingAllReport prints Mininet's pingall report and says whether every
// pair reached each other. A pair counts as reachable when one of three
// echoes comes back within a second, so a lossy link does not read as
// broken.
func PingAllReport(ctx context.Context, out io.Writer, st *State) bool {
	fmt.Fprintln(out, "*** Ping: testing ping reachability")
	res := PingAll(ctx, st, 3, time.Second, 32)
	ok, total := 0, len(res)
	var line []string
	from := ""
	flush := func() {
		if from != "" {
			fmt.Fprintf(out, "%s -> %s\n", from, strings.Join(line, " "))
		}
	}
	for _, r := range res {
		if r.From != from {
			flush()
			from, line = r.From, nil
		}
		if r.Received > 0 {
			ok++
			line = append(line, r.To)
		} else {
			line = append(line, "X")
		}
	}
	flush()
	dropped := 0.0
	if total > 0 {
		dropped = 100 * float64(total-ok) / float64(total)
	}
	fmt.Fprintf(out, "*** Results: %.0f%% dropped (%d/%d received)\n", dropped, ok, total)
	return ok == total
}
