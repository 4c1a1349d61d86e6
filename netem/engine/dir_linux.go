package engine

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labctl/labctl/netem"
	"golang.org/x/sys/unix"
)

// One direction of a link: what the engine does to the frames one end sends.
//
// Order of decisions per wire packet, as tc-netem: duplicate, loss (a lost
// packet that was also duplicated leaves one copy), corrupt (the original;
// the duplicate stays clean), then the delay (with jitter), or none if
// reorder picks the packet to be sent at once. Then the rate: packets are
// serialised one after the other at Rate, and then delayed: due = end of
// serialisation + delay.
//
// The limit counts, as netem's does, every packet the direction holds (in
// the delay line or waiting for the rate); a packet that would pass it is
// dropped (tail drop, counted as a queue drop). It is netem.QueueLimit,
// the rule both backends share. Every direction also holds at most
// maxQueueBytes of packets; beyond that it drops, counted the same way.

const (
	bigBuf        = vnetHdrLen + 65536 + 64
	smallBuf      = 2048
	maxQueueBytes = 128 << 20
	writeBatch    = 64
	// The writer spins (rather than sleeps) this close to a due time:
	// twice the measured wake-up latency, within these bounds.
	minSpin = int64(20 * time.Microsecond)
	maxSpin = int64(300 * time.Microsecond)
)

var (
	bigPool   = sync.Pool{New: func() any { b := make([]byte, bigBuf); return &b }}
	smallPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
)

func getBuf(n int) *[]byte {
	if n <= smallBuf {
		return smallPool.Get().(*[]byte)
	}
	return bigPool.Get().(*[]byte)
}

func putBuf(b *[]byte) {
	if cap(*b) >= bigBuf {
		bigPool.Put(b)
	} else {
		smallPool.Put(b)
	}
}

// dirConfig is a Spec turned into what the hot path needs; it is replaced
// whole (atomically) by Set.
type dirConfig struct {
	spec      netem.Spec
	clean     bool
	delay     int64
	jitter    time.Duration
	nsPerByte float64
	limit     int

	loss, lossCorr, dup, dupCorr, corrupt, corruptCorr float64
	reorder, reorderCorr, delayCorr                    float64
	gap                                                uint32
	ge                                                 *GilbertElliottParams
	fix                                                bool
}

func newDirConfig(s netem.Spec) (*dirConfig, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	c := &dirConfig{
		spec: s, clean: s.IsZero(),
		delay: int64(s.Delay), jitter: s.Jitter.D(), limit: netem.QueueLimit(s),
		loss: s.Loss.Fraction(), lossCorr: s.LossCorrelation.Fraction(),
		dup: s.Duplicate.Fraction(), dupCorr: s.DuplicateCorrelation.Fraction(),
		corrupt: s.Corrupt.Fraction(), corruptCorr: s.CorruptCorrelation.Fraction(),
		reorder: s.Reorder.Fraction(), reorderCorr: s.ReorderCorrelation.Fraction(),
		delayCorr: s.DelayCorrelation.Fraction(), gap: s.Gap, fix: s.CorruptFixChecksum,
	}
	if s.Rate > 0 {
		c.nsPerByte = 8e9 / float64(s.Rate)
	}
	if c.reorder > 0 && c.gap == 0 {
		c.gap = 1 // as tc does
	}
	if g := s.LossGE; g != nil {
		c.ge = &GilbertElliottParams{p: g.P.Fraction(), r: g.R.Fraction(), lossBad: g.LossBad.Fraction(), lossGood: g.LossGood.Fraction()}
		if g.LossBad == 0 {
			c.ge.lossBad = 1
		}
	}
	return c, nil
}

// fate is what happens to one wire packet.
type fate struct {
	drop, dup, corrupt, fix bool
	now                     bool   // reordered: sent without the delay
	corruptByte             int    // payload offset for a scripted corruption, -1 for a random bit
	bit                     uint64 // which bit a random corruption flips (modulo the bits there are)
	delay                   int64  // ns
}

