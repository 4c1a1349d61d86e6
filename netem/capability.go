package netem

import (
	"context"
	"io"
	"time"
)

// Optional capabilities. A Backend does what the Backend interface says;
// some do more, and callers ask for it with a type assertion:
//
//	if c, ok := b.(netem.Counter); ok { atob, btoa, err := c.Counters(ctx, l) }
//
// A backend that has a capability may still refuse it for one link (the
// userspace backend's plain veth links have no engine to ask): it then
// returns an error that wraps ErrUnsupported.

// Counts are one direction's counters of a live link (since it was made,
// or since the engine started). Backends that cannot split drops by cause
// leave Split false and put every drop in Dropped.
type Counts struct {
	Packets    uint64 `json:"packets"` // offered to the link by the sender
	Bytes      uint64 `json:"bytes"`
	Delivered  uint64 `json:"delivered"` // left the far end
	Dropped    uint64 `json:"dropped"`   // every drop, whatever the cause
	Lost       uint64 `json:"lost"`
	QueueDrops uint64 `json:"queue_drops"`
	Corrupted  uint64 `json:"corrupted"`
	Duplicated uint64 `json:"duplicated"`
	Reordered  uint64 `json:"reordered"`
	DownDrops  uint64 `json:"down_drops"`
	Queued     int    `json:"queued"`
	Split      bool   `json:"split"`
}

// Counter reads a live link's counters, per direction.
type Counter interface {
	Counters(ctx context.Context, l Link) (atob, btoa Counts, err error)
}

// Faulter plays scripted faults on a live link (see Fault).
type Faulter interface {
	// AddFaults arms faults on the link.
	AddFaults(ctx context.Context, l Link, fs []Fault) error
	// ListFaults describes the pending and the fired faults.
	ListFaults(ctx context.Context, l Link) (pending, fired []string, err error)
	// ClearFaults disarms pending faults and brings the link up.
	ClearFaults(ctx context.Context, l Link) error
	// LinkDown cuts the link both ways for d (0: until LinkUp).
	LinkDown(ctx context.Context, l Link, d time.Duration) error
	// LinkUp brings the link back up.
	LinkUp(ctx context.Context, l Link) error
}

// Capturer records a live link's frames, both directions, as pcapng.
type Capturer interface {
	// Capture streams to w until ctx ends. point is "delivered" (what the
	// receiving end gets; the default) or "sent" (what the sender sent,
	// dropped packets included).
	Capture(ctx context.Context, l Link, point string, w io.Writer) error
}

// Runner is a backend that serves a lab's links with a process of its own
// (the userspace engine): Start once every link exists (with no link that
// needs it, it does nothing), Stop before the links go away (stopping what
// does not run is not an error).
type Runner interface {
	Start(ctx context.Context, links []Link) error
	Stop(ctx context.Context) error
}
