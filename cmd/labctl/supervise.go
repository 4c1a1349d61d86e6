package main

import (
	"github.com/labctl/labctl/nodes"
	"github.com/spf13/cobra"
)

func init() { registerVerb(newSuperviseCmd) }

// newSuperviseCmd is the per-lab daemon that runs the programs; `up`
// starts it and `down` stops it.
func newSuperviseCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "supervise LAB",
		Short:  "Run a lab's programs (the daemon `up` starts)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext()
			defer stop()
			s, err := nodes.NewSupervisor(args[0], logger())
			if err != nil {
				return err
			}
			return s.Run(ctx)
		},
	}
}