func (f fate) plain() bool { return !f.drop && !f.dup && !f.corrupt }

type direction struct {
	e        *Engine
	ln       *engLink
	d        netem.Dir
	src, dst int
	cfg      atomic.Pointer[dirConfig]
	q        delayQueue
	st       dirStats

	// Owned by the reader goroutine.
	flows  *flowTable
	txFree int64 // when the rate's serialisation of what was taken ends
	fates  []fate
	rbuf   *[]byte
}

func newDirection(e *Engine, el *engLink, d netem.Dir, src, dst int) (*direction, error) {
	dr := &direction{e: e, ln: el, d: d, src: src, dst: dst, flows: newFlowTable(e.cfg.Seed, el.l.ID, d)}
	var err error
	if dr.q.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return dr, nil
}

func (d *direction) set(s netem.Spec) error {
	c, err := newDirConfig(s)
	if err != nil {
		return err
	}
	d.cfg.Store(c)
	return nil
}

// readLoop takes frames from the sending TAP until the engine stops.
func (d *direction) readLoop() {
	d.rbuf = bigPool.Get().(*[]byte)
	fds := []unix.PollFd{{Fd: int32(d.src), Events: unix.POLLIN}, {Fd: int32(d.e.stopfd), Events: unix.POLLIN}}
	for {
		buf := *d.rbuf
		n, err := unix.Read(d.src, buf)
		switch {
		case err == nil:
		case errors.Is(err, unix.EAGAIN):
			if _, err := unix.Ppoll(fds, nil, nil); err != nil && !errors.Is(err, unix.EINTR) {
				d.e.log.Error("poll tap", "link", d.ln.l.ID, "dir", d.d.String(), "err", err)
				return
			}
			if fds[1].Revents != 0 {
				return
			}
			continue
		case errors.Is(err, unix.EINTR):
			continue
		default:
			d.e.log.Error("read tap", "link", d.ln.l.ID, "dir", d.d.String(), "err", err)
			return
		}
		if n <= vnetHdrLen {
			continue
		}
		c := d.cfg.Load()
		if c.clean && d.ln.busy.Load() == 0 && d.q.n.Load() == 0 {
			segs, hdrs := segments(parseVnet(buf), buf[vnetHdrLen:n])
			d.st.frames.Add(1)
			d.st.packets.Add(uint64(segs))
			d.st.bytes.Add(uint64(n - vnetHdrLen + (segs-1)*hdrs))
			d.write(buf[:n], segs)
			continue
		}
		d.handle(buf[:n], c)
	}
}

// handle applies faults and the Spec to one frame.
func (d *direction) handle(frame []byte, c *dirConfig) {
	now := nowNs()
	h := parseVnet(frame)
	p := frame[vnetHdrLen:]
	n, hdrs := segments(h, p)
	d.st.frames.Add(1)
	d.st.packets.Add(uint64(n))
	d.st.bytes.Add(uint64(len(p) + (n-1)*hdrs))
	d.ln.capture(pointSent, d.d, p)
	if d.ln.down.Load() {
		d.st.downDrops.Add(uint64(n))
		return
	}
	d.fates = d.fates[:0]
	fl := d.flows.get(p)
	for range n {
		d.fates = append(d.fates, decide(c, fl))
	}
	if d.ln.busy.Load() > 0 {
		d.ln.applyFaults(d.e, d.d, p, n, d.fates)
	}
	for i := 0; i < n; {
		f := d.fates[i]
		if f.plain() {
			j := i + 1
			for j < n && d.fates[j].plain() && d.fates[j].delay == f.delay {
				j++
			}
			if f.now {
				d.st.reordered.Add(uint64(j - i))
			}
			if i == 0 && j == n {
				d.emitFrame(frame, n, hdrs, f.delay, now, c)
			} else {
				b := getBuf(bigBuf)
				out := buildRun(*b, h, p, hdrs, i, j, n)
				d.emit(b, len(out), j-i, hdrs, f.delay, now, c)
			}
			i = j
			continue
		}
		d.odd(frame, h, hdrs, i, n, f, now, c)
		i++
	}
}

