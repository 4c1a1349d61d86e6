package rudp

import "time"

// The seed's sender (seed 004's frUDP): segments of k*1000 bytes, k adapted
// per message: each ACK grows k by 1 up to 60, each NACK or silence (a
// segment unanswered for an RTO) shrinks it by 3 down to 8, and after a
// pause (no ACK for seedPause) it starts again from 8 (slow start). Large
// segments are IP-fragmented (a 60 KB one is 42 fragments), so one lost
// fragment loses the segment. What the seed lacked, so that it always
// finishes: the handshake is retransmitted, and so is every segment until
// it is ACKed (its id and bytes kept, every max(2 RTO, 100ms) up to 1s, with
// no backoff, so the client keeps hearing from a sender even at 30% loss of
// fragments); at most seedWindow are in flight.
const (
	seedMinKB  = 8
	seedMaxKB  = 60
	seedGrow   = 1
	seedShrink = 3
	seedWindow = 16 // segments in flight (at most 960 KB)
	seedPause  = time.Second
	seedMinRTO = 100 * time.Millisecond
	seedMaxRTO = time.Second // no exponential backoff: the seed kept sending
	// finalProbe bounds the wait between probes for the ACK-ALL (well
	// inside the receiver's Linger).
	finalProbe = 200 * time.Millisecond
)

type seedSeg struct {
	id     uint32
	off    int64
	n      int
	sentAt time.Time
	tx     uint32
}

type seedSender struct {
	s       *session
	kb      int
	nextOff int64
	nextID  uint32
	segs    []seedSeg // in flight, by id
	last    seedSeg   // the final segment, to probe for a lost ACK-ALL
	tx      uint32
	lastAck time.Time
	probeAt time.Time
}

func newSeedSender(s *session) *seedSender {
	return &seedSender{s: s, kb: seedMinKB, lastAck: time.Now()}
}

func (a *seedSender) shrink() { a.kb = max(seedMinKB, a.kb-seedShrink) }

func (a *seedSender) find(id uint32) int {
	for i := range a.segs {
		if a.segs[i].id == id {
			return i
		}
	}
	return -1
}

func (a *seedSender) onPacket(m inbound) {
	p := &m.p
	i := a.find(p.ID)
	if p.Kind == KindNACK {
		a.shrink()
		if i >= 0 {
			a.resend(&a.segs[i], m.at)
		}
		return
	}
	if rtt := m.at.Sub(a.s.start) - time.Duration(p.TS); p.TS <= a.s.now() && rtt >= 0 {
		a.s.rttSample(rtt)
	}
	if i < 0 { // a duplicate ACK, or one for an id already done
		return
	}
	a.segs = append(a.segs[:i], a.segs[i+1:]...)
	a.kb = min(seedMaxKB, a.kb+seedGrow)
	a.lastAck = m.at
}

func (a *seedSender) rto(sg *seedSeg) time.Duration {
	r := min(max(2*a.s.rto(), seedMinRTO), seedMaxRTO)
	if a.nextOff >= a.s.size { // the last segments: their answer may be an ACK-ALL, keep probing
		r = min(r, finalProbe)
	}
	return r
}

func (a *seedSender) resend(sg *seedSeg, now time.Time) {
	a.tx++
	sg.tx, sg.sentAt = a.tx, now
	a.s.stats.Retransmits++
	a.s.sendData(sg.id, sg.off, sg.n, sg.tx)
}

func (a *seedSender) step(now time.Time) time.Time {
	if len(a.segs) > 0 && now.Sub(a.lastAck) > seedPause {
		a.kb = seedMinKB // slow start after a pause
	}
	wake := now.Add(seedMaxRTO)
	for i := range a.segs {
		sg := &a.segs[i]
		if now.Sub(sg.sentAt) >= a.rto(sg) { // silence
			a.shrink()
			a.resend(sg, now)
		}
		if t := sg.sentAt.Add(a.rto(sg)); t.Before(wake) {
			wake = t
		}
	}
	for len(a.segs) < seedWindow && a.nextOff < a.s.size && a.s.fail == nil {
		n := int(min(int64(a.kb*1000), a.s.size-a.nextOff))
		a.tx++
		sg := seedSeg{id: a.nextID, off: a.nextOff, n: n, sentAt: now, tx: a.tx}
		a.nextID++
		a.nextOff += int64(n)
		a.segs = append(a.segs, sg)
		a.last = sg
		a.s.sendData(sg.id, sg.off, sg.n, sg.tx)
		if t := now.Add(a.rto(&sg)); t.Before(wake) {
			wake = t
		}
	}
	if len(a.segs) == 0 && a.nextOff >= a.s.size { // all ACKed: the ACK-ALL is missing
		if now.After(a.probeAt) {
			a.probeAt = now.Add(min(max(a.s.rto(), seedMinRTO), finalProbe))
			if a.s.size == 0 {
				a.s.sendSYNACK()
			} else {
				a.tx++
				a.s.sendData(a.last.id, a.last.off, a.last.n, a.tx)
			}
		}
		return a.probeAt
	}
	return wake
}
