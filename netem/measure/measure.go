package measure

// Measurement of a live link, backend-agnostic: UDP probes between the two
// ends of a link (one-way delay each way, RTT, loss, duplicates, reordering,
// corruption that reaches the application) and a bounded TCP bulk transfer
// for the rate. Both ends' sockets live in this one process, so one
// monotonic clock times both ends and one-way delay is measured directly.
//
// Predictions and tolerances (what `labctl verify` prints as PASS/FAIL):
//
//   - one-way delay: the median probe delay is delay + the probe frame's
//     serialisation at the rate (frame = payload+42 bytes), within
//     2 ms + 5% of the delay + 25% of the jitter. With uniform or normal
//     jitter the median stays at delay.
//   - RTT: the sum of both directions' one-way predictions, within the sum
//     of their tolerances.
//   - loss: 1-(1-loss)(1-corrupt) (a corrupted packet with a UDP checksum
//     is dropped by the receiving kernel: it looks like loss), or for
//     Gilbert–Elliott the stationary loss (r·(1-h)... see geLoss), within
//     4 binomial standard deviations (scaled by 1/(1-correlation)) + 0.5
//     percentage points.
//   - duplicate: duplicates per distinct probe received, same tolerance.
//   - reorder: the share of probes that arrive before an earlier one. netem
//     sends a packet at once (overtaking the delayed ones) with probability
//     P after every gap-1 delayed packets, so the share is
//     P/(P·(gap-1)+1) (P with no gap); informational when there is jitter,
//     which reorders too.
//   - rate: TCP goodput over the transfer after a warm-up is
//     rate × (MTU-52)/(MTU+14) (1448 payload bytes per 1514-byte frame),
//     within 10%; informational when the direction also loses, duplicates
//     or corrupts packets (TCP then cannot fill the link).

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/labctl/labctl/netem"
)

// Point is one end of a measurement: a named namespace and an address in it.
type Point struct {
	NS   string     `json:"netns"`
	Addr netip.Addr `json:"addr"`
}

// ProbeOptions bound a probe run.
type ProbeOptions struct {
	Count    int           // probes sent A→B (each echoed B→A); default 1000
	Interval time.Duration // between probes; default 1ms
	Size     int           // UDP payload bytes, at least 40; default 64
	// Drain is how long to keep listening after the last probe, per
	// direction (the worst one-way delay you expect plus a margin);
	// default 500ms.
	Drain time.Duration
	// Slack widens every delay tolerance of Judge: for slow, loaded or
	// emulated machines, whose timers and schedulers add delay of their own.
	Slack time.Duration
	// NoChecksum sends with SO_NO_CHECK (IPv4 UDP with no checksum), so
	// corruption reaches the application (counted as Corrupted).
	NoChecksum bool
}

func (o ProbeOptions) withDefaults() ProbeOptions {
	if o.Count <= 0 {
		o.Count = 1000
	}
	if o.Interval <= 0 {
		o.Interval = time.Millisecond
	}
	if o.Size < probeHeader {
		o.Size = max(64, probeHeader)
	}
	if o.Drain <= 0 {
		o.Drain = 500 * time.Millisecond
	}
	return o
}

// Summary is a distribution of durations.
type Summary struct {
	N      int           `json:"n"`
	Min    time.Duration `json:"min"`
	Median time.Duration `json:"median"`
	Mean   time.Duration `json:"mean"`
	Max    time.Duration `json:"max"`
}

func summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Summary{N: len(s), Min: s[0], Median: med, Mean: sum / time.Duration(len(s)), Max: s[len(s)-1]}
}

// DirResult is what one direction did to its probes.
type DirResult struct {
	Sent       int     `json:"sent"`
	Received   int     `json:"received"`   // distinct, intact probes
	Duplicates int     `json:"duplicates"` // extra copies of intact probes
	Reordered  int     `json:"reordered"`  // probes that arrived before an earlier one
	Corrupted  int     `json:"corrupted"`  // probes that arrived with a damaged payload
	OneWay     Summary `json:"one_way"`
}

// Loss is the share of probes that never arrived intact (0 to 1).
func (r DirResult) Loss() float64 {
	if r.Sent == 0 {
		return 0
	}
	return 1 - float64(r.Received)/float64(r.Sent)
}

// DupRate is duplicates per distinct probe received.
func (r DirResult) DupRate() float64 {
	if r.Received == 0 {
		return 0
	}
	return float64(r.Duplicates) / float64(r.Received)
}

