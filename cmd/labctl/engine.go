package main

import (
	"log/slog"
	"os"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/nodes"
	"github.com/spf13/cobra"
)

func init() { registerVerb(newEngineCmd) }

// newEngineCmd is the lab's userspace link engine, started detached by
// `up` (argv from netem.EngineArgs) and killed by `down`.
func newEngineCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "engine LAB",
		Short:  "Serve a lab's userspace (TAP) links until SIGTERM (started by up)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext()
			defer stop()
			st, err := nodes.Load(args[0])
			if err != nil {
				return err
			}
			netem.EngineRoot = nodes.StateRoot
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			return netem.RunEngine(ctx, netem.EngineConfig{Lab: st.Lab, Seed: st.Seed, Links: st.Links, Logger: log})
		},
	}
}
