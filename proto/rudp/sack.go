package rudp

import (
	"math"
	"slices"
	"time"
)

// The sack sender. Loss is not a congestion signal here: the pacing rate
// is the receiver's measured delivery rate divided by (1 - measured loss),
// times a gain that probes for more (BBR's cycle). A queue is told apart
// from random loss by the RTT: random loss leaves the RTT at its minimum,
// a standing queue raises most of a round's RTTs above
// baseRTT*3/2 + 2ms (RTTs are each round's 25th percentile), and then the next round sends at 3/4 of the estimate
// (or 1/2 when leaving startup) until it drains. (The 1.25 probe round
// builds a small queue on purpose; the 0.75 round after it drains it.)

// Gains.
const (
	startupGain  = 2.0
	drainGain    = 0.5
	queueGain    = 0.75
	maxLossEst   = 0.6 // the loss estimate is clamped here (beyond: mostly not random)
	bwWindowLen  = 10  // delivery-rate samples kept for the max filter (about 10 rounds)
	burstSeconds = 0.01
	// maxRoundSamples bounds the RTT samples kept per round (for its p25).
	maxRoundSamples = 256
	// startupFlatRounds without 25% more delivery rate end startup.
	startupFlatRounds = 5
)

var probeCycle = [...]float64{1.25, 0.75, 1, 1, 1, 1, 1, 1}

type sbEntry struct {
	acked bool
	lost  bool // queued for retransmission
	tx    uint32
}

type txRec struct {
	id, tx uint32
	ts     uint64
}

type sackSender struct {
	s    *session
	seg  int
	n    uint32 // segments in the file
	w    uint32
	una  uint32 // every id below is acked
	next uint32 // next new id
	sb   []sbEntry
	fifo []txRec // transmissions in send order (bounded by 4*window)
	head int
	lost []uint32 // ids to resend, oldest first (each id at most once)
	lh   int

	inflight int
	tx       uint32
	deliv    uint64 // newest send time (s.now units) of a transmission known delivered

	rate, tokens float64 // pacing, in segments per second
	lastTok      time.Time
	lastProbe    time.Time

	sampAt          uint64 // receiver's clock at the sample's start (0: none yet)
	sampRecv, sampT uint32
	bw              [bwWindowLen]float64 // delivery-rate samples, segments/s
	bwi             int
	loss            float64

	startup      bool
	gain         float64
	cycle        int
	fullBW       float64
	fullBWRounds int
	roundBWI     int // a.bwi when the last startup round was judged
	roundEnd     uint32
	roundRTTs    []time.Duration // this round's RTT samples (at most maxRoundSamples)
	baseRTT      time.Duration   // the path's RTT: the least round p25 seen
}

func newSACKSender(s *session) *sackSender {
	seg := s.cfg.Segment
	n := uint32((s.size + int64(seg) - 1) / int64(seg))
	w := uint32(s.cfg.Window)
	a := &sackSender{s: s, seg: seg, n: n, w: w, sb: make([]sbEntry, w), startup: true, gain: startupGain}
	rtt := s.srtt
	if rtt <= 0 {
		rtt = 100 * time.Millisecond
	}
	a.rate = a.capRate(10 / rtt.Seconds()) // ten segments in the handshake's RTT
	a.lastTok = time.Now()
	return a
}

func (a *sackSender) capRate(r float64) float64 {
	if m := a.s.cfg.MaxRate; m > 0 {
		r = math.Min(r, m/float64(a.seg))
	}
	return math.Max(math.Min(r, 2e6), 20)
}

func (a *sackSender) entry(id uint32) *sbEntry { return &a.sb[id%a.w] }

func (a *sackSender) ack(id uint32) {
	if id < a.una || id >= a.next {
		return
	}
	e := a.entry(id)
	if e.acked {
		return
	}
	e.acked = true
	if !e.lost {
		a.inflight--
	}
	for a.una < a.next && a.entry(a.una).acked {
		*a.entry(a.una) = sbEntry{}
		a.una++
	}
}

