package nodes

import (
	"context"
	"fmt"

	"github.com/labctl/labctl/netem"
)

// SetImpairment changes a live link's impairment (both directions, or only
// what node from sends) through the lab's backend and records it in the
// state, as one locked read-modify-write (UpdateState): the backend is
// changed only while the lab is up, and a `down` running at the same time
// comes wholly before or wholly after. On success st and l are refreshed
// from the state written.
func SetImpairment(ctx context.Context, st *State, l *netem.Link, from string, spec netem.Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	var setErr error
	err := UpdateState(ctx, st.Lab, func(cur *State) error {
		if st.ID != "" && cur.ID != st.ID {
			return fmt.Errorf("lab %q was taken down and up again meanwhile (deployment %s, not %s): %w", st.Lab, cur.ID, st.ID, ErrNoLab)
		}
		cl, ok := cur.Link(l.ID)
		if !ok {
			return fmt.Errorf("lab %q: no link %q", cur.Lab, l.ID)
		}
		b, err := Backend(cur)
		if err != nil {
			return err
		}
		for _, d := range []netem.Dir{netem.AtoB, netem.BtoA} {
			sender := cl.A.Node
			if d == netem.BtoA {
				sender = cl.B.Node
			}
			if from != "" && from != sender {
				continue
			}
			if err := b.Set(ctx, *cl, d, spec); err != nil {
				// Record the directions already changed, then fail.
				setErr = err
				return nil
			}
			if d == netem.AtoB {
				cl.AtoB = spec
			} else {
				cl.BtoA = spec
			}
		}
		*l = *cl
		*st = *cur
		return nil
	})
	if err != nil {
		return err
	}
	return setErr
}
