package netem

import (
	"context"
	"errors"
	"fmt"

	"github.com/labctl/labctl/topo"
)

// Spec is one direction's impairment.
type Spec = topo.Impairment

// End is one end of a link: an interface inside a named network namespace.
type End struct {
	Node  string `json:"node"`
	NS    string `json:"netns"` // name under /run/netns
	Iface string `json:"iface"` // at most 15 bytes
}

// Dir names one direction of a link.
type Dir int

const (
	AtoB Dir = iota // A's egress: what A sends to B
	BtoA            // B's egress
)

func (d Dir) String() string {
	if d == BtoA {
		return "b->a"
	}
	return "a->b"
}

// Link is a lab link as the backends see it.
type Link struct {
	Lab  string `json:"lab"`
	ID   string `json:"id"`  // unique in the lab, e.g. "x-s1"
	Tag  string `json:"tag"` // ownership tag set as the alias of both ends
	A    End    `json:"a"`
	B    End    `json:"b"`
	AtoB Spec   `json:"a_to_b"`
	BtoA Spec   `json:"b_to_a"`
	MTU  int    `json:"mtu,omitempty"`
	// Via is how the backend realised the link: "veth" (a veth pair, maybe
	// with qdiscs) or "tap" (two TAP devices joined by the userspace engine).
	Via string `json:"via"`
	// Faults are scripted faults from the lab file (userspace backend).
	Faults []Fault `json:"faults,omitempty"`
}

// How a link is realised.
const (
	ViaVeth = "veth"
	ViaTAP  = "tap"
)

// Spec returns the impairment of one direction.
func (l Link) Spec(d Dir) Spec {
	if d == BtoA {
		return l.BtoA
	}
	return l.AtoB
}

// Impaired reports whether either direction is impaired.
func (l Link) Impaired() bool { return !l.AtoB.IsZero() || !l.BtoA.IsZero() }

// Backend realises links and their impairments.
type Backend interface {
	// Name is "kernel" or "userspace": labctl says it at `up`.
	Name() string
	// Create makes both ends of the link in their namespaces, up, tagged
	// with l.Tag, and impaired as l says, and records in l.Via how. On error
	// it leaves nothing.
	Create(ctx context.Context, l *Link) error
	// Set replaces the impairment of one direction of a live link; a zero
	// Spec makes that direction clean.
	Set(ctx context.Context, l Link, d Dir, s Spec) error
	// Show reads back the impairment in force in each direction.
	Show(ctx context.Context, l Link) (atob, btoa Spec, err error)
}

// ErrUnsupported says that a backend cannot do what a Spec asks (for
// example Gilbert–Elliott loss on a kernel path that lacks it).
var ErrUnsupported = errors.New("not supported by this backend")

// ErrNoBackend says that no impairment backend works on this machine.
var ErrNoBackend = errors.New("no impairment backend works here")

// Names of the backends, as lab files and --backend flags spell them.
const (
	BackendAuto      = "auto"
	BackendKernel    = "kernel"
	BackendUserspace = "userspace"
	// BackendNone is the plain-veth backend (NewPlain) a lab gets when no
	// impairment backend works here and it asks for no impairment.
	BackendNone = "none"
)

// ValidBackend reports whether name is a backend name users may write.
func ValidBackend(name string) error {
	switch name {
	case "", BackendAuto, BackendKernel, BackendUserspace:
		return nil
	}
	return fmt.Errorf("backend %q: want auto, kernel or userspace", name)
}