func (a *sackSender) onPacket(m inbound) {
	p := &m.p
	if p.Kind == KindNACK {
		if p.ID >= a.una && p.ID < a.next {
			if e := a.entry(p.ID); !e.acked && !e.lost {
				a.markLost(p.ID, e)
			}
		}
		return
	}
	rtt := m.at.Sub(a.s.start) - time.Duration(p.TS)
	if p.TS <= a.s.now() && rtt >= 0 {
		a.s.rttSample(rtt)
		if len(a.roundRTTs) < maxRoundSamples {
			a.roundRTTs = append(a.roundRTTs, rtt)
		}
	}
	a.deliv = max(a.deliv, p.TS)
	a.ack(p.ID)
	for id := a.una; id < min(p.Cum, a.next); id++ {
		a.ack(id)
	}
	for _, r := range p.Ranges {
		for id := max(r.Start, a.una); id < min(r.End, a.next); id++ {
			a.ack(id)
		}
	}
	a.sample(m.at, p)
	if p.Tx >= a.roundEnd {
		a.endRound()
		a.roundEnd = a.tx + 1
	}
	a.updateRate()
}

// sample measures the delivery rate and the loss over at least one RTT,
// from the receiver's count of good datagrams, on the receiver's clock (so
// the ACKs' way back, and when this loop gets to run, add no noise), and
// the echoed tx number.
func (a *sackSender) sample(_ time.Time, p *Packet) {
	if a.sampAt == 0 {
		a.sampAt, a.sampRecv, a.sampT = max(p.RecvTS, 1), p.Received, p.Tx
		return
	}
	dt := time.Duration(p.RecvTS - a.sampAt)
	if p.RecvTS < a.sampAt || dt < max(a.s.srtt, 5*time.Millisecond) || p.Tx <= a.sampT {
		return
	}
	drecv := float64(p.Received - a.sampRecv)
	dtx := float64(p.Tx - a.sampT)
	a.bw[a.bwi%bwWindowLen] = drecv / dt.Seconds()
	a.bwi++
	ls := math.Max(0, math.Min(maxLossEst, 1-drecv/dtx))
	a.loss += (ls - a.loss) * math.Min(1, dtx/256)
	a.sampAt, a.sampRecv, a.sampT = p.RecvTS, p.Received, p.Tx
}

// maxBW is the second largest recent delivery-rate sample: the max filter
// of BBR, less its single worst outlier (a receiver that was descheduled
// reads a backlog at once and reports a burst no link delivered).
func (a *sackSender) maxBW() float64 {
	m1, m2 := 0.0, 0.0
	for _, b := range a.bw {
		if b > m1 {
			m1, m2 = b, m1
		} else if b > m2 {
			m2 = b
		}
	}
	if a.bwi < 2 {
		return m1
	}
	return m2
}

func (a *sackSender) endRound() {
	// The round's RTT is its 25th percentile, not its minimum: a reordering
	// link (netem sends the reordered packets without the delay) gives a few
	// samples far below the path's RTT, and one must not set the baseline.
	var roundRTT time.Duration
	if n := len(a.roundRTTs); n >= 4 {
		slices.Sort(a.roundRTTs)
		roundRTT = a.roundRTTs[n/4]
		if a.baseRTT == 0 || roundRTT < a.baseRTT {
			a.baseRTT = roundRTT
		}
	}
	a.roundRTTs = a.roundRTTs[:0]
	queue := roundRTT > 0 && roundRTT > a.base()*3/2+2*time.Millisecond
	a.s.cfg.Logger.Debug("sack round", "bw_pps", int(a.maxBW()), "loss", a.loss, "gain", a.gain, "rate_pps", int(a.rate),
		"round_rtt", roundRTT, "base_rtt", a.base(), "srtt", a.s.srtt, "inflight", a.inflight, "cwnd", a.cwnd(),
		"retransmits", a.s.stats.Retransmits, "sent", a.s.stats.Sent)
	bw := a.maxBW()
	if a.startup {
		if a.bwi == a.roundBWI { // no new delivery-rate sample this round: no verdict
			return
		}
		a.roundBWI = a.bwi
		if bw >= a.fullBW*1.25 {
			a.fullBW, a.fullBWRounds = bw, 0
		} else {
			a.fullBWRounds++
		}
		// Three flat rounds end BBR's startup; under heavy random loss the
		// early samples are noisy, so five here (the queue ends it anyway).
		if a.fullBWRounds >= startupFlatRounds || queue {
			a.startup, a.gain, a.cycle = false, drainGain, 0
		}
		return
	}
	a.cycle = (a.cycle + 1) % len(probeCycle)
	a.gain = probeCycle[a.cycle]
	if queue {
		a.gain = math.Min(a.gain, queueGain)
	}
}

// base is the path's RTT: the least round p25 once there is one, else the
// least sample.
func (a *sackSender) base() time.Duration {
	if a.baseRTT > 0 {
		return a.baseRTT
	}
	return a.s.minRTT
}

