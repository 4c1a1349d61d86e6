package netem

import "github.com/labctl/labctl/topo"

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