// odd handles a packet that is dropped, duplicated or corrupted.
func (d *direction) odd(frame []byte, h vnetHdr, hdrs, i, n int, f fate, now int64, c *dirConfig) {
	copies := 1
	if f.dup {
		copies++
		d.st.duplicated.Add(1)
	}
	if f.drop {
		copies--
		d.st.lost.Add(1)
	}
	if copies == 0 {
		return
	}
	seg := func() (*[]byte, int) {
		b := getBuf(bigBuf)
		if n == 1 {
			return b, copy(*b, frame)
		}
		return b, len(buildRun(*b, h, frame[vnetHdrLen:], hdrs, i, i+1, n))
	}
	if f.now {
		d.st.reordered.Add(1)
	}
	if copies == 2 {
		b, l := seg()
		d.emit(b, l, 1, hdrs, f.delay, now, c)
	}
	b, l := seg()
	if f.corrupt {
		d.st.corrupted.Add(1)
		corrupt((*b)[:l], f)
	}
	d.emit(b, l, 1, hdrs, f.delay, now, c)
}

// corrupt damages one packet. A random corruption flips one bit anywhere in
// the frame, as tc-netem, after the checksum is finished, so the receiving
// kernel drops it; with fix (CorruptFixChecksum) the bit is flipped in the
// L4 payload and the checksums are recomputed, so the application receives
// it (a packet with no payload is corrupted as without fix). A scripted
// corruption flips all bits of payload byte K (modulo the payload length)
// and fixes the checksums.
func corrupt(frame []byte, f fate) {
	finishChecksum(frame)
	q := frame[vnetHdrLen:]
	pi := parsePkt(q)
	hasPay := pi.payload > 0 && pi.payload < pi.end
	switch {
	case f.corruptByte >= 0 && hasPay:
		q[pi.payload+f.corruptByte%(pi.end-pi.payload)] ^= 0xff
		fixChecksums(q)
	case f.fix && hasPay:
		bit := int(f.bit % uint64((pi.end-pi.payload)*8))
		q[pi.payload+bit/8] ^= 1 << (bit % 8)
		fixChecksums(q)
	default:
		bit := int(f.bit % uint64(len(q)*8))
		q[bit/8] ^= 1 << (bit % 8)
	}
}

// decide draws the fate of the flow's next wire packet (see fate.go).
func decide(c *dirConfig, fl *flow) fate {
	f := fate{corruptByte: -1, delay: c.delay}
	if c.dup > 0 && fl.dupC.next(fl.draw(streamDup, 0), c.dupCorr) < c.dup {
		f.dup = true
	}
	if c.ge != nil {
		f.drop = fl.ge.lose(fl.draw(streamLoss, 0), fl.draw(streamLoss, 1), c.ge)
	} else if c.loss > 0 {
		f.drop = fl.lossC.next(fl.draw(streamLoss, 0), c.lossCorr) < c.loss
	}
	if c.corrupt > 0 && fl.corC.next(fl.draw(streamCorrupt, 0), c.corruptCorr) < c.corrupt {
		f.corrupt, f.fix, f.bit = true, c.fix, fl.bits(streamCorrupt, 1)
	}
	if c.jitter > 0 {
		u := fl.jtC.next(fl.draw(streamJitter, 0), c.delayCorr)
		u2 := 0.5
		if c.spec.Distribution == "paretonormal" {
			u2 = fl.draw(streamJitter, 1)
		}
		f.delay = max(0, f.delay+int64(jitterOffset(c.spec.Distribution, u, u2, c.jitter)))
	}
	if c.gap > 0 {
		if fl.reorderCount < c.gap-1 || fl.reoC.next(fl.draw(streamReorder, 0), c.reorderCorr) >= c.reorder {
			fl.reorderCount++
		} else {
			fl.reorderCount = 0
			f.now, f.delay = true, 0
		}
	}
	fl.n++
	return f
}

