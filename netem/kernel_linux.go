package netem

// PLACEHOLDER, replaced by the kernel backend (issue 3): links are plain veth
// pairs and any impairment is refused.

import (
	"context"
	"fmt"
)

type kernel struct{}

// NewKernel returns the tc-netem backend.
func NewKernel() Backend { return kernel{} }

// KernelAvailable reports whether this kernel can run netem qdiscs.
func KernelAvailable(ctx context.Context) error {
	return fmt.Errorf("sch_netem probe: %w", ErrUnsupported)
}

func (kernel) Name() string { return BackendKernel }

func (kernel) Create(ctx context.Context, l *Link) error {
	if l.Impaired() {
		return fmt.Errorf("link %q: %w", l.ID, ErrUnsupported)
	}
	l.Via = ViaVeth
	return CreateVeth(ctx, *l)
}

func (kernel) Set(ctx context.Context, l Link, d Dir, s Spec) error {
	return fmt.Errorf("link %q: %w", l.ID, ErrUnsupported)
}

func (kernel) Show(ctx context.Context, l Link) (Spec, Spec, error) {
	return Spec{}, Spec{}, nil
}