// ReorderRate is the share of received probes that overtook an earlier one.
func (r DirResult) ReorderRate() float64 {
	if r.Received == 0 {
		return 0
	}
	return float64(r.Reordered) / float64(r.Received)
}

// ProbeResult is one probe run over a link: A sends, B echoes.
type ProbeResult struct {
	AtoB DirResult `json:"a_to_b"`
	BtoA DirResult `json:"b_to_a"`
	RTT  Summary   `json:"rtt"`
}

// arrival is one intact probe as the receiver saw it.
type arrival struct {
	seq uint32
	owd time.Duration
}

// analyze turns a receiver's arrivals, in arrival order, into a DirResult.
func analyze(sent int, arr []arrival, corrupted int) DirResult {
	r := DirResult{Sent: sent, Corrupted: corrupted}
	seen := make(map[uint32]bool, len(arr))
	var first []uint32
	var owd []time.Duration
	for _, a := range arr {
		if seen[a.seq] {
			r.Duplicates++
			continue
		}
		seen[a.seq] = true
		first = append(first, a.seq)
		owd = append(owd, a.owd)
	}
	r.Received = len(first)
	// A probe is early when a probe sent before it arrives after it.
	minAfter := uint32(math.MaxUint32)
	for i := len(first) - 1; i >= 0; i-- {
		if minAfter < first[i] {
			r.Reordered++
		}
		minAfter = min(minAfter, first[i])
	}
	r.OneWay = summarize(owd)
	return r
}

// The probe's wire format (big-endian):
//
//	0  magic "LABN"     4  kind (1 probe, 2 echo), 3 bytes pad
//	8  seq              12 seq of the probe an echo answers
//	16 this packet's send time, ns since the run began
//	24 the answered probe's send time (echo only)
//	32 CRC-32 of everything else    36.. a pattern derived from seq
const (
	probeMagic  = 0x4c41424e
	probeHeader = 40
	kindProbe   = 1
	kindEcho    = 2
)

type probeMsg struct {
	kind      byte
	seq, orig uint32
	sent      time.Duration
	origSent  time.Duration
}

func (m probeMsg) encode(b []byte) {
	clear(b)
	binary.BigEndian.PutUint32(b[0:], probeMagic)
	b[4] = m.kind
	binary.BigEndian.PutUint32(b[8:], m.seq)
	binary.BigEndian.PutUint32(b[12:], m.orig)
	binary.BigEndian.PutUint64(b[16:], uint64(m.sent))
	binary.BigEndian.PutUint64(b[24:], uint64(m.origSent))
	for i := 36; i < len(b); i++ {
		b[i] = byte(m.seq) + byte(i)*31
	}
	binary.BigEndian.PutUint32(b[32:], probeCRC(b))
}

func probeCRC(b []byte) uint32 {
	h := crc32.NewIEEE()
	h.Write(b[:32])
	h.Write(b[36:])
	return h.Sum32()
}

// decodeProbe reads a probe; ok is false when it was damaged on the way.
func decodeProbe(b []byte) (m probeMsg, ok bool) {
	if len(b) < probeHeader || binary.BigEndian.Uint32(b[0:]) != probeMagic || binary.BigEndian.Uint32(b[32:]) != probeCRC(b) {
		return m, false
	}
	m.kind = b[4]
	m.seq = binary.BigEndian.Uint32(b[8:])
	m.orig = binary.BigEndian.Uint32(b[12:])
	m.sent = time.Duration(binary.BigEndian.Uint64(b[16:]))
	m.origSent = time.Duration(binary.BigEndian.Uint64(b[24:]))
	return m, true
}

// GoodputResult is one bounded TCP bulk transfer.
type GoodputResult struct {
	Bytes    int64         `json:"bytes"`  // counted in the window
	Window   time.Duration `json:"window"` // after the warm-up
	BitsPerS float64       `json:"bits_per_s"`
}

// Verdicts of a Check.
const (
	Pass = "PASS"
	Fail = "FAIL"
	Info = "INFO"
)

// Check is one line of `labctl verify`: a parameter of one direction of a
// link, configured against measured.
type Check struct {
	Link       string  `json:"link"`
	Dir        string  `json:"dir"` // "a->b", "b->a" or "rtt"
	Param      string  `json:"param"`
	Configured string  `json:"configured"`
	Predicted  float64 `json:"predicted"` // in Unit
	Measured   float64 `json:"measured"`
	Tolerance  float64 `json:"tolerance"`
	Unit       string  `json:"unit"` // "ms", "%", "Mbit/s"
	Verdict    string  `json:"verdict"`
}

