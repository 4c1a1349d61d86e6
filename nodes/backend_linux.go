package nodes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/netem/engine"
	"github.com/labctl/labctl/netem/kernel"
)

// candidates are the impairment backends a lab may use, in the order
// "auto" tries them. The userspace backend is given what it needs: the
// lab's folder, seed and size, and how to launch its engine as one of the
// lab's daemons (`labctl engine LAB`).
func candidates(st *State, log *slog.Logger) []netem.Candidate {
	if log == nil {
		log = slog.Default()
	}
	return []netem.Candidate{
		kernel.Candidate(),
		engine.Candidate(engine.Options{
			Lab: st.Lab, Dir: Dir(st.Lab), Seed: st.Seed, Links: len(st.Links), Log: log,
			// Only Deploy starts the engine, holding the lab's lock: record
			// the daemon in its state and write it at once.
			Launch: func() (func() bool, error) {
				d, err := st.StartDaemon("engine", []string{"engine", st.Lab})
				if err != nil {
					return nil, err
				}
				if err := st.save(); err != nil {
					return nil, err
				}
				return d.Alive, nil
			},
		}),
	}
}

// Backend returns the impairment backend a deployed lab was built with,
// for live changes, faults, capture and counters. Ask it for optional
// capabilities (netem.Counter, netem.Faulter, netem.Capturer) with a type
// assertion.
func Backend(st *State) (netem.Backend, error) {
	return netem.ForState(st.Backend, st.Lab, candidates(st, nil)...)
}

// Counters reads the counters of every link of a running lab, keyed by link
// id: [0] is a->b, [1] b->a. A link its backend cannot count (a plain veth
// link of a large userspace lab) is left out; any other error is returned.
func Counters(ctx context.Context, lab string) (map[string][2]netem.Counts, error) {
	st, err := Load(lab)
	if err != nil {
		return nil, err
	}
	b, err := Backend(st)
	if err != nil {
		return nil, err
	}
	c, ok := b.(netem.Counter)
	if !ok {
		return nil, fmt.Errorf("lab %q: the %s backend keeps no counters: %w", lab, b.Name(), netem.ErrUnsupported)
	}
	out := map[string][2]netem.Counts{}
	for _, l := range st.Links {
		ab, ba, err := c.Counters(ctx, l)
		if errors.Is(err, netem.ErrUnsupported) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[l.ID] = [2]netem.Counts{ab, ba}
	}
	return out, nil
}

// stopBackend stops what the lab's backend runs (the userspace engine),
// bounded in time; destroy kills whatever is left anyway.
func stopBackend(ctx context.Context, st *State, log *slog.Logger) {
	b, err := Backend(st)
	if err != nil {
		return
	}
	r, ok := b.(netem.Runner)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		log.Debug("backend did not stop cleanly; its processes are killed", "err", err)
	}
}
