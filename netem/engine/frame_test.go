package engine

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/labctl/labctl/netem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gsoFrame builds a TCP/IPv4 super-frame as a TAP hands it over: partial
// checksum (pseudo-header sum in the field), gso_size mss.
func gsoFrame(payload, mss int, flags byte) []byte {
	const nh, th = 14, 34
	f := make([]byte, vnetHdrLen+th+20+payload)
	q := f[vnetHdrLen:]
	binary.BigEndian.PutUint16(q[12:], 0x0800)
	ip := q[nh:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(len(q)-nh))
	binary.BigEndian.PutUint16(ip[4:], 100)
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	ipv4HeaderChecksum(ip)
	tcp := q[th:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 9000)
	binary.BigEndian.PutUint32(tcp[4:], 1_000_000)
	tcp[12], tcp[13] = 5<<4, flags
	for i := range payload {
		q[th+20+i] = byte(i * 7)
	}
	pi := parsePkt(q)
	binary.BigEndian.PutUint16(tcp[16:], pseudoSum(q, pi, len(q)-th))
	vnetHdr{flags: vnetNeedsCsum, gsoType: gsoTCPv4, hdrLen: th + 20, gsoSize: uint16(mss), csumStart: th, csumOffset: 16}.put(f)
	return f
}

// verify finishes the checksum and checks it against a fresh computation.
func verifyChecksums(t *testing.T, frame []byte) {
	t.Helper()
	finishChecksum(frame)
	q := frame[vnetHdrLen:]
	got := append([]byte(nil), q...)
	fixChecksums(q)
	assert.Equal(t, got, q, "checksums as a fresh computation gives them")
}

func TestBuildRunSplitsSuperFrames(t *testing.T) {
	f := gsoFrame(3500, 1000, 0x18|0x01|0x80) // PSH ACK FIN CWR
	h := parseVnet(f)
	p := f[vnetHdrLen:]
	n, hdrs := segments(h, p)
	require.Equal(t, 4, n)
	require.Equal(t, 54, hdrs)

	buf := make([]byte, bigBuf)
	for _, r := range [][2]int{{0, 1}, {1, 3}, {3, 4}, {0, 4}} {
		out := append([]byte(nil), buildRun(buf, h, p, hdrs, r[0], r[1], n)...)
		oh := parseVnet(out)
		q := out[vnetHdrLen:]
		pay := min(r[1]*1000, 3500) - r[0]*1000
		assert.Equal(t, hdrs+pay, len(q), "run %v", r)
		assert.Equal(t, uint16(len(q)-14), binary.BigEndian.Uint16(q[16:]), "ip length")
		assert.Equal(t, uint16(100+r[0]), binary.BigEndian.Uint16(q[18:]), "ip id")
		assert.Equal(t, uint32(1_000_000+r[0]*1000), binary.BigEndian.Uint32(q[38:]), "seq")
		assert.Equal(t, r[0] == 0, q[47]&0x80 != 0, "CWR only on the first")
		assert.Equal(t, r[1] == n, q[47]&0x09 == 0x09, "FIN/PSH only on the last")
		assert.Equal(t, p[hdrs+r[0]*1000:hdrs+r[0]*1000+pay], q[hdrs:], "payload")
		if r[1]-r[0] == 1 {
			assert.Equal(t, uint8(gsoNone), oh.gsoType)
		} else {
			assert.Equal(t, uint8(gsoTCPv4), oh.gsoType)
			assert.Equal(t, uint16(1000), oh.gsoSize)
		}
		assert.Zero(t, fold(sum16(q[14:34], 0))^0xffff, "ip header checksum")
		verifyChecksums(t, out)
	}
}

func TestCorruptFixKeepsChecksumsValid(t *testing.T) {
	f := gsoFrame(200, 1000, 0x18)
	vnetHdr{flags: vnetNeedsCsum, csumStart: 34, csumOffset: 16}.put(f)
	orig := append([]byte(nil), f...)
	r := rand.New(rand.NewPCG(1, 2))
	corrupt(f, fate{corrupt: true, fix: true, corruptByte: -1, bit: r.Uint64()})
	assert.Equal(t, uint8(0), parseVnet(f).flags, "the receiver verifies")
	q, oq := f[vnetHdrLen:], orig[vnetHdrLen:]
	assert.Equal(t, oq[14:34], q[14:34], "ip header untouched")
	assert.Equal(t, 1, bitDiff(q[54:], oq[54:]), "one payload bit flipped")
	verifyChecksums(t, f)

	g := append([]byte(nil), orig...)
	corrupt(g, fate{corrupt: true, fix: true, corruptByte: 203})
	assert.Equal(t, oq[54+3]^0xff, g[vnetHdrLen+54+3], "byte 203 mod 200")
	verifyChecksums(t, g)
}

func TestFaultMatch(t *testing.T) {
	l := netem.Link{ID: "x-y", A: netem.End{Node: "x"}, B: netem.End{Node: "y"}}
	f := gsoFrame(100, 1000, 0x18)
	pi := parsePkt(f[vnetHdrLen:])
	ln := len(f) - vnetHdrLen
	assert.True(t, faultMatches(netem.FaultMatch{Proto: "tcp", Port: 9000, From: "x", Data: true}, &l, netem.AtoB, pi, ln))
	assert.False(t, faultMatches(netem.FaultMatch{From: "y"}, &l, netem.AtoB, pi, ln))
	assert.False(t, faultMatches(netem.FaultMatch{Proto: "udp"}, &l, netem.AtoB, pi, ln))
	assert.False(t, faultMatches(netem.FaultMatch{Port: 1}, &l, netem.AtoB, pi, ln))
	ack := gsoFrame(0, 1000, 0x10)
	assert.False(t, faultMatches(netem.FaultMatch{Data: true}, &l, netem.AtoB, parsePkt(ack[vnetHdrLen:]), len(ack)-vnetHdrLen))

	assert.NoError(t, netem.Fault{Action: netem.FaultDrop, Nth: 3, Match: netem.FaultMatch{From: "x"}}.Validate(l.ID, l.A.Node, l.B.Node))
	assert.Error(t, netem.Fault{Action: netem.FaultDrop}.Validate(l.ID, l.A.Node, l.B.Node), "nth")
	assert.Error(t, netem.Fault{Action: "explode", Nth: 1}.Validate(l.ID, l.A.Node, l.B.Node))
	assert.Error(t, netem.Fault{Action: netem.FaultDrop, Nth: 1, Match: netem.FaultMatch{From: "z"}}.Validate(l.ID, l.A.Node, l.B.Node))
	assert.Error(t, netem.Fault{Action: netem.FaultDelay, Nth: 1}.Validate(l.ID, l.A.Node, l.B.Node), "delay needs a delay")
}

func TestGilbertElliottStationaryLoss(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var g geState
	m := &GilbertElliottParams{p: 0.05, r: 0.5, lossBad: 1}
	lost := 0
	const n = 200000
	for range n {
		if g.lose(r.Float64(), r.Float64(), m) {
			lost++
		}
	}
	// Stationary share of the bad state: p/(p+r).
	assert.InDelta(t, 0.05/0.55, float64(lost)/n, 0.005)
}