func (a *sackSender) updateRate() {
	if bw := a.maxBW(); bw > 0 {
		r := a.capRate(a.gain * bw / (1 - a.loss))
		if a.startup { // early samples see only what was sent: never slow down here
			r = math.Max(r, a.rate)
		}
		a.rate = r
	}
}

// cwnd bounds what is in flight: twice the segments the pacing rate puts
// in one base RTT, so a stalled receiver is not flooded.
func (a *sackSender) cwnd() int {
	if a.maxBW() == 0 || a.base() == 0 {
		return int(a.w)
	}
	c := 2*a.rate*a.base().Seconds() + 16
	return int(math.Min(c, float64(a.w)))
}

func (a *sackSender) markLost(id uint32, e *sbEntry) {
	e.lost = true
	a.inflight--
	if a.lh > 0 && a.lh == len(a.lost) {
		a.lost, a.lh = a.lost[:0], 0
	}
	a.lost = append(a.lost, id)
	if a.lh > 1024 && a.lh*2 > len(a.lost) {
		a.lost, a.lh = append(a.lost[:0], a.lost[a.lh:]...), 0
	}
}

// hasWork is whether a segment waits to be sent (new or lost).
func (a *sackSender) hasWork() bool {
	return a.lh < len(a.lost) || (a.next < a.n && a.next-a.una < a.w)
}

// detectLoss declares lost each transmission that was overtaken (a
// transmission sent more than reo later was delivered) or has waited an
// RTO; one transmission is declared lost once, so each lost segment is
// resent at most once per round trip.
func (a *sackSender) detectLoss(now time.Time) {
	reo := uint64(a.base()/2 + time.Millisecond)
	rto := uint64(a.s.rto())
	nowTS := uint64(now.Sub(a.s.start))
	for a.head < len(a.fifo) {
		r := a.fifo[a.head]
		e := a.entry(r.id)
		live := r.id >= a.una && r.id < a.next && !e.acked && e.tx == r.tx && !e.lost
		if live && r.ts+reo >= a.deliv && nowTS-r.ts < rto {
			break
		}
		if live {
			a.markLost(r.id, e)
		}
		a.head++
	}
	if a.head > 4096 && a.head*2 > len(a.fifo) {
		a.fifo = append(a.fifo[:0], a.fifo[a.head:]...)
		a.head = 0
	}
}

func (a *sackSender) transmit(id uint32) {
	e := a.entry(id)
	a.tx++
	e.tx, e.lost = a.tx, false
	a.inflight++
	a.fifo = append(a.fifo, txRec{id: id, tx: a.tx, ts: a.s.now()})
	off := int64(id) * int64(a.seg)
	a.s.sendData(id, off, int(min(int64(a.seg), a.s.size-off)), a.tx)
}

// pick returns the next id to send: a lost one first, else a new one.
func (a *sackSender) pick() (uint32, bool) {
	for a.lh < len(a.lost) {
		id := a.lost[a.lh]
		a.lh++
		if id >= a.una && id < a.next {
			if e := a.entry(id); !e.acked && e.lost {
				a.s.stats.Retransmits++
				return id, true
			}
		}
	}
	if a.next < a.n && a.next-a.una < a.w {
		a.next++
		return a.next - 1, true
	}
	return 0, false
}

func (a *sackSender) step(now time.Time) time.Time {
	a.detectLoss(now)
	rto := min(a.s.rto(), finalProbe)
	if a.una == a.n { // all acked: only the ACK-ALL is missing; probe for it
		if now.Sub(a.lastProbe) >= rto {
			a.lastProbe = now
			if a.n == 0 {
				a.s.sendSYNACK()
			} else {
				a.transmit(a.n - 1)
			}
		}
		return now.Add(rto)
	}
	a.tokens = math.Min(a.tokens+now.Sub(a.lastTok).Seconds()*a.rate, math.Max(4, a.rate*burstSeconds))
	a.lastTok = now
	cw := a.cwnd()
	maxFIFO := 4 * int(a.w)
	for a.tokens >= 1 && a.inflight < cw && len(a.fifo)-a.head < maxFIFO && a.s.fail == nil {
		id, ok := a.pick()
		if !ok {
			break
		}
		a.transmit(id)
		a.tokens--
	}
	wake := now.Add(rto)
	if a.head < len(a.fifo) {
		first := a.s.start.Add(time.Duration(a.fifo[a.head].ts) + rto)
		if first.Before(wake) {
			wake = first
		}
	}
	if a.tokens < 1 && a.inflight < cw && a.hasWork() {
		if t := now.Add(time.Duration((1 - a.tokens) / a.rate * float64(time.Second))); t.Before(wake) {
			wake = t
		}
	}
	return wake
}