func (c Check) String() string {
	return fmt.Sprintf("%-8s %-5s %-10s %-28s predicted %9.3f%s measured %9.3f%s ±%.3f %s",
		c.Link, c.Dir, c.Param, c.Configured, c.Predicted, c.Unit, c.Measured, c.Unit, c.Tolerance, c.Verdict)
}

func judge(c Check, info bool) Check {
	switch {
	case info:
		c.Verdict = Info
	case math.Abs(c.Measured-c.Predicted) <= c.Tolerance:
		c.Verdict = Pass
	default:
		c.Verdict = Fail
	}
	return c
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// serialization is the time a frame of the probe's size takes at the rate.
func serialization(s netem.Spec, payload int) time.Duration {
	if s.Rate == 0 {
		return 0
	}
	frame := float64(payload + 8 + 20 + 14)
	return time.Duration(frame * 8 / float64(s.Rate) * float64(time.Second))
}

// PredictOneWay is the documented median one-way delay of a probe of
// payload bytes in a direction with Spec s, and its tolerance.
func PredictOneWay(s netem.Spec, payload int) (pred, tol time.Duration) {
	pred = s.Delay.D() + serialization(s, payload)
	tol = 2*time.Millisecond + s.Delay.D()/20 + s.Jitter.D()/4
	return pred, tol
}

// PredictLoss is the share of probes that a direction with Spec s loses
// (corruption counts: the receiving kernel drops a damaged packet).
func PredictLoss(s netem.Spec) float64 {
	l := s.Loss.Fraction()
	if g := s.LossGE; g != nil {
		l = geLoss(g.P.Fraction(), g.R.Fraction(), g.LossBad.Fraction(), g.LossGood.Fraction())
	}
	return 1 - (1-l)*(1-s.Corrupt.Fraction())
}

// geLoss is the stationary loss of the Gilbert–Elliott chain: the bad state
// holds p/(p+r) of the time.
func geLoss(p, r, lossBad, lossGood float64) float64 {
	if lossBad == 0 {
		lossBad = 1
	}
	if p+r == 0 {
		return lossGood
	}
	bad := p / (p + r)
	return bad*lossBad + (1-bad)*lossGood
}

// PredictReorder is the share of probes that overtake an earlier one.
func PredictReorder(s netem.Spec) float64 {
	p := s.Reorder.Fraction()
	if p == 0 {
		return 0
	}
	gap := float64(max(s.Gap, 1))
	return p / (p*(gap-1) + 1)
}

// PredictGoodput is a saturating TCP flow's goodput at the rate, bits/s.
func PredictGoodput(s netem.Spec, mtu int) float64 {
	if mtu == 0 {
		mtu = 1500
	}
	return float64(s.Rate) * float64(mtu-52) / float64(mtu+14)
}

// binomialTol is the tolerance for a measured share p over n trials.
func binomialTol(p float64, n int, corr float64) float64 {
	if n == 0 {
		return 1
	}
	sd := math.Sqrt(math.Max(p*(1-p), 1e-4) / float64(n))
	return 4*sd/math.Max(1-corr, 0.05) + 0.005
}

// Judge compares one probe run (and the goodput runs, by direction; nil
// where none ran) with the Specs of a link and returns the verdict lines.
func Judge(l netem.Link, r ProbeResult, good map[netem.Dir]*GoodputResult, o ProbeOptions) []Check {
	o = o.withDefaults()
	var out []Check
	var rttPred, rttTol time.Duration
	for _, d := range []netem.Dir{netem.AtoB, netem.BtoA} {
		s := l.Spec(d)
		dr := r.AtoB
		if d == netem.BtoA {
			dr = r.BtoA
		}
		pred, tol := PredictOneWay(s, o.Size)
		tol += o.Slack
		rttPred += pred
		rttTol += tol
		cfg := func(v string) string { return v }
		out = append(out, judge(Check{Link: l.ID, Dir: d.String(), Param: "delay", Configured: cfg(delayText(s)),
			Predicted: ms(pred), Measured: ms(dr.OneWay.Median), Tolerance: ms(tol), Unit: "ms"}, dr.OneWay.N == 0))
		pl := PredictLoss(s)
		out = append(out, judge(Check{Link: l.ID, Dir: d.String(), Param: "loss", Configured: lossText(s),
			Predicted: 100 * pl, Measured: 100 * dr.Loss(), Tolerance: 100 * binomialTol(pl, dr.Sent, s.LossCorrelation.Fraction()), Unit: "%"}, false))
		if s.Duplicate > 0 || dr.Duplicates > 0 {
			pd := s.Duplicate.Fraction()
			out = append(out, judge(Check{Link: l.ID, Dir: d.String(), Param: "duplicate", Configured: s.Duplicate.String(),
				Predicted: 100 * pd, Measured: 100 * dr.DupRate(), Tolerance: 100 * binomialTol(pd, dr.Received, s.DuplicateCorrelation.Fraction()), Unit: "%"}, false))
		}
		if s.Reorder > 0 || (dr.Reordered > 0 && s.Jitter == 0) {
			pr := PredictReorder(s)
			// Reordering needs a delayed probe in flight to overtake, and
			// jitter reorders on its own: then the line is informational.
			info := s.Jitter > 0 || s.Delay.D() < 3*o.Interval
			out = append(out, judge(Check{Link: l.ID, Dir: d.String(), Param: "reorder", Configured: reorderText(s),
				Predicted: 100 * pr, Measured: 100 * dr.ReorderRate(), Tolerance: 100 * binomialTol(pr, dr.Received, s.ReorderCorrelation.Fraction()), Unit: "%"}, info))
		}
		if s.Corrupt > 0 || dr.Corrupted > 0 {
			// With checksums a damaged probe is dropped (counted in loss);
			// this line shows what reached the application.
			out = append(out, judge(Check{Link: l.ID, Dir: d.String(), Param: "corrupt", Configured: s.Corrupt.String(),
				Measured: 100 * float64(dr.Corrupted) / float64(max(dr.Sent, 1)), Unit: "%"}, true))
		}
		if g := good[d]; g != nil {
			pg := PredictGoodput(s, l.MTU)
			info := s.Rate == 0 || s.Loss > 0 || s.LossGE != nil || s.Duplicate > 0 || s.Corrupt > 0
			out = append(out, judge(Check{Link: l.ID, Dir: d.String(), Param: "rate", Configured: s.Rate.String(),
				Predicted: pg / 1e6, Measured: g.BitsPerS / 1e6, Tolerance: pg / 1e6 / 10, Unit: "Mbit/s"}, info))
		}
	}
	out = append(out, judge(Check{Link: l.ID, Dir: "rtt", Param: "rtt", Configured: "sum of both delays",
		Predicted: ms(rttPred), Measured: ms(r.RTT.Median), Tolerance: ms(rttTol), Unit: "ms"}, r.RTT.N == 0))
	return out
}

func delayText(s netem.Spec) string {
	if s.Delay == 0 {
		return "none"
	}
	t := s.Delay.String()
	if s.Jitter > 0 {
		t += " ±" + s.Jitter.String()
	}
	if s.Rate > 0 {
		t += " @" + s.Rate.String()
	}
	return t
}

func lossText(s netem.Spec) string {
	t := s.Loss.String()
	if s.LossGE != nil {
		t = fmt.Sprintf("gemodel p=%s r=%s", s.LossGE.P, s.LossGE.R)
	}
	if s.Corrupt > 0 {
		t += " +corrupt " + s.Corrupt.String()
	}
	return t
}

func reorderText(s netem.Spec) string {
	t := s.Reorder.String()
	if s.Gap > 0 {
		t += fmt.Sprintf(" gap %d", s.Gap)
	}
	if s.Jitter > 0 {
		t += " (+jitter)"
	}
	return t
}

// PlanProbes picks probe options for a link: one probe every 2 ms (gentle
// enough for a slow or emulated machine to timestamp each one promptly),
// slower if needed to stay under a tenth of the slowest rate, and the run
// under maxRun: the count shrinks before the load grows.
func PlanProbes(l netem.Link, count int, maxRun time.Duration) ProbeOptions {
	o := ProbeOptions{Count: count, Interval: 2 * time.Millisecond}.withDefaults()
	frameBits := float64(o.Size+42) * 8
	var worst time.Duration
	for _, d := range []netem.Dir{netem.AtoB, netem.BtoA} {
		s := l.Spec(d)
		if s.Rate > 0 {
			iv := time.Duration(frameBits / (0.1 * float64(s.Rate)) * float64(time.Second))
			o.Interval = max(o.Interval, iv)
		}
		worst = max(worst, s.Delay.D()+2*s.Jitter.D()+serialization(s, o.Size))
	}
	if n := int(maxRun / o.Interval); n < o.Count {
		o.Count = max(n, 50)
	}
	o.Drain = worst + 300*time.Millisecond
	return o
}
