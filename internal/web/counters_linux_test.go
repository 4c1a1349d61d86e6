package web

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/vishvananda/netlink"
)

func TestVethCountsFromTheInterfaces(t *testing.T) {
	// A plain veth (a large userspace lab's, which its backend does not
	// count): what one end transmits, the other receives.
	from := ifaceStats{st: netlink.LinkStatistics{TxPackets: 50, TxBytes: 5000, TxDropped: 1}}
	to := ifaceStats{st: netlink.LinkStatistics{RxPackets: 50}}
	assert.Equal(t, Counts{Packets: 51, Bytes: 5000, Delivered: 50, Dropped: 1}, vethCounts(from, to))
}
