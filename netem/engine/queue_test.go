package engine

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/netem/kernel"
	"github.com/labctl/labctl/topo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestQueueLimitSameOnBothBackends: over a table of rates and delays, the
// kernel backend's qdisc limit and the engine's limit are one number, and
// that number keeps a rate's queueing delay near one round trip (never the
// 1.2 s the old engine rule gave at 10 Mbit/s).
func TestQueueLimitSameOnBothBackends(t *testing.T) {
	rates := []topo.Rate{0, 512_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000, 10_000_000_000}
	delays := []time.Duration{0, time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond, time.Second}
	for _, r := range rates {
		for _, d := range delays {
			s := netem.Spec{Rate: r, Delay: topo.Duration(d)}
			t.Run(fmt.Sprintf("%v/%v", r, d), func(t *testing.T) {
				k, err := kernel.QdiscLimit(s)
				require.NoError(t, err)
				c, err := newDirConfig(s)
				require.NoError(t, err)
				assert.Equal(t, k, c.limit, "kernel and engine hold the same number of packets")
				if r == 0 {
					assert.GreaterOrEqual(t, c.limit, 1000, "without a rate, never below netem's default")
					return
				}
				bdp := float64(r) * d.Seconds() / (netem.LimitFrameBytes * 8) // frames in flight one way
				inflight := math.Ceil(bdp)
				if c.limit == 1<<20 {
					return // capped
				}
				buffer := float64(c.limit) - inflight
				assert.LessOrEqual(t, buffer, max(2*inflight, 64), "at most a round trip of queue, or the burst floor")
				assert.GreaterOrEqual(t, buffer, 2*bdp, "at least a round trip's BDP, so one TCP flow fills the link")
			})
		}
	}
	// The example of docs/labfile.md: 10 Mbit/s, 10 ms each way.
	l := netem.QueueLimit(netem.Spec{Rate: 10_000_000, Delay: topo.Duration(10 * time.Millisecond)})
	assert.Equal(t, 73, l)
	queue := time.Duration((l - 9) * netem.LimitFrameBytes * 8 * int(time.Second) / 10_000_000)
	assert.Less(t, queue, 80*time.Millisecond, "78 ms of queue, not 1.2 s")
	assert.Equal(t, 77, netem.QueueLimit(netem.Spec{Rate: 10_000_000, Delay: topo.Duration(10 * time.Millisecond), Limit: 77}), "an explicit limit wins")
}
