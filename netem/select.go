package netem

import (
	"context"
	"fmt"
)

// Select returns the backend for a lab: "kernel" or "userspace" when asked
// by name (an error if it does not work here), or for "auto"/"" the kernel
// backend where the kernel has sch_netem and the userspace backend
// elsewhere. It never falls back to unimpaired links.
func Select(ctx context.Context, want, lab string) (Backend, error) {
	switch want {
	case BackendKernel:
		if err := KernelAvailable(ctx); err != nil {
			return nil, fmt.Errorf("kernel backend: %w", err)
		}
		return NewKernel(), nil
	case BackendUserspace:
		if err := UserspaceAvailable(); err != nil {
			return nil, fmt.Errorf("userspace backend: %w", err)
		}
		return NewUserspace(lab), nil
	case BackendAuto, "":
		kerr := KernelAvailable(ctx)
		if kerr == nil {
			return NewKernel(), nil
		}
		uerr := UserspaceAvailable()
		if uerr == nil {
			return NewUserspace(lab), nil
		}
		return nil, fmt.Errorf("%w: kernel: %v; userspace: %v", ErrNoBackend, kerr, uerr)
	}
	return nil, ValidBackend(want)
}

// ForState returns the backend a deployed lab was built with, for live
// changes (netem set/show, verify).
func ForState(name, lab string) (Backend, error) {
	switch name {
	case BackendKernel:
		return NewKernel(), nil
	case BackendUserspace:
		return NewUserspace(lab), nil
	}
	return nil, fmt.Errorf("lab %q: unknown backend %q in its state", lab, name)
}
