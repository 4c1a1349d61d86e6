package engine

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"slices"
	"time"

	"github.com/labctl/labctl/netem"
)

// Determinism: seeded fates per flow. Every draw is a pure function of the
// lab's seed, the link, the direction, the flow the packet belongs to, the
// packet's number within that flow, and the kind of decision (loss,
// duplicate, corrupt, reorder, jitter: one stream each, so adding, say,
// duplication does not change which packets are lost). So with one seed
// the Nth packet of a flow meets the same fate on every run, whatever
// other flows, ARP or timing do around it.
//
// A flow, within one direction of one link, is:
//   - TCP or UDP: the IP version, protocol, addresses and ports (a
//     non-first IPv4 fragment, which has no ports, counts in the flow of
//     its addresses with ports 0);
//   - ICMP and ICMPv6: the addresses and the echo identifier (so each ping
//     run is a flow of its own);
//   - any other IP protocol: the protocol and addresses;
//   - ARP, IPv6 neighbour discovery and router messages, and any other
//     non-IP frame: one control flow per EtherType (and ND type), so they
//     never consume a data flow's draws.
//
// What seeds a flow's draws is its key without what changes from run to
// run: a client's ephemeral port (of the two ports only the lower, the
// service's, counts) and the ICMP echo id; and, so that two such flows do
// not share fates, how many flows with that seed key this direction saw
// before it. So a client that sends to the same service in the same order
// on every run meets the same fates, whatever port or echo id the kernel
// gave it.
//
// A TCP super-frame counts as the ceil(payload/MSS) packets it stands for.
// What cannot repeat: drops by a full rate queue (they depend on timing),
// and anything that changes a flow's own packet sequence (a TCP sender
// reacts to timing: its retransmissions and segment sizes vary run to
// run), or the order in which concurrent flows to one service start.
// The flow table is bounded (maxFlows per direction): at the limit the
// half least recently seen is forgotten, and a forgotten flow that comes
// back is a new flow.

type stream uint64

const (
	streamLoss stream = iota
	streamDup
	streamCorrupt
	streamReorder
	streamJitter
)

// maxFlows bounds a direction's flow table; see above.
const maxFlows = 16384

// flowKey names a flow within one direction.
type flowKey struct {
	v6           bool
	proto        uint8 // IP protocol; 0: a control flow (ARP, ND, non-IP)
	src, dst     [16]byte
	sport, dport uint16 // ports, the ICMP echo id (in sport), or the EtherType of a control flow
}

// flow is one flow's draw state: its base, how many packets it has drawn
// for, and its correlation memories.
type flow struct {
	base                         uint64
	n                            uint64 // wire packets decided so far
	seen                         uint64 // the table's clock when last used
	lossC, dupC, corC, reoC, jtC corrRand
	ge                           geState
	reorderCount                 uint32
}

// draw is the uniform [0,1) number k of stream s for the flow's current
// packet.
func (f *flow) draw(s stream, k uint64) float64 {
	return float64(f.bits(s, k)>>11) / (1 << 53)
}

func (f *flow) bits(s stream, k uint64) uint64 {
	return mix64(f.base ^ mix64(f.n*0x9e3779b97f4a7c15+(uint64(s)<<3|k)*0xd1b54a32d192ed03))
}

// mix64 is the splitmix64 finaliser: a bijection whose output bits each
// depend on every input bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// flowTable is one direction's flows; only its reader goroutine uses it.
type flowTable struct {
	salt  uint64 // from the seed, the link and the direction
	m     map[flowKey]*flow
	clock uint64
	// seen counts the flows per seed key (a key without the ephemeral
	// port or echo id), at most maxFlows keys (then it starts again).
	seen map[flowKey]uint64
}

func newFlowTable(seed int64, link string, d netem.Dir) *flowTable {
	h := fnv.New64a()
	h.Write([]byte(link))
	h.Write([]byte{0, byte(d)})
	return &flowTable{salt: mix64(uint64(seed)) ^ h.Sum64(), m: map[flowKey]*flow{}, seen: map[flowKey]uint64{}}
}

// get returns the flow of a frame, making it if new.
func (t *flowTable) get(p []byte) *flow {
	k := keyOf(p)
	t.clock++
	if f, ok := t.m[k]; ok {
		f.seen = t.clock
		return f
	}
	if len(t.m) >= maxFlows {
		t.forget()
	}
	sk := seedKey(k)
	if len(t.seen) >= maxFlows {
		clear(t.seen)
	}
	occ := t.seen[sk]
	t.seen[sk] = occ + 1
	h := fnv.New64a()
	var b [48]byte
	b[0], b[1] = boolByte(sk.v6), sk.proto
	copy(b[2:], sk.src[:])
	copy(b[18:], sk.dst[:])
	binary.BigEndian.PutUint16(b[34:], sk.sport)
	binary.BigEndian.PutUint16(b[36:], sk.dport)
	binary.BigEndian.PutUint64(b[38:], occ)
	h.Write(b[:46])
	f := &flow{base: mix64(t.salt ^ h.Sum64()), seen: t.clock}
	t.m[k] = f
	return f
}