// emitFrame sends the read frame whole; it is copied (or its buffer handed
// over) only if it has to wait.
func (d *direction) emitFrame(frame []byte, segs, hdrs int, delay, now int64, c *dirConfig) {
	if delay <= 0 && c.nsPerByte == 0 && d.q.n.Load() == 0 {
		d.write(frame, segs)
		return
	}
	var b *[]byte
	if len(frame) > smallBuf {
		b, d.rbuf = d.rbuf, bigPool.Get().(*[]byte)
	} else {
		b = smallPool.Get().(*[]byte)
		copy(*b, frame)
	}
	d.emit(b, len(frame), segs, hdrs, delay, now, c)
}

// emit passes a packet (owned buffer) through the rate queue and the delay
// line.
func (d *direction) emit(b *[]byte, n, segs, hdrs int, delay, now int64, c *dirConfig) {
	if room := c.limit - int(d.q.segs.Load()); segs > room {
		if room <= 0 || hdrs == 0 {
			d.st.queueDrops.Add(uint64(segs))
			putBuf(b)
			return
		}
		// A super-frame that does not fit whole: keep its first packets, as
		// a queue of single packets would, and drop the tail.
		nb := getBuf(bigBuf)
		out := buildRun(*nb, parseVnet(*b), (*b)[vnetHdrLen:n], hdrs, 0, room, segs)
		putBuf(b)
		d.st.queueDrops.Add(uint64(segs - room))
		b, n, segs = nb, len(out), room
	}
	if d.q.bytes.Load()+int64(n) > maxQueueBytes {
		d.st.queueDrops.Add(uint64(segs))
		putBuf(b)
		return
	}
	due := now + delay
	if c.nsPerByte > 0 {
		wire := n - vnetHdrLen + (segs-1)*hdrs
		d.txFree = max(now, d.txFree) + int64(float64(wire)*c.nsPerByte)
		due = d.txFree + delay
	}
	if due <= now && d.q.n.Load() == 0 {
		d.write((*b)[:n], segs)
		putBuf(b)
		return
	}
	d.q.push(unit{due: due, buf: b, n: n, segs: segs})
}

// write hands one frame to the receiving TAP.
func (d *direction) write(b []byte, segs int) {
	d.ln.capture(pointDelivered, d.d, b[vnetHdrLen:])
	for {
		_, err := unix.Write(d.dst, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			d.st.writeErrors.Add(1)
			return
		}
		d.st.delivered.Add(uint64(segs))
		return
	}
}

// writeLoop writes queued packets when they are due, on a locked thread
// with 1 ns timer slack: it sleeps until shortly before the due time (ppoll
// on an eventfd, so an earlier packet can wake it) and spins the last few
// tens of microseconds.
func (d *direction) writeLoop() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	fds := []unix.PollFd{{Fd: int32(d.q.efd), Events: unix.POLLIN}, {Fd: int32(d.e.stopfd), Events: unix.POLLIN}}
	batch := make([]unit, 0, writeBatch)
	var drain [8]byte
	// late is a moving average of how late a timed ppoll returns on this
	// machine (timer and scheduling latency); the writer spins for about
	// twice that before a due time instead of sleeping through it.
	late := minSpin
	for {
		batch, wait := d.q.popDue(batch[:0], nowNs())
		for _, u := range batch {
			d.write((*u.buf)[:u.n], u.segs)
			putBuf(u.buf)
		}
		if len(batch) > 0 {
			continue
		}
		spin := min(max(2*late, minSpin), maxSpin)
		if wait > 0 && wait <= spin {
			d.q.woke()
			for end := nowNs() + wait; nowNs() < end; {
			}
			continue
		}
		var ts *unix.Timespec
		var target int64
		if wait >= 0 {
			// Wake up early: ppoll's slack is timeout/1000 (at least the
			// thread's timer slack), and the spin covers the rest.
			wait = max(0, wait-wait/1000-spin)
			t := unix.NsecToTimespec(wait)
			ts, target = &t, nowNs()+wait
		}
		n, err := unix.Ppoll(fds, ts, nil)
		if err != nil && !errors.Is(err, unix.EINTR) {
			d.e.log.Error("poll", "link", d.ln.l.ID, "dir", d.d.String(), "err", err)
			return
		}
		if n == 0 && err == nil && ts != nil {
			late += (max(0, nowNs()-target) - late) / 8
		}
		d.q.woke()
		if fds[0].Revents != 0 {
			_, _ = unix.Read(d.q.efd, drain[:])
		}
		if fds[1].Revents != 0 {
			d.q.discard()
			return
		}
	}
}

