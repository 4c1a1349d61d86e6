package engine

import (
	"fmt"
	"strings"
	"time"

	"github.com/labctl/labctl/netem"
)

// faultState is a pending packet fault and the matching packets seen so far.
type faultState struct {
	f    netem.Fault
	seen int
}

// addFault arms a fault on a link: packet faults wait for their Nth match;
// down faults are timed.
func (e *Engine) addFault(el *engLink, f netem.Fault) error {
	if err := f.Validate(el.l.ID, el.l.A.Node, el.l.B.Node); err != nil {
		return err
	}
	if f.Action != netem.FaultDown {
		el.mu.Lock()
		el.faults = append(el.faults, &faultState{f: f})
		el.mu.Unlock()
		el.busy.Add(1)
		e.log.Info("fault armed", "link", el.l.ID, "fault", f.String())
		return nil
	}
	down := func() {
		el.setDown(true)
		e.log.Info("link down", "link", el.l.ID, "for", f.For.String())
		if f.For > 0 {
			el.mu.Lock()
			el.timers = append(el.timers, time.AfterFunc(f.For.D(), func() {
				el.setDown(false)
				e.log.Info("link up", "link", el.l.ID)
			}))
			el.mu.Unlock()
		}
	}
	if f.After > 0 {
		el.mu.Lock()
		el.timers = append(el.timers, time.AfterFunc(f.After.D(), down))
		el.mu.Unlock()
		return nil
	}
	down()
	return nil
}

// applyFaults counts the n wire packets of a frame against the pending
// faults and marks the fates of those a fault fires on.
func (el *engLink) applyFaults(e *Engine, d netem.Dir, p []byte, n int, fates []fate) {
	el.mu.Lock()
	defer el.mu.Unlock()
	if len(el.faults) == 0 {
		return
	}
	pi := parsePkt(p)
	kept := el.faults[:0]
	for _, fs := range el.faults {
		if !faultMatches(fs.f.Match, &el.l, d, pi, len(p)) {
			kept = append(kept, fs)
			continue
		}
		if fs.seen+n < fs.f.Nth {
			fs.seen += n
			kept = append(kept, fs)
			continue
		}
		f := &fates[fs.f.Nth-fs.seen-1]
		switch fs.f.Action {
		case netem.FaultDrop:
			f.drop, f.dup, f.corrupt = true, false, false
		case netem.FaultDuplicate:
			f.dup, f.drop = true, false
		case netem.FaultDelay:
			f.delay += int64(fs.f.Delay)
			f.now = false
		case netem.FaultCorrupt:
			f.corrupt, f.fix, f.corruptByte = true, true, fs.f.Byte
		}
		el.busy.Add(-1)
		el.fired = append(el.fired, fmt.Sprintf("%s: %s (%s)", time.Now().Format(time.RFC3339Nano), fs.f.String(), d))
		e.log.Info("fault fired", "link", el.l.ID, "dir", d.String(), "fault", fs.f.String())
	}
	for i := len(kept); i < len(el.faults); i++ {
		el.faults[i] = nil
	}
	el.faults = kept
}

// listFaults describes the pending and the fired faults.
func (el *engLink) listFaults() (pending, fired []string) {
	el.mu.Lock()
	defer el.mu.Unlock()
	for _, fs := range el.faults {
		pending = append(pending, fmt.Sprintf("%s (seen %d)", fs.f.String(), fs.seen))
	}
	if el.down.Load() {
		pending = append(pending, "link is down")
	}
	return pending, append([]string(nil), el.fired...)
}

// clearFaults drops pending faults and timers and brings the link up.
func (el *engLink) clearFaults() {
	el.mu.Lock()
	el.busy.Add(-int32(len(el.faults)))
	el.faults = nil
	for _, t := range el.timers {
		t.Stop()
	}
	el.timers = nil
	el.mu.Unlock()
	el.setDown(false)
}

// matches reports whether a packet matches, given the direction it travels.
func faultMatches(m netem.FaultMatch, l *netem.Link, d netem.Dir, pi pktInfo, frameLen int) bool {
	if m.From != "" {
		from := l.A.Node
		if d == netem.BtoA {
			from = l.B.Node
		}
		if m.From != from {
			return false
		}
	}
	switch strings.ToLower(m.Proto) {
	case "tcp":
		if pi.proto != 6 {
			return false
		}
	case "udp":
		if pi.proto != 17 {
			return false
		}
	case "icmp":
		if pi.nh == 0 || (pi.proto != 1 && pi.proto != 58) {
			return false
		}
	}
	if m.Port != 0 && pi.sport != m.Port && pi.dport != m.Port {
		return false
	}
	if m.Data && (pi.payload == 0 || pi.payload >= min(pi.end, frameLen)) {
		return false
	}
	return true
}
