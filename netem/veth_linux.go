package netem

import (
	"context"
	"fmt"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// CreateVeth makes the link a plain veth pair: each end is created straight
// into its namespace (no name ever appears in the root namespace, so two
// labs cannot clash there), tagged and up. Offloads stay as the kernel sets
// them; backends that need them off turn them off.
func CreateVeth(ctx context.Context, l Link) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	nsA, err := netns.GetFromPath(nsdo.Path(l.A.NS))
	if err != nil {
		return fmt.Errorf("link %q: netns %q: %w", l.ID, l.A.NS, err)
	}
	defer nsA.Close()
	nsB, err := netns.GetFromPath(nsdo.Path(l.B.NS))
	if err != nil {
		return fmt.Errorf("link %q: netns %q: %w", l.ID, l.B.NS, err)
	}
	defer nsB.Close()

	la := netlink.NewLinkAttrs()
	la.Name = l.A.Iface
	la.Namespace = netlink.NsFd(nsA)
	la.MTU = l.MTU
	la.TxQLen = 1000
	veth := &netlink.Veth{LinkAttrs: la, PeerName: l.B.Iface, PeerNamespace: netlink.NsFd(nsB)}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("link %q: add veth %s:%s <-> %s:%s: %w", l.ID, l.A.Node, l.A.Iface, l.B.Node, l.B.Iface, err)
	}
	defer func() {
		if err != nil { // deleting one end deletes the pair
			_ = DeleteIface(l.A)
		}
	}()
	for _, e := range []End{l.A, l.B} {
		if err := setupEnd(e, l.Tag); err != nil {
			return fmt.Errorf("link %q: %w", l.ID, err)
		}
	}
	return nil
}

// setupEnd tags an interface with the lab's alias and brings it up.
func setupEnd(e End, tag string) error {
	return WithHandle(e.NS, func(h *netlink.Handle) error {
		lk, err := h.LinkByName(e.Iface)
		if err != nil {
			return fmt.Errorf("node %q: find %q: %w", e.Node, e.Iface, err)
		}
		if err := h.LinkSetAlias(lk, tag); err != nil {
			return fmt.Errorf("node %q: tag %q: %w", e.Node, e.Iface, err)
		}
		if err := h.LinkSetUp(lk); err != nil {
			return fmt.Errorf("node %q: up %q: %w", e.Node, e.Iface, err)
		}
		return nil
	})
}

// DeleteIface removes an interface (and so its veth peer); a missing one
// is not an error.
func DeleteIface(e End) error {
	return WithHandle(e.NS, func(h *netlink.Handle) error {
		lk, err := h.LinkByName(e.Iface)
		if err != nil {
			return nil
		}
		return h.LinkDel(lk)
	})
}

// WithHandle gives fn a netlink handle bound to a named namespace.
func WithHandle(nsName string, fn func(h *netlink.Handle) error) error {
	ns, err := netns.GetFromPath(nsdo.Path(nsName))
	if err != nil {
		return fmt.Errorf("netns %q: %w", nsName, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE) // route only: XFRM needs xfrm_user, often not loaded
	if err != nil {
		return fmt.Errorf("netns %q: netlink: %w", nsName, err)
	}
	defer h.Close()
	return fn(h)
}

// SetupEnd tags an interface with the lab's alias and brings it up.
func SetupEnd(e End, tag string) error { return setupEnd(e, tag) }

type plain struct{}

// NewPlain returns the backend of plain veth pairs, for a lab that asks
// for no impairment where no impairment backend works: it makes links and
// refuses to impair them.
func NewPlain() Backend { return plain{} }

func (plain) Name() string { return BackendNone }

func (plain) Create(ctx context.Context, l *Link) error {
	l.Via = ViaVeth
	return CreateVeth(ctx, *l)
}

func (plain) Set(ctx context.Context, l Link, d Dir, s Spec) error {
	return fmt.Errorf("link %q: %w", l.ID, ErrNoBackend)
}

func (plain) Show(ctx context.Context, l Link) (Spec, Spec, error) { return Spec{}, Spec{}, nil }
