package nodes

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/vishvananda/netlink"
)

// startEngine starts the lab's userspace link engine as a daemon and waits
// until it serves its links (its control socket answers), bounded in time.
func startEngine(ctx context.Context, st *State, log *slog.Logger) error {
	// The engine reads the links it serves from the state file: write them
	// (with their Via) before it starts. Deploy holds the lab's lock.
	if err := st.save(); err != nil {
		return err
	}
	d, err := st.StartDaemon("engine", netem.EngineArgs(st.Lab))
	if err != nil {
		return err
	}
	if err := st.save(); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := netem.WaitEngine(wctx, st.Lab); err != nil {
		if !d.Alive() {
			return fmt.Errorf("lab %q: the link engine stopped at start (see %s/engine.log): %w", st.Lab, Dir(st.Lab), err)
		}
		return fmt.Errorf("lab %q: the link engine is not serving: %w", st.Lab, err)
	}
	log.Debug("link engine up", "pid", d.PID)
	if err := waitTAPsUp(ctx, st); err != nil {
		if ctx.Err() != nil {
			return err
		}
		// The kernel is slow to pass carrier on (linkwatch needs RTNL, which
		// a machine deleting many namespaces holds for long): the links will
		// forward shortly, and programs retry; a failed up helps no one.
		log.Warn("links are slow to come up; going on", "err", err)
	}
	return nil
}

// waitTAPsUp waits until both ends of every TAP link are operationally up.
// The kernel hands a TAP's carrier to the bridge through linkwatch, which
// may lag by up to a second: until then a bridge port drops what it gets,
// and a client that starts at once loses its ARP requests.
func waitTAPsUp(ctx context.Context, st *State) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, l := range st.Links {
		if l.Via != netem.ViaTAP {
			continue
		}
		for _, e := range []netem.End{l.A, l.B} {
			if err := waitOperUp(ctx, e); err != nil {
				return fmt.Errorf("lab %q: link %q: %s:%s did not come up: %w", st.Lab, l.ID, e.Node, e.Iface, err)
			}
		}
	}
	return nil
}

func waitOperUp(ctx context.Context, e netem.End) error {
	return netem.WithHandle(e.NS, func(h *netlink.Handle) error {
		for {
			lk, err := h.LinkByName(e.Iface)
			if err != nil {
				return err
			}
			if lk.Attrs().OperState == netlink.OperUp {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("operational state %s: %w", lk.Attrs().OperState, ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
}