// unit is a packet waiting in the delay line.
type unit struct {
	due  int64
	seq  uint64
	buf  *[]byte
	n    int
	segs int
}

// delayQueue is a heap ordered by due time (then arrival), so jitter and
// scripted delays may reorder and a fixed delay keeps order. The writer
// sleeps on an eventfd; a push wakes it only when it sleeps past the new
// packet's due time.
type delayQueue struct {
	mu       sync.Mutex
	h        []unit
	seq      uint64
	sleeping bool
	wakeAt   int64 // -1: sleeping until a push
	n        atomic.Int32
	segs     atomic.Int64 // wire packets held, what the limit counts
	bytes    atomic.Int64
	efd      int
}

func (q *delayQueue) less(i, j int) bool {
	if q.h[i].due != q.h[j].due {
		return q.h[i].due < q.h[j].due
	}
	return q.h[i].seq < q.h[j].seq
}

func (q *delayQueue) push(u unit) {
	q.mu.Lock()
	q.seq++
	u.seq = q.seq
	q.h = append(q.h, u)
	for i := len(q.h) - 1; i > 0; {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q.h[i], q.h[p] = q.h[p], q.h[i]
		i = p
	}
	q.n.Add(1)
	q.segs.Add(int64(u.segs))
	q.bytes.Add(int64(u.n))
	wake := q.sleeping && (q.wakeAt < 0 || u.due < q.wakeAt)
	if wake {
		q.sleeping = false
	}
	q.mu.Unlock()
	if wake {
		var one [8]byte
		one[0] = 1
		_, _ = unix.Write(q.efd, one[:])
	}
}

func (q *delayQueue) pop() unit {
	u := q.h[0]
	last := len(q.h) - 1
	q.h[0] = q.h[last]
	q.h[last] = unit{}
	q.h = q.h[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(q.h) && q.less(l, m) {
			m = l
		}
		if r < len(q.h) && q.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		q.h[i], q.h[m] = q.h[m], q.h[i]
		i = m
	}
	q.n.Add(-1)
	q.segs.Add(-int64(u.segs))
	q.bytes.Add(-int64(u.n))
	return u
}

// popDue takes the packets due by now; if none, it returns how long to wait
// (-1: until a push) and marks the writer asleep.
func (q *delayQueue) popDue(batch []unit, now int64) ([]unit, int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.h) > 0 && q.h[0].due <= now && len(batch) < cap(batch) {
		batch = append(batch, q.pop())
	}
	if len(batch) > 0 {
		return batch, 0
	}
	q.sleeping = true
	if len(q.h) == 0 {
		q.wakeAt = -1
		return batch, -1
	}
	q.wakeAt = q.h[0].due
	return batch, q.h[0].due - now
}

func (q *delayQueue) woke() {
	q.mu.Lock()
	q.sleeping = false
	q.mu.Unlock()
}

func (q *delayQueue) discard() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.h) > 0 {
		putBuf(q.pop().buf)
	}
}

func (q *delayQueue) close() {
	if q.efd > 0 {
		unix.Close(q.efd)
		q.efd = -1
	}
}
