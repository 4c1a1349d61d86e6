package topo

import (
	"errors"
	"fmt"
	"strings"
)

// Fault is a scripted fault on one link of the userspace backend: an action
// on the Nth packet that matches, or the link going down for a while. In a
// lab file it sits under a link:
//
//	faults:
//	  - {nth: 3, match: {proto: udp, port: 9000, from: client}, action: drop}
//	  - {nth: 5, match: {proto: tcp, port: 8080, from: server, data: true}, action: corrupt, byte: 0}
//	  - {nth: 1, match: {proto: udp, from: client}, action: delay, delay: 300ms}
//	  - {action: down, after: 2s, for: 1500ms}
//
// Packet faults fire once. The count starts when the fault is added (for
// lab-file faults: when the engine starts) and counts wire packets (a TCP
// super-frame counts as the packets it stands for). A fault with no `from`
// counts the matching packets of both directions together.
type Fault struct {
	// Action is drop, duplicate, delay, corrupt or down.
	Action string     `yaml:"action" json:"action"`
	Nth    int        `yaml:"nth,omitempty" json:"nth,omitempty"`
	Match  FaultMatch `yaml:"match,omitempty" json:"match,omitempty"`
	// Delay is the extra delay of action delay, on top of the link's.
	Delay Duration `yaml:"delay,omitempty" json:"delay,omitempty"`
	// Byte is, for action corrupt, the offset in the L4 payload (modulo
	// its length) of the byte whose bits are all flipped; the checksums are
	// then fixed, so the application receives the damaged data.
	Byte int `yaml:"byte,omitempty" json:"byte,omitempty"`
	// After and For time action down: it starts After from when the fault
	// is added and lasts For (zero: until `labctl fault LAB LINK up`).
	After Duration `yaml:"after,omitempty" json:"after,omitempty"`
	For   Duration `yaml:"for,omitempty" json:"for,omitempty"`
}

// FaultMatch selects packets; zero fields match anything.
type FaultMatch struct {
	Proto string `yaml:"proto,omitempty" json:"proto,omitempty"` // tcp, udp, icmp
	Port  uint16 `yaml:"port,omitempty" json:"port,omitempty"`   // source or destination
	From  string `yaml:"from,omitempty" json:"from,omitempty"`   // the sending node
	// Data matches only packets that carry L4 payload (not TCP's bare ACKs,
	// SYNs or FINs), so "the 3rd data segment" means what it says.
	Data bool `yaml:"data,omitempty" json:"data,omitempty"`
}

// Fault actions.
const (
	FaultDrop      = "drop"
	FaultDuplicate = "duplicate"
	FaultDelay     = "delay"
	FaultCorrupt   = "corrupt"
	FaultDown      = "down"
)

// Validate checks a fault against the link it is for, which joins nodes a
// and b.
func (f Fault) Validate(link, a, b string) error {
	var errs []error
	switch f.Action {
	case FaultDrop, FaultDuplicate, FaultDelay, FaultCorrupt:
		if f.Nth < 1 {
			errs = append(errs, fmt.Errorf("%s needs nth >= 1", f.Action))
		}
		if f.Action == FaultDelay && f.Delay <= 0 {
			errs = append(errs, errors.New("delay needs a delay"))
		}
		if f.Byte < 0 {
			errs = append(errs, errors.New("byte must not be negative"))
		}
	case FaultDown:
		if f.Nth != 0 || f.Match != (FaultMatch{}) {
			errs = append(errs, errors.New("down takes after and for, not nth or match"))
		}
	default:
		errs = append(errs, fmt.Errorf("action %q: want drop, duplicate, delay, corrupt or down", f.Action))
	}
	switch strings.ToLower(f.Match.Proto) {
	case "", "tcp", "udp", "icmp":
	default:
		errs = append(errs, fmt.Errorf("match proto %q: want tcp, udp or icmp", f.Match.Proto))
	}
	if f.Match.From != "" && f.Match.From != a && f.Match.From != b {
		errs = append(errs, fmt.Errorf("match from %q: link %q joins %q and %q", f.Match.From, link, a, b))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("link %q: fault: %w", link, err)
	}
	return nil
}

func (f Fault) String() string {
	if f.Action == FaultDown {
		s := "down"
		if f.After > 0 {
			s += " after " + f.After.String()
		}
		if f.For > 0 {
			s += " for " + f.For.String()
		}
		return s
	}
	var m []string
	if f.Match.Proto != "" {
		m = append(m, f.Match.Proto)
	}
	if f.Match.Port != 0 {
		m = append(m, fmt.Sprintf("port %d", f.Match.Port))
	}
	if f.Match.From != "" {
		m = append(m, "from "+f.Match.From)
	}
	if f.Match.Data {
		m = append(m, "with data")
	}
	what := "packet"
	if len(m) > 0 {
		what += " (" + strings.Join(m, " ") + ")"
	}
	s := fmt.Sprintf("%s %s #%d", f.Action, what, f.Nth)
	switch f.Action {
	case FaultDelay:
		s += " by " + f.Delay.String()
	case FaultCorrupt:
		s += fmt.Sprintf(" at payload byte %d", f.Byte)
	}
	return s
}
