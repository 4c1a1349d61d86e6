package netem

import (
	"context"
	"fmt"
)

// Candidate is a backend Select may choose: its name, whether it works on
// this machine, and how to make it. The packages that implement backends
// (netem/kernel, netem/engine) provide them; netem itself imports neither.
type Candidate struct {
	Name      string
	Available func(ctx context.Context) error
	New       func() Backend
}

// Select returns the backend for a lab: "kernel" or "userspace" when asked
// by name (an error if it does not work here), or for "auto"/"" the kernel
// backend where the kernel has sch_netem and the userspace backend
// elsewhere (the first candidate that works, in the order given). It never
// falls back to unimpaired links.
func Select(ctx context.Context, want string, cands ...Candidate) (Backend, error) {
	if err := ValidBackend(want); err != nil {
		return nil, err
	}
	if want == "" || want == BackendAuto {
		var why []any
		msg := ""
		for _, c := range cands {
			err := c.Available(ctx)
			if err == nil {
				return c.New(), nil
			}
			msg += "; %s: %v"
			why = append(why, c.Name, err)
		}
		return nil, fmt.Errorf("%w"+msg, append([]any{ErrNoBackend}, why...)...)
	}
	for _, c := range cands {
		if c.Name != want {
			continue
		}
		if err := c.Available(ctx); err != nil {
			return nil, fmt.Errorf("%s backend: %w", want, err)
		}
		return c.New(), nil
	}
	return nil, fmt.Errorf("%s backend: %w", want, ErrNoBackend)
}

// ForState returns, from the candidates, the backend a deployed lab was
// built with, for live changes (netem set/show, verify), without probing
// the machine again.
func ForState(name, lab string, cands ...Candidate) (Backend, error) {
	if name == BackendNone {
		return NewPlain(), nil
	}
	for _, c := range cands {
		if c.Name == name {
			return c.New(), nil
		}
	}
	return nil, fmt.Errorf("lab %q: unknown backend %q in its state", lab, name)
}