// seedKey is what of a flow's key seeds its draws: the key without the
// ephemeral port (only the lower of two ports is kept) or the echo id.
func seedKey(k flowKey) flowKey {
	switch k.proto {
	case 6, 17:
		k.sport, k.dport = min(k.sport, k.dport), 0
	case 1, 58:
		k.sport = 0
	}
	return k
}

// forget drops the half of the flows least recently seen.
func (t *flowTable) forget() {
	seen := make([]uint64, 0, len(t.m))
	for _, f := range t.m {
		seen = append(seen, f.seen)
	}
	slices.Sort(seen)
	cut := seen[len(seen)/2]
	for k, f := range t.m {
		if f.seen < cut {
			delete(t.m, k)
		}
	}
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// keyOf reads a frame's flow key (see the flow rules above).
func keyOf(p []byte) flowKey {
	var k flowKey
	if len(p) < 14 {
		return k
	}
	et, nh := binary.BigEndian.Uint16(p[12:]), 14
	if (et == 0x8100 || et == 0x88a8) && len(p) >= 18 {
		et, nh = binary.BigEndian.Uint16(p[16:]), 18
	}
	pi := parsePkt(p)
	if pi.nh == 0 {
		k.sport = et
		return k
	}
	k.v6, k.proto = pi.v6, pi.proto
	if pi.v6 {
		copy(k.src[:], p[nh+8:nh+24])
		copy(k.dst[:], p[nh+24:nh+40])
	} else {
		copy(k.src[:], p[nh+12:nh+16])
		copy(k.dst[:], p[nh+16:nh+20])
		if binary.BigEndian.Uint16(p[nh+6:])&0x1fff != 0 {
			return k // a later fragment: no ports
		}
	}
	switch pi.proto {
	case 6, 17:
		k.sport, k.dport = pi.sport, pi.dport
	case 1, 58:
		if pi.th+8 > pi.end {
			return k
		}
		typ := p[pi.th]
		if pi.proto == 58 && typ >= 133 && typ <= 137 { // router and neighbour discovery
			return flowKey{sport: 0x86dd, dport: uint16(typ)}
		}
		k.sport = binary.BigEndian.Uint16(p[pi.th+4:])
	}
	return k
}

// corrRand is tc-netem's correlated random number: each value is
// rho*previous + (1-rho)*fresh.
type corrRand struct{ last float64 }

func (c *corrRand) next(u, rho float64) float64 {
	if rho == 0 {
		return u
	}
	v := rho*c.last + (1-rho)*u
	c.last = v
	return v
}

// geState is the Gilbert–Elliott chain, stepped as tc-netem steps it: the
// transition is drawn first (u1), the loss (u2) with the parameters of the
// state the packet arrived in. Each flow has its own chain.
type geState struct{ bad bool }

func (g *geState) lose(u1, u2 float64, m *GilbertElliottParams) bool {
	if !g.bad {
		if u1 < m.p {
			g.bad = true
		}
		return u2 < m.lossGood
	}
	if u1 < m.r {
		g.bad = false
	}
	return u2 < m.lossBad
}

// GilbertElliottParams are the probabilities of topo.GilbertElliott as
// fractions, with its defaults applied.
type GilbertElliottParams struct{ p, r, lossBad, lossGood float64 }

// jitterOffset draws one packet's deviation from the mean delay, from a
// correlated uniform number u in [0,1). "normal" and "pareto" are the
// distributions the kernel's tables approximate (pareto with shape 3,
// centred and scaled to unit deviation); "paretonormal" is a quarter normal
// and three quarters pareto, as the kernel's table is built.
func jitterOffset(dist string, u, u2 float64, jitter time.Duration) time.Duration {
	var x float64
	switch dist {
	case "normal":
		x = normalQ(u)
	case "pareto":
		x = paretoQ(u)
	case "paretonormal":
		x = 0.25*normalQ(u2) + 0.75*paretoQ(u)
	default:
		x = 2*u - 1
	}
	return time.Duration(x * float64(jitter))
}

func normalQ(u float64) float64 {
	u = math.Min(math.Max(u, 1e-9), 1-1e-9)
	return math.Max(-4, math.Min(4, math.Sqrt2*math.Erfinv(2*u-1)))
}

func paretoQ(u float64) float64 {
	const mean, sd = 1.5, 0.8660254037844386 // shape 3, scale 1
	x := math.Pow(1-math.Min(u, 1-1e-9), -1.0/3)
	return math.Min((x-mean)/sd, 8)
}
