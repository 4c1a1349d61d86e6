package web

import (
	"time"

	"github.com/labctl/labctl/netem"
)

// Counts are one direction's counters of a link since it was made: the
// engine boundary's netem.Counts (nodes.Counters gives them).
type Counts = netem.Counts

// historyLen is how many one-second samples of each direction's rate the
// server keeps for the sparklines: the last minute.
const historyLen = 60

// dirWire is one direction as the page gets it: the counters, the rates
// since the previous sample, in one fixed-order array (docs/web.md) to keep
// the stream small.
type dirWire [14]float64

func wireOf(c Counts, pps, bps float64) dirWire {
	split := 0.0
	if c.Split {
		split = 1
	}
	return dirWire{float64(c.Packets), float64(c.Bytes), float64(c.Delivered), float64(c.Dropped),
		float64(c.Lost), float64(c.QueueDrops), float64(c.Corrupted), float64(c.Duplicated),
		float64(c.Reordered), float64(c.DownDrops), float64(c.Queued), split, round1(pps), round1(bps)}
}

func round1(v float64) float64 {
	if v < 0 {
		return 0
	}
	return float64(int64(v*10+0.5)) / 10
}

// linkWire is one link in a counters event: a->b, b->a and whether the
// link is down.
type linkWire struct {
	AtoB dirWire `json:"a"`
	BtoA dirWire `json:"b"`
	Down bool    `json:"down,omitempty"`
}

// rateKeeper turns successive counter samples into rates and keeps a
// minute of history per link and direction. It is bounded by the lab's
// links: entries of links that disappear are dropped at each sample.
type rateKeeper struct {
	last    map[string][2]Counts
	lastAt  time.Time
	history map[string]*[2][]float64 // bits/s, oldest first, at most historyLen
}

func newRateKeeper() *rateKeeper {
	return &rateKeeper{last: map[string][2]Counts{}, history: map[string]*[2][]float64{}}
}

// sample records counters taken at t and returns the wire form of each link.
func (k *rateKeeper) sample(t time.Time, counts map[string][2]Counts, down map[string]bool) map[string]linkWire {
	dt := t.Sub(k.lastAt).Seconds()
	out := make(map[string]linkWire, len(counts))
	for id, c := range counts {
		prev, had := k.last[id]
		var w linkWire
		for d := 0; d < 2; d++ {
			var pps, bps float64
			if had && dt > 0 && c[d].Packets >= prev[d].Packets && c[d].Bytes >= prev[d].Bytes {
				pps = float64(c[d].Packets-prev[d].Packets) / dt
				bps = float64(c[d].Bytes-prev[d].Bytes) * 8 / dt
			}
			h := k.history[id]
			if h == nil {
				h = &[2][]float64{}
				k.history[id] = h
			}
			h[d] = append(h[d], round1(bps))
			if len(h[d]) > historyLen {
				h[d] = h[d][len(h[d])-historyLen:]
			}
			if d == 0 {
				w.AtoB = wireOf(c[d], pps, bps)
			} else {
				w.BtoA = wireOf(c[d], pps, bps)
			}
		}
		w.Down = down[id]
		out[id] = w
	}
	for id := range k.history {
		if _, ok := counts[id]; !ok {
			delete(k.history, id)
		}
	}
	k.last, k.lastAt = counts, t
	return out
}

// historyCopy returns the sparkline history, for a snapshot.
func (k *rateKeeper) historyCopy() map[string][2][]float64 {
	out := make(map[string][2][]float64, len(k.history))
	for id, h := range k.history {
		out[id] = [2][]float64{append([]float64(nil), h[0]...), append([]float64(nil), h[1]...)}
	}
	return out
}
