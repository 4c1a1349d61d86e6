package main

import (
	"github.com/labctl/labctl/nodes"
	"github.com/spf13/cobra"
)

func init() { registerVerb(newHostExecCmd) }

// newHostExecCmd is the wrapper the supervisor starts each program
// through: it sets up the host (name, hosts file, reachable folders),
// drops root and becomes the program.
func newHostExecCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "hostexec SETUP ARGV...",
		Short:              "Become a lab program inside its host (the supervisor's wrapper)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return &exitError{code: 127, err: nodes.HostExec(args)}
		},
	}
}
