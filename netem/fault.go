package netem

import (
	"strings"

	"github.com/labctl/labctl/topo"
)

// Fault is a scripted fault on one link of the userspace backend (see
// topo.Fault: lab files carry them under a link's faults).
type Fault = topo.Fault

// FaultMatch selects the packets a Fault counts.
type FaultMatch = topo.FaultMatch

// Fault actions.
const (
	FaultDrop      = topo.FaultDrop
	FaultDuplicate = topo.FaultDuplicate
	FaultDelay     = topo.FaultDelay
	FaultCorrupt   = topo.FaultCorrupt
	FaultDown      = topo.FaultDown
)

// matches reports whether a packet matches, given the direction it travels.
func faultMatches(m FaultMatch, l *Link, d Dir, pi pktInfo, frameLen int) bool {
	if m.From != "" {
		from := l.A.Node
		if d == BtoA {
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
