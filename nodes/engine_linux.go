package nodes

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/labctl/labctl/netem"
)

// startEngine starts the lab's userspace link engine as a daemon and waits
// until it serves its links (its control socket answers), bounded in time.
func startEngine(ctx context.Context, st *State, log *slog.Logger) error {
	d, err := StartDaemon(st, "engine", netem.EngineArgs(st.Lab))
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := netem.WaitEngine(wctx, st.Lab); err != nil {
		if !d.Alive() {
			return fmt.Errorf("lab %q: the link engine stopped at start (see %s/engine.log): %w", st.Lab, Dir(st.Lab), err)
		}
		return fmt.Errorf("lab %q: the link engine is not serving: %w", st.Lab, err)
	}
	log.Debug("link engine up", "pid", d.PID)
	return nil
}
