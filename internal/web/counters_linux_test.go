package web

import (
	"testing"

	"github.com/labctl/labctl/netem"
	"github.com/stretchr/testify/assert"
	"github.com/vishvananda/netlink"
)

func TestVethCountsFromQdiscOrInterface(t *testing.T) {
	// Kernel backend: the sender's root qdisc saw 90 packets out, dropped
	// 8 (tc-netem does not say why) and holds 2; the receiver got 88.
	from := ifaceStats{qdisc: true, qsent: netlink.GnetStatsBasic{Packets: 90, Bytes: 9000}, qdrops: 8, qlen: 2}
	to := ifaceStats{st: netlink.LinkStatistics{RxPackets: 88}}
	c := vethCounts(from, to)
	assert.Equal(t, Counts{Packets: 100, Bytes: 9000, Delivered: 88, Dropped: 8, Queued: 2}, c)
	assert.False(t, c.Split)
	// A plain veth: the interfaces' counters.
	from = ifaceStats{st: netlink.LinkStatistics{TxPackets: 50, TxBytes: 5000, TxDropped: 1}}
	assert.Equal(t, Counts{Packets: 51, Bytes: 5000, Delivered: 88, Dropped: 1}, vethCounts(from, to))
}

func TestEngineCountsSplitDrops(t *testing.T) {
	d := netem.DirStats{Packets: 100, Delivered: 80, Lost: 10, QueueDrops: 5, DownDrops: 3, WriteErrors: 2, Duplicated: 4, Corrupted: 1, Reordered: 6, Queued: 7}
	c := engineCounts(d, 12345)
	assert.Equal(t, Counts{Packets: 100, Bytes: 12345, Delivered: 80, Dropped: 20, Lost: 10, QueueDrops: 5, Corrupted: 1,
		Duplicated: 4, Reordered: 6, DownDrops: 3, Queued: 7, Split: true}, c)
}
