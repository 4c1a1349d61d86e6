package engine

import (
	"encoding/binary"
	"testing"

	"github.com/labctl/labctl/netem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ipv4Frame is an Ethernet + IPv4 frame with an 8-byte L4 header (UDP
// ports, or ICMP type and echo id) and 8 bytes of payload.
func ipv4Frame(proto uint8, src, dst byte, a, b uint16) []byte {
	q := make([]byte, 14+20+16)
	binary.BigEndian.PutUint16(q[12:], 0x0800)
	ip := q[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	copy(ip[12:], []byte{10, 0, 0, src, 10, 0, 0, dst})
	l4 := ip[20:]
	switch proto {
	case 1:
		l4[0] = 8 // echo request
		binary.BigEndian.PutUint16(l4[4:], a)
		binary.BigEndian.PutUint16(l4[6:], b) // sequence
	default:
		binary.BigEndian.PutUint16(l4[0:], a)
		binary.BigEndian.PutUint16(l4[2:], b)
		binary.BigEndian.PutUint16(l4[4:], 16)
	}
	return q
}

func arpFrame() []byte {
	q := make([]byte, 42)
	binary.BigEndian.PutUint16(q[12:], 0x0806)
	return q
}

func TestFlowKeys(t *testing.T) {
	u1, u2 := ipv4Frame(17, 1, 2, 5000, 9000), ipv4Frame(17, 1, 2, 5001, 9000)
	assert.NotEqual(t, keyOf(u1), keyOf(u2), "ports tell UDP flows apart")
	assert.Equal(t, keyOf(u1), keyOf(ipv4Frame(17, 1, 2, 5000, 9000)))
	assert.NotEqual(t, keyOf(ipv4Frame(17, 2, 1, 5000, 9000)), keyOf(u1), "addresses too")

	p1, p1b, p2 := ipv4Frame(1, 1, 2, 77, 1), ipv4Frame(1, 1, 2, 77, 2), ipv4Frame(1, 1, 2, 78, 1)
	assert.Equal(t, keyOf(p1), keyOf(p1b), "one ping run is one flow, whatever the sequence")
	assert.NotEqual(t, keyOf(p1), keyOf(p2), "the echo id tells ping runs apart")

	k := keyOf(arpFrame())
	assert.Equal(t, flowKey{sport: 0x0806}, k, "ARP is a control flow")

	frag := ipv4Frame(17, 1, 2, 5000, 9000)
	binary.BigEndian.PutUint16(frag[14+6:], 185) // offset 185*8, no ports in it
	assert.Equal(t, uint16(0), keyOf(frag).sport)
	assert.Equal(t, uint8(17), keyOf(frag).proto)

	nd := make([]byte, 14+40+24)
	binary.BigEndian.PutUint16(nd[12:], 0x86dd)
	nd[14], nd[14+6] = 0x60, 58
	binary.BigEndian.PutUint16(nd[14+4:], 24)
	nd[14+40] = 135 // neighbour solicitation
	assert.Equal(t, flowKey{sport: 0x86dd, dport: 135}, keyOf(nd), "ND is a control flow")
}

// TestFatesPerFlow: the Nth packet of a flow meets the same fate whatever
// is interleaved with it (ARP, another flow), and only the seed, link and
// direction change it.
func TestFatesPerFlow(t *testing.T) {
	c, err := newDirConfig(netem.Spec{Loss: 20, Duplicate: 5, Corrupt: 5, Delay: 10_000_000, Jitter: 2_000_000})
	require.NoError(t, err)
	flowA, flowB, arp := ipv4Frame(17, 1, 2, 5000, 9000), ipv4Frame(17, 1, 2, 5001, 9000), arpFrame()
	run := func(seed int64, link string, d netem.Dir, noise int) []fate {
		tb := newFlowTable(seed, link, d)
		var out []fate
		for i := range 500 {
			for j := range (i * noise) % 4 {
				if j%2 == 0 {
					decide(c, tb.get(arp))
				} else {
					decide(c, tb.get(flowB))
				}
			}
			out = append(out, decide(c, tb.get(flowA)))
		}
		return out
	}
	quiet := run(42, "x-s1", netem.AtoB, 0)
	assert.Equal(t, quiet, run(42, "x-s1", netem.AtoB, 3), "ARP and another flow change nothing")
	assert.NotEqual(t, quiet, run(43, "x-s1", netem.AtoB, 0), "another seed")
	assert.NotEqual(t, quiet, run(42, "x-s2", netem.AtoB, 0), "another link")
	assert.NotEqual(t, quiet, run(42, "x-s1", netem.BtoA, 0), "the other direction")
	drops := 0
	for _, f := range quiet {
		if f.drop {
			drops++
		}
	}
	assert.InDelta(t, 100, drops, 30, "about 20%% of 500 lost")
}

func TestFlowTableIsBounded(t *testing.T) {
	tb := newFlowTable(1, "x", netem.AtoB)
	hot := ipv4Frame(17, 1, 2, 1, 1)
	first := tb.get(hot)
	first.n = 7
	for i := range maxFlows + 100 {
		tb.get(ipv4Frame(17, byte(i>>8), byte(i), uint16(i), 9))
		if i%1000 == 0 {
			tb.get(hot) // recently seen: survives
		}
	}
	assert.LessOrEqual(t, len(tb.m), maxFlows)
	assert.Same(t, first, tb.get(hot), "a flow in use is not forgotten")
}

// TestFatesIgnoreEphemeralPortAndEchoID: a rerun of a client, on another
// ephemeral port or echo id, meets the same fates; a second flow to the
// same service does not share the first one's.
func TestFatesIgnoreEphemeralPortAndEchoID(t *testing.T) {
	c, err := newDirConfig(netem.Spec{Loss: 30})
	require.NoError(t, err)
	seq := func(tb *flowTable, p []byte) (drops []int) {
		for i := range 300 {
			if decide(c, tb.get(p)).drop {
				drops = append(drops, i)
			}
		}
		return drops
	}
	run1 := seq(newFlowTable(9, "l", netem.AtoB), ipv4Frame(17, 1, 2, 40001, 9000))
	run2 := seq(newFlowTable(9, "l", netem.AtoB), ipv4Frame(17, 1, 2, 51234, 9000))
	assert.Equal(t, run1, run2, "another ephemeral port, same fates")
	ping1 := seq(newFlowTable(9, "l", netem.AtoB), ipv4Frame(1, 1, 2, 11, 0))
	ping2 := seq(newFlowTable(9, "l", netem.AtoB), ipv4Frame(1, 1, 2, 12, 0))
	assert.Equal(t, ping1, ping2, "another echo id, same fates")

	tb := newFlowTable(9, "l", netem.AtoB)
	first := seq(tb, ipv4Frame(17, 1, 2, 40001, 9000))
	second := seq(tb, ipv4Frame(17, 1, 2, 40002, 9000))
	assert.Equal(t, run1, first)
	assert.NotEqual(t, first, second, "the second flow to a service has fates of its own")
}
