package engine

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"

	"github.com/labctl/labctl/netem"
)

// Determinism. Each link direction has its own PRNG streams, one per kind
// of decision (loss, duplicate, corrupt, reorder, jitter), seeded from the
// lab's seed, the link's id and the direction. So with one seed, the Nth
// wire packet entering a direction meets the same fate on every run, and
// adding, say, duplication does not change which packets are lost. "The Nth
// wire packet" counts every frame the sending side puts on the link since
// the engine started (ARP and IPv6 neighbour discovery included), a TCP
// super-frame counting as the ceil(payload/MSS) packets it stands for. What
// is not deterministic: drops by a full rate queue (they depend on timing),
// and anything that changes the packet sequence itself (a TCP sender reacts
// to timing).

type stream int

const (
	streamLoss stream = iota
	streamDup
	streamCorrupt
	streamReorder
	streamJitter
	nStreams
)

// newStreams seeds the PRNGs of one link direction.
func newStreams(seed int64, link string, d netem.Dir) [nStreams]*rand.Rand {
	var rs [nStreams]*rand.Rand
	for i := range rs {
		h := fnv.New64a()
		h.Write([]byte(link))
		h.Write([]byte{0, byte(d), byte(i)})
		rs[i] = rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
	}
	return rs
}

// corrRand is tc-netem's correlated random number: each value is
// rho*previous + (1-rho)*fresh.
type corrRand struct{ last float64 }

func (c *corrRand) next(r *rand.Rand, rho float64) float64 {
	u := r.Float64()
	if rho == 0 {
		return u
	}
	v := rho*c.last + (1-rho)*u
	c.last = v
	return v
}

// geState is the Gilbert–Elliott chain, stepped as tc-netem steps it: the
// transition is drawn first, the loss with the parameters of the state the
// packet arrived in.
type geState struct{ bad bool }

func (g *geState) lose(r *rand.Rand, m *GilbertElliottParams) bool {
	if !g.bad {
		if r.Float64() < m.p {
			g.bad = true
		}
		return r.Float64() < m.lossGood
	}
	if r.Float64() < m.r {
		g.bad = false
	}
	return r.Float64() < m.lossBad
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
