package wire

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrTooSlow ends a transfer that fell below its minimum rate.
var ErrTooSlow = errors.New("transfer below the minimum rate")

// MinRate is the trickle rule for a payload: after Grace, every Window of
// time must carry at least Rate×Window bytes. A peer sending one byte every
// few seconds fails within Window of starting to trickle, however large the
// announced size. Rate ≤ 0 turns the rule off.
type MinRate struct {
	Rate   int64         // bytes per second
	Window time.Duration // the sliding window (default DefaultRateWindow)
	Grace  time.Duration // no check before this much time has passed (default Window)
}

// DefaultRateWindow is the window of MinRate when none is given.
const DefaultRateWindow = 10 * time.Second

// rateMeter keeps a few (time, bytes so far) samples covering the last
// window: at most rateSlots+2 of them, so its memory is fixed.
type rateMeter struct {
	rule    MinRate
	need    int64 // bytes each window must carry
	start   time.Time
	total   int64
	samples []sample
}

type sample struct {
	at    time.Time
	total int64
}

// rateSlots is how finely the window is sampled: reads closer together
// than Window/rateSlots share a sample, which can make the rule more
// lenient by at most that slice of the window, never stricter.
const rateSlots = 16

func newRateMeter(rule MinRate, now time.Time) *rateMeter {
	if rule.Window <= 0 {
		rule.Window = DefaultRateWindow
	}
	if rule.Grace <= 0 {
		rule.Grace = rule.Window
	}
	need := int64(float64(rule.Rate) * rule.Window.Seconds())
	return &rateMeter{rule: rule, need: need, start: now, samples: []sample{{now, 0}}}
}

func (m *rateMeter) add(now time.Time, n int) {
	if n <= 0 {
		return
	}
	m.total += int64(n)
	last := &m.samples[len(m.samples)-1]
	if len(m.samples) > 1 && now.Sub(m.samples[len(m.samples)-2].at) < m.rule.Window/rateSlots {
		last.at, last.total = now, m.total
	} else {
		m.samples = append(m.samples, sample{now, m.total})
	}
	// Keep one sample at or before now-Window as the window's baseline.
	cut := now.Add(-m.rule.Window)
	i := 0
	for i+1 < len(m.samples) && !m.samples[i+1].at.After(cut) {
		i++
	}
	m.samples = m.samples[i:]
}

// deadline is when the rule fails if no more bytes arrive: the end of the
// window that starts at the earliest sample with fewer than need bytes
// still to come, and never before the grace period ends.
func (m *rateMeter) deadline() time.Time {
	if m.rule.Rate <= 0 {
		return time.Time{}
	}
	d := m.start.Add(m.rule.Grace)
	for _, s := range m.samples {
		if s.total > m.total-m.need {
			if w := s.at.Add(m.rule.Window); w.After(d) {
				d = w
			}
			return d
		}
	}
	return d // unreachable: the last sample holds total
}

// RateReader reads from r under a MinRate rule, enforced through d's read
// deadline; a transfer too slow ends in an error wrapping ErrTooSlow. The
// caller resets d's deadline after the transfer.
type RateReader struct {
	r     io.Reader
	d     Deadliner
	meter *rateMeter
}

// NewRateReader starts the rule's clock now.
func NewRateReader(r io.Reader, d Deadliner, rule MinRate) *RateReader {
	return &RateReader{r: r, d: d, meter: newRateMeter(rule, time.Now())}
}

func (rr *RateReader) Read(p []byte) (int, error) {
	dl := rr.meter.deadline()
	if err := rr.d.SetReadDeadline(dl); err != nil {
		return 0, err
	}
	n, err := rr.r.Read(p)
	rr.meter.add(time.Now(), n)
	if err != nil && IsTimeout(err) && !dl.IsZero() && !time.Now().Before(dl) {
		err = fmt.Errorf("%w (%d B/s over %v): %w", ErrTooSlow, rr.meter.rule.Rate, rr.meter.rule.Window, err)
	}
	return n, err
}

// WriteDeadliner is the part of a net.Conn that bounds a blocked write.
type WriteDeadliner interface {
	SetWriteDeadline(time.Time) error
}

// RateWriter is RateReader's twin for downloads: a reader that drains a
// download too slowly ends it with ErrTooSlow.
type RateWriter struct {
	w     io.Writer
	d     WriteDeadliner
	meter *rateMeter
}

// NewRateWriter starts the rule's clock now.
func NewRateWriter(w io.Writer, d WriteDeadliner, rule MinRate) *RateWriter {
	return &RateWriter{w: w, d: d, meter: newRateMeter(rule, time.Now())}
}

func (rw *RateWriter) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 { // in pieces, so each piece's deadline follows the rate
		chunk := p[:min(len(p), 32<<10)]
		dl := rw.meter.deadline()
		if err := rw.d.SetWriteDeadline(dl); err != nil {
			return total, err
		}
		n, err := rw.w.Write(chunk)
		rw.meter.add(time.Now(), n)
		total += n
		p = p[n:]
		if err != nil {
			if IsTimeout(err) && !dl.IsZero() && !time.Now().Before(dl) {
				err = fmt.Errorf("%w (%d B/s over %v): %w", ErrTooSlow, rw.meter.rule.Rate, rw.meter.rule.Window, err)
			}
			return total, err
		}
	}
	return total, nil
}
