package nodes

// PLACEHOLDER until the userspace backend (issue 7) provides the engine.

import (
	"context"
	"errors"
	"log/slog"
)

func startEngine(ctx context.Context, st *State, log *slog.Logger) error {
	return errors.New("the userspace link engine is not available yet")
}
