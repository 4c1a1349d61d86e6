package kernel

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/topo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
)

func dms(v int) topo.Duration { return topo.Duration(time.Duration(v) * time.Millisecond) }

func TestQueueLimit(t *testing.T) {
	for _, c := range []struct {
		name string
		s    netem.Spec
		want uint32
	}{
		{"explicit limit wins", netem.Spec{Delay: dms(50), Limit: 77}, 77},
		// 10 Gbit/s assumed: 1e10*0.05/(8*1514) = 41281.37 -> 41282; 2x that
		{"delay only: 10 Gbit/s assumed", netem.Spec{Delay: dms(50)}, 2 * 41282},
		{"loss only: the 1000 floor", netem.Spec{Loss: 1}, 1000},
		// 10 Mbit/s, 50 ms: 1e7*0.05/12112 = 41.28 -> 42 in flight + 84
		{"rate and delay: in flight + a round trip's BDP", netem.Spec{Delay: dms(50), Rate: 10_000_000}, 42 + 84},
		{"rate alone: the burst floor", netem.Spec{Rate: 10_000_000}, 64},
		{"10 Mbit/s, 10 ms: the floor rules", netem.Spec{Delay: dms(10), Rate: 10_000_000}, 9 + 64},
		{"jitter counts as delay", netem.Spec{Delay: dms(40), Jitter: dms(10), Rate: 10_000_000}, 42 + 84},
		{"1 Gbit/s, 100 ms", netem.Spec{Delay: dms(100), Rate: 1_000_000_000}, 3 * 8257},
		{"capped", netem.Spec{Delay: topo.Duration(100 * time.Second)}, 1 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, QueueLimit(c.s))
			assert.Equal(t, c.want, specFromOptionsMust(t, netemOptions(c.s, nil)).Limit, "the qdisc gets it")
		})
	}
}

func specFromOptionsMust(t *testing.T, b []byte) netem.Spec {
	t.Helper()
	s, err := specFromOptions(b)
	require.NoError(t, err)
	return s
}

func TestProbabilityConversion(t *testing.T) {
	assert.Equal(t, uint32(0), probU32(0))
	assert.Equal(t, uint32(math.MaxUint32), probU32(100))
	for _, p := range []topo.Percent{0, 0.001, 0.1, 1, 10, 25, 33.333333, 99.9, 100} {
		assert.Equal(t, p, probPercent(probU32(p)), "%v", p)
	}
}

func TestOptionsRoundTrip(t *testing.T) {
	for _, s := range []netem.Spec{
		{Delay: dms(50)},
		{Delay: dms(25), Jitter: dms(5), DelayCorrelation: 25, Loss: 10, LossCorrelation: 25},
		{Duplicate: 1, DuplicateCorrelation: 5, Corrupt: 0.1, CorruptCorrelation: 2},
		{Delay: dms(20), Reorder: 25, ReorderCorrelation: 50, Gap: 5},
		{Delay: dms(20), Reorder: 25},
		{Rate: 10_000_000, Limit: 50},
		{Rate: 40_000_000_000, Delay: topo.Duration(300 * time.Microsecond)}, // RATE64
		{Delay: dms(5000)},                                                   // past 32-bit ticks? no: 5 s = 78M ticks; LATENCY64 carries ns anyway
		{LossGE: &topo.GilbertElliott{P: 5, R: 50}},
		{LossGE: &topo.GilbertElliott{P: 1, R: 30, LossBad: 70, LossGood: 0.5}},
	} {
		t.Run(s.String(), func(t *testing.T) {
			got, err := specFromOptions(netemOptions(s, uniformTable()))
			require.NoError(t, err)
			want := s
			want.Limit = QueueLimit(s)
			assert.Equal(t, want, got)
		})
	}
}

func TestOptionsLayout(t *testing.T) {
	b := netemOptions(netem.Spec{Delay: dms(50), Loss: 100}, nil)
	require.GreaterOrEqual(t, len(b), sizeofQopt)
	ticks := uint32(50 * time.Millisecond / 64)
	assert.Equal(t, u32s(ticks), b[0:4], "latency in 64 ns ticks")
	assert.Equal(t, u32s(math.MaxUint32), b[8:12], "loss 100% is ~0")
	attrs, err := parseAttrs(b[sizeofQopt:])
	require.NoError(t, err)
	for _, a := range []uint16{tcaNetemCorr, tcaNetemReorder, tcaNetemCorrupt, tcaNetemRate, tcaNetemLatency64, tcaNetemJitter64} {
		assert.Contains(t, attrs, a, "always sent, so a live change clears old values")
	}
	assert.NotContains(t, attrs, uint16(tcaNetemDelayDist), "no table without jitter")
	assert.Equal(t, u64(uint64(50*time.Millisecond)), attrs[tcaNetemLatency64])

	// Rate is bytes per second.
	attrs, err = parseAttrs(netemOptions(netem.Spec{Rate: 8_000_000}, nil)[sizeofQopt:])
	require.NoError(t, err)
	assert.Equal(t, u32s(1_000_000), attrs[tcaNetemRate][:4])
	// Gilbert–Elliott: h is the pass probability in the bad state.
	attrs, err = parseAttrs(netemOptions(netem.Spec{LossGE: &topo.GilbertElliott{P: 10, R: 40, LossBad: 75, LossGood: 1}}, nil)[sizeofQopt:])
	require.NoError(t, err)
	ge, err := parseAttrs(attrs[tcaNetemLoss])
	require.NoError(t, err)
	assert.Equal(t, u32s(probU32(10), probU32(40), probU32(25), probU32(1)), ge[netemLossGE])
}

