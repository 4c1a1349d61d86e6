package measure

import (
	"context"
	"testing"
	"time"

	"github.com/labctl/labctl/internal/testnet"
	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/netem/kernel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// cleanLink makes two throwaway namespaces joined by a clean veth link,
// removed in t.Cleanup.
func cleanLink(t *testing.T) netem.Link {
	t.Helper()
	l := testnet.Link(t, "t", netem.Spec{}, netem.Spec{})
	require.NoError(t, kernel.New().Create(context.Background(), &l))
	return l
}

func TestMeasureCleanLink(t *testing.T) {
	l := cleanLink(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, undo, err := AttachProbeAddrs(l)
	require.NoError(t, err)
	defer func() {
		assert.NoError(t, undo())
		for _, e := range []netem.End{l.A, l.B} { // nothing of the probe is left
			require.NoError(t, netem.WithHandle(e.NS, func(h *netlink.Handle) error {
				lk, err := h.LinkByName(e.Iface)
				require.NoError(t, err)
				addrs, err := h.AddrList(lk, unix.AF_INET)
				require.NoError(t, err)
				assert.Empty(t, addrs)
				neighs, err := h.NeighList(lk.Attrs().Index, unix.AF_INET)
				require.NoError(t, err)
				for _, n := range neighs {
					assert.NotEqual(t, netlink.NUD_PERMANENT, n.State, "%v", n)
				}
				return nil
			}))
		}
	}()

	o := PlanProbes(l, 300, 2*time.Second)
	r, err := Probe(ctx, a, b, o)
	require.NoError(t, err)
	t.Logf("a->b %+v\nb->a %+v\nrtt %+v", r.AtoB, r.BtoA, r.RTT)
	assert.Equal(t, 300, r.AtoB.Sent)
	assert.Equal(t, 0, r.AtoB.Sent-r.AtoB.Received, "a clean link loses nothing")
	assert.Equal(t, r.AtoB.Received, r.BtoA.Sent)
	assert.Zero(t, r.AtoB.Duplicates)
	assert.Less(t, r.RTT.Median, 5*time.Millisecond)

	g, err := Goodput(ctx, a, b, time.Second)
	require.NoError(t, err)
	t.Logf("goodput %.1f Mbit/s", g.BitsPerS/1e6)
	assert.Greater(t, g.BitsPerS, 10e6)

	for _, c := range Judge(l, r, map[netem.Dir]*GoodputResult{netem.AtoB: &g}, o) {
		t.Log(c)
		assert.NotEqual(t, Fail, c.Verdict, c.String())
	}
}
