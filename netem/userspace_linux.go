package netem

// PLACEHOLDER, replaced by the userspace backend (issue 7): links are plain veth
// pairs and any impairment is refused.

import (
	"context"
	"fmt"
)

type userspace struct{ lab string }

// NewUserspace returns the TAP + engine backend for a lab.
func NewUserspace(lab string) Backend { return userspace{lab} }

// UserspaceAvailable reports whether TAP devices can be made here.
func UserspaceAvailable() error {
	return fmt.Errorf("userspace engine: %w", ErrUnsupported)
}

func (userspace) Name() string { return BackendUserspace }

func (userspace) Create(ctx context.Context, l *Link) error {
	if l.Impaired() {
		return fmt.Errorf("link %q: %w", l.ID, ErrUnsupported)
	}
	l.Via = ViaVeth
	return CreateVeth(ctx, *l)
}

func (userspace) Set(ctx context.Context, l Link, d Dir, s Spec) error {
	return fmt.Errorf("link %q: %w", l.ID, ErrUnsupported)
}

func (userspace) Show(ctx context.Context, l Link) (Spec, Spec, error) {
	return Spec{}, Spec{}, nil
}
