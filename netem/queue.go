package netem

import (
	"math"

	"github.com/labctl/labctl/topo"
)

// The queue-limit rule, one for both backends. A direction holds every
// packet it has taken and not yet delivered: those in the delay line and
// those waiting for the rate. tc-netem drops past its limit (1000 packets
// by default, silently: only 12 Mbit/s at 1 s of delay), and so does the
// engine, with the same count.
const (
	// LimitFrameBytes is a full Ethernet frame at MTU 1500, as both
	// backends count it.
	LimitFrameBytes = 1514
	// limitAssumedRate: a veth has no line rate of its own; without a rate
	// the rule assumes 10 Gbit/s, so that delay alone never drops.
	limitAssumedRate = topo.Rate(10e9)
	// limitFloorNoRate: without a rate, never below netem's own default.
	limitFloorNoRate = 1000
	// limitBurst is the smallest buffer a rate gets: room for bursts (TCP's
	// initial window, a 45-packet TSO super-frame in the engine) and for
	// paths whose round trip is longer than this direction's delay alone.
	limitBurst   = 64
	limitCeiling = 1 << 20
)

// QueueLimit is the queue length, in packets, of one direction: what the
// kernel backend writes as netem's limit and what the userspace engine
// holds at most. With d = delay + jitter and R the rate,
//
//	inflight = ceil(R × d / (8 × 1514 B))        full frames in the delay line
//	limit    = inflight + max(2 × inflight, 64)  with a rate
//	limit    = max(1000, 2 × inflight at 10 Gbit/s)   without one
//
// capped at 2^20. With a rate, the buffer beyond the delay line is one
// round trip's bandwidth-delay product (the reverse direction is taken to
// have the same delay: RTT = 2d), the classic router buffer that lets one
// TCP flow fill the link while adding at most about one RTT of queueing
// delay, and at least 64 frames for bursts (netem's old allowance: with
// fewer, TCP lost a tenth of a 10 Mbit/s link whose ACKs were delayed and
// lossy). At 10 Mbit/s with 10 ms each way: inflight 9, buffer
// max(18, 64) = 64, limit 73: at most 78 ms of queue (the old rules gave
// 82 packets on the kernel and 1000, 1.2 s, in the engine). At 100 Mbit/s with 10 ms: inflight 83, limit 249, at most
// 20 ms of queue, one RTT. Without a rate nothing
// waits for serialisation; assume a 10 Gbit/s line so delay alone never
// drops. A Spec's explicit Limit wins.
func QueueLimit(s Spec) int {
	if s.Limit > 0 {
		return int(min(s.Limit, math.MaxInt32))
	}
	hold := (s.Delay.D() + s.Jitter.D()).Seconds()
	inflight := func(r topo.Rate) float64 { return math.Ceil(float64(r) * hold / (8 * LimitFrameBytes)) }
	var limit float64
	if s.Rate > 0 {
		f := inflight(s.Rate)
		limit = f + max(2*f, limitBurst)
	} else {
		limit = max(limitFloorNoRate, 2*inflight(limitAssumedRate))
	}
	return int(min(limit, limitCeiling))
}
