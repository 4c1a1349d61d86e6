package grade

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/nodes"
	"github.com/vishvananda/netlink"
)

// linksUpMax bounds the wait for a fresh lab's links to carry traffic.
// On a busy machine (many namespaces being deleted hold the kernel's RTNL
// lock) a TAP's carrier can lag for seconds; a student program that
// connects at once gets "no route to host" for the machine's fault, so
// the grader waits rather than start the programs early.
const linksUpMax = 20 * time.Second

// labOps serialises the grader's deploys and teardowns: each takes the
// RTNL lock many times, and interleaving them slows both.
var labOps sync.Mutex

// waitLinksUp waits until both ends of every link of the lab are
// operationally up.
func waitLinksUp(ctx context.Context, st *nodes.State) error {
	ctx, cancel := context.WithTimeout(ctx, linksUpMax)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for _, l := range st.Links {
		for _, e := range []netem.End{l.A, l.B} {
			for {
				up, state, err := operUp(e)
				if err != nil {
					return fmt.Errorf("link %q: %s:%s: %w", l.ID, e.Node, e.Iface, err)
				}
				if up {
					break
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("link %q: %s:%s is still %s after %s (the machine is too busy)", l.ID, e.Node, e.Iface, state, linksUpMax)
				case <-tick.C:
				}
			}
		}
	}
	return nil
}

func operUp(e netem.End) (bool, string, error) {
	var up bool
	var state string
	err := netem.WithHandle(e.NS, func(h *netlink.Handle) error {
		lk, err := h.LinkByName(e.Iface)
		if err != nil {
			return err
		}
		// A bridge's own port (no carrier concept beyond its ports) reports
		// "unknown" when up; only "down"-like states mean no traffic.
		s := lk.Attrs().OperState
		up = s == netlink.OperUp || s == netlink.OperUnknown
		state = s.String()
		return nil
	})
	return up, state, err
}
