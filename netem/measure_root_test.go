package netem

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// cleanLink makes two throwaway namespaces joined by a clean veth link,
// removed in t.Cleanup.
func cleanLink(t *testing.T) Link {
	t.Helper()
	needRoot(t)
	var r [3]byte
	_, _ = rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	l := Link{Lab: "t" + id, ID: "a-b", Tag: "labctl-test-" + id,
		A: End{Node: "a", NS: "labctl-t-" + id + "-a", Iface: "a-eth0"},
		B: End{Node: "b", NS: "labctl-t-" + id + "-b", Iface: "b-eth0"}}
	for _, ns := range []string{l.A.NS, l.B.NS} {
		require.NoError(t, nsdo.NewNamed(ns))
		t.Cleanup(func() { assert.NoError(t, nsdo.DeleteNamed(ns)) })
	}
	require.NoError(t, NewKernel().Create(context.Background(), &l))
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
		for _, e := range []End{l.A, l.B} { // nothing of the probe is left
			require.NoError(t, WithHandle(e.NS, func(h *netlink.Handle) error {
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

	for _, c := range Judge(l, r, map[Dir]*GoodputResult{AtoB: &g}, o) {
		t.Log(c)
		assert.NotEqual(t, Fail, c.Verdict, c.String())
	}
}
