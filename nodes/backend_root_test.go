package nodes

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/internal/testnet"
	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/netem/engine"
	"github.com/labctl/labctl/topo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets this test binary be the engine process the userspace
// backend launches (`labctl engine LAB`, through StartDaemon's re-exec of
// the running binary).
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "engine" {
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		if err := engine.Serve(context.Background(), Dir(os.Args[2]), log); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestUserspaceLabRunsCountsAndStopsItsEngine: a lab on the userspace
// backend gets its engine from the backend (Runner), nodes.Counters reads
// every link's counters through netem.Counter, and Destroy stops the engine
// and leaves nothing.
func TestUserspaceLabRunsCountsAndStopsItsEngine(t *testing.T) {
	testnet.NeedRoot(t)
	name := "nodes-" + testnet.ID()
	lab, err := topo.Parse(name+".yaml", []byte(`
name: `+name+`
backend: userspace
seed: 5
hosts: [a, b]
switches: [s1]
links:
  - endpoints: [a, s1]
    netem: {loss: 10%}
  - endpoints: [b, s1]
`))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Deploy(ctx, lab, Options{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = Destroy(context.Background(), name, nil)
	})
	require.Equal(t, netem.BackendUserspace, st.Backend)
	b, err := Backend(st)
	require.NoError(t, err)
	_, ok := b.(netem.Runner)
	require.True(t, ok)

	r := Ping(ctx, st, "a", "b", 20, 5*time.Millisecond, 500*time.Millisecond)
	require.NoError(t, r.Err)
	counts, err := Counters(ctx, name)
	require.NoError(t, err)
	require.Len(t, counts, 2, "both links")
	ab := counts["a-s1"][0]
	t.Logf("a-s1 a->b %+v", ab)
	assert.True(t, ab.Split)
	assert.GreaterOrEqual(t, ab.Packets, uint64(20), "the pings were offered")
	assert.Equal(t, ab.Packets, ab.Delivered+ab.Dropped+uint64(ab.Queued))
	assert.GreaterOrEqual(t, counts["b-s1"][1].Delivered, uint64(r.Received), "replies left b's link")

	require.NoError(t, Destroy(ctx, name, nil))
	_, err = os.Stat(engine.Socket(Dir(name)))
	assert.ErrorIs(t, err, os.ErrNotExist)
	for _, ns := range st.Namespaces {
		assert.False(t, nsdo.Exists(ns), "netns %s left", ns)
	}
	for _, d := range st.Daemons {
		assert.False(t, d.Alive(), "daemon %s (pid %d) left", d.Role, d.PID)
	}
	_, err = Counters(ctx, name)
	assert.ErrorIs(t, err, ErrNoLab)
}