func TestUniformTable(t *testing.T) {
	tb := uniformTable()
	require.Len(t, tb, 4096)
	assert.Equal(t, int16(-distScale+2), tb[0])
	assert.Equal(t, int16(distScale-2), tb[len(tb)-1])
	var sum int
	for i, v := range tb {
		sum += int(v)
		if i > 0 {
			assert.Equal(t, int16(4), v-tb[i-1])
		}
	}
	assert.Zero(t, sum, "symmetric: the mean delay stays at delay")
}

func TestDistTables(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "normal.dist"), []byte("# comment\n-1 2 3\n  4 -5 # tail\n"), 0o644))
	t.Setenv("TC_LIB_DIR", dir)
	tb, err := distTable("normal")
	require.NoError(t, err)
	assert.Equal(t, []int16{-1, 2, 3, 4, -5}, tb)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "pareto.dist"), []byte("1 x\n"), 0o644))
	_, err = distTable("pareto")
	require.Error(t, err)

	t.Setenv("TC_LIB_DIR", t.TempDir())
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/tc/paretonormal.dist"); err != nil {
		_, err = distTable("paretonormal")
		require.ErrorIs(t, err, netem.ErrUnsupported, "a missing table is refused, never ignored")
		assert.True(t, errors.Is(err, errNoTable))
	}
	_, err = parseDist(strings.NewReader(strings.Repeat("1 ", distMax+1)))
	assert.Error(t, err)
}

func TestKernelRefusals(t *testing.T) {
	err := kernelCheck(netem.Spec{Corrupt: 1, CorruptFixChecksum: true})
	require.ErrorIs(t, err, netem.ErrUnsupported)
	assert.Contains(t, err.Error(), "corrupt_fix_checksum")
	require.ErrorIs(t, kernelCheck(netem.Spec{Delay: dms(5000), Jitter: dms(3000)}), netem.ErrUnsupported)
	assert.Error(t, kernelCheck(netem.Spec{Reorder: 10}), "Validate runs first")
	assert.NoError(t, kernelCheck(netem.Spec{Delay: dms(10), Jitter: dms(2), Distribution: "normal"}))
}

func TestSpecFromShortOptions(t *testing.T) {
	_, err := specFromOptions(make([]byte, 10))
	assert.Error(t, err)
}

func TestParseQdiscStats(t *testing.T) {
	basic := make([]byte, 16)
	binary.NativeEndian.PutUint64(basic, 123456)
	binary.NativeEndian.PutUint32(basic[8:], 789)
	queue := u32s(3, 4500, 17, 0, 0)
	stats2 := attr{typ: tcaStats2, children: []attr{{typ: tcaStatsBasic, data: basic}, {typ: tcaStatsQueue, data: queue}}}.encode()
	attrs, err := parseAttrs(stats2)
	require.NoError(t, err)
	s, err := parseQdiscStats(attrs)
	require.NoError(t, err)
	assert.Equal(t, qdiscStats{bytes: 123456, packets: 789, qlen: 3, backlog: 4500, drops: 17}, s)

	// 64-bit packets win over the 32-bit field.
	stats2 = attr{typ: tcaStats2, children: []attr{{typ: tcaStatsBasic, data: basic}, {typ: tcaStatsPkt64, data: u64(1 << 33)}}}.encode()
	attrs, err = parseAttrs(stats2)
	require.NoError(t, err)
	s, err = parseQdiscStats(attrs)
	require.NoError(t, err)
	assert.Equal(t, uint64(1<<33), s.packets)

	// The older struct tc_stats when there is no TCA_STATS2.
	old := append(u64(999), u32s(9, 2, 0, 0, 0, 5, 7000)...)
	s, err = parseQdiscStats(map[uint16][]byte{tcaStats: old})
	require.NoError(t, err)
	assert.Equal(t, qdiscStats{bytes: 999, packets: 9, drops: 2, qlen: 5, backlog: 7000}, s)
}

func TestCountsFromStatistics(t *testing.T) {
	c := countsFrom(netlink.LinkStatistics{TxPackets: 90, TxBytes: 9000, TxDropped: 1}, qdiscStats{drops: 9, qlen: 2, backlog: 200})
	assert.Equal(t, netem.Counts{Packets: 102, Bytes: 9200, Delivered: 90, Dropped: 10, Queued: 2}, c)
}
