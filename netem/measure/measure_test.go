package measure

import (
	"testing"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/topo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func arr(seqs ...uint32) []arrival {
	a := make([]arrival, len(seqs))
	for i, s := range seqs {
		a[i] = arrival{seq: s, owd: time.Duration(s+1) * time.Millisecond}
	}
	return a
}

func TestAnalyze(t *testing.T) {
	// 0..9 sent; 3 lost; 5 arrives twice; 8 overtakes 6 and 7.
	r := analyze(10, arr(0, 1, 2, 4, 5, 5, 8, 6, 7, 9), 1)
	assert.Equal(t, 10, r.Sent)
	assert.Equal(t, 9, r.Received)
	assert.Equal(t, 1, r.Duplicates)
	assert.Equal(t, 1, r.Reordered, "only 8 arrived before earlier probes")
	assert.Equal(t, 1, r.Corrupted)
	assert.InDelta(t, 0.1, r.Loss(), 1e-9)
	assert.InDelta(t, 1.0/9, r.DupRate(), 1e-9)
	assert.Equal(t, time.Millisecond, r.OneWay.Min)
	assert.Equal(t, 10*time.Millisecond, r.OneWay.Max)

	empty := analyze(0, nil, 0)
	assert.Zero(t, empty.Loss())
	assert.Zero(t, empty.OneWay.N)
}

func TestSummarize(t *testing.T) {
	s := summarize([]time.Duration{4, 1, 3, 2})
	assert.Equal(t, Summary{N: 4, Min: 1, Median: 2, Mean: 2, Max: 4}, s) // (2+3)/2 = 2 in integer ns
	assert.Equal(t, time.Duration(3), summarize([]time.Duration{5, 3, 1}).Median)
}

func TestProbeWire(t *testing.T) {
	b := make([]byte, 64)
	m := probeMsg{kind: kindEcho, seq: 7, orig: 5, sent: 123 * time.Millisecond, origSent: 100 * time.Millisecond}
	m.encode(b)
	got, ok := decodeProbe(b)
	require.True(t, ok)
	assert.Equal(t, m, got)
	for _, i := range []int{0, 9, 20, 33, 50, 63} { // any flipped bit is caught
		c := append([]byte(nil), b...)
		c[i] ^= 0x10
		_, ok := decodeProbe(c)
		assert.False(t, ok, "flip at %d", i)
	}
	_, ok = decodeProbe(b[:20])
	assert.False(t, ok)
}

func TestPredictions(t *testing.T) {
	pred, tol := PredictOneWay(netem.Spec{Delay: dms(50)}, 64)
	assert.Equal(t, 50*time.Millisecond, pred)
	assert.Equal(t, 4500*time.Microsecond, tol) // 2ms + 5% of 50ms
	// 64 B payload = 106 B frame = 848 bits at 1 Mbit/s = 848 µs
	pred, _ = PredictOneWay(netem.Spec{Delay: dms(10), Rate: 1_000_000}, 64)
	assert.Equal(t, 10*time.Millisecond+848*time.Microsecond, pred)

	assert.InDelta(t, 0.10, PredictLoss(netem.Spec{Loss: 10}), 1e-9)
	assert.InDelta(t, 1-0.9*0.9, PredictLoss(netem.Spec{Loss: 10, Corrupt: 10}), 1e-9)
	assert.InDelta(t, 5.0/55, PredictLoss(netem.Spec{LossGE: &topo.GilbertElliott{P: 5, R: 50}}), 1e-9)

	assert.InDelta(t, 0.25, PredictReorder(netem.Spec{Delay: dms(10), Reorder: 25}), 1e-9)
	assert.InDelta(t, 0.125, PredictReorder(netem.Spec{Delay: dms(10), Reorder: 25, Gap: 5}), 1e-9)
	assert.Zero(t, PredictReorder(netem.Spec{}))

	assert.InDelta(t, 10e6*1448/1514, PredictGoodput(netem.Spec{Rate: 10_000_000}, 0), 1)
}

func TestJudge(t *testing.T) {
	l := netem.Link{ID: "h1-s1", AtoB: netem.Spec{Delay: dms(50), Loss: 10}, BtoA: netem.Spec{Rate: 10_000_000}}
	good := ProbeResult{
		AtoB: DirResult{Sent: 1000, Received: 905, OneWay: Summary{N: 905, Median: 50500 * time.Microsecond}},
		BtoA: DirResult{Sent: 905, Received: 905, OneWay: Summary{N: 905, Median: 100 * time.Microsecond}},
		RTT:  Summary{N: 905, Median: 50700 * time.Microsecond},
	}
	g := &GoodputResult{BitsPerS: 9.4e6}
	checks := Judge(l, good, map[netem.Dir]*GoodputResult{netem.BtoA: g}, ProbeOptions{})
	byKey := map[string]Check{}
	for _, c := range checks {
		byKey[c.Dir+" "+c.Param] = c
		assert.NotEqual(t, Fail, c.Verdict, c.String())
	}
	require.Contains(t, byKey, "b->a rate")
	assert.Equal(t, Pass, byKey["b->a rate"].Verdict)
	assert.Equal(t, Pass, byKey["rtt rtt"].Verdict)

	bad := good
	bad.AtoB.Received = 700 // 30% loss
	bad.RTT.Median = 80 * time.Millisecond
	verdicts := map[string]string{}
	for _, c := range Judge(l, bad, nil, ProbeOptions{}) {
		verdicts[c.Dir+" "+c.Param] = c.Verdict
	}
	assert.Equal(t, Fail, verdicts["a->b loss"])
	assert.Equal(t, Fail, verdicts["rtt rtt"])
}

func TestPlanProbes(t *testing.T) {
	o := PlanProbes(netem.Link{AtoB: netem.Spec{Delay: dms(50)}}, 1000, 4*time.Second)
	assert.Equal(t, 1000, o.Count)
	assert.Equal(t, 2*time.Millisecond, o.Interval)
	assert.Equal(t, 350*time.Millisecond, o.Drain)

	// 64 kbit/s: a 106-byte probe every 132.5 ms keeps to a tenth of the rate;
	// 4 s then allows only 30 probes, raised to the floor of 50.
	o = PlanProbes(netem.Link{BtoA: netem.Spec{Rate: 64_000}}, 1000, 4*time.Second)
	assert.Equal(t, 132500*time.Microsecond, o.Interval)
	assert.Equal(t, 50, o.Count)
}

func dms(v int) topo.Duration { return topo.Duration(time.Duration(v) * time.Millisecond) }
