package main

import (
	"log/slog"
	"os"

	"github.com/labctl/labctl/netem/engine"
	"github.com/labctl/labctl/nodes"
	"github.com/spf13/cobra"
)

func init() { registerVerb(newEngineCmd) }

// newEngineCmd is the lab's userspace link engine, started detached by
// `up` (through nodes, which gives the userspace backend a way to launch
// it) and stopped by `down`. It serves what the backend left in the lab's
// folder.
func newEngineCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "engine LAB",
		Short:  "Serve a lab's userspace (TAP) links until SIGTERM (started by up)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext()
			defer stop()
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			return engine.Serve(ctx, nodes.Dir(args[0]), log)
		},
	}
}
