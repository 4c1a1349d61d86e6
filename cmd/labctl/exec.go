package main

import (
	"os"

	"github.com/labctl/labctl/nodes"
	"github.com/spf13/cobra"
)

func init() { registerVerb(newExecCmd) }

func newExecCmd() *cobra.Command {
	var labName string
	cmd := &cobra.Command{
		Use:   "exec NODE [-- CMD [ARG...]]",
		Short: "Run a command inside a node (a shell when no command), stdio attached",
		Example: `  sudo labctl exec h1 -- ip addr
  sudo labctl exec h1 -- ping -c3 10.0.0.2
  sudo labctl exec --lab xy server           # a shell inside host "server"`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireRoot(); err != nil {
				return err
			}
			st, err := loadLab(labName)
			if err != nil {
				return err
			}
			argv := args[1:]
			if len(argv) > 0 && argv[0] == "--" {
				argv = argv[1:]
			}
			if len(argv) == 0 {
				sh := os.Getenv("SHELL")
				if sh == "" {
					sh = "/bin/sh"
				}
				argv = []string{sh}
			}
			return nodes.ExecReplace(st, args[0], argv)
		},
	}
	cmd.Flags().StringVarP(&labName, "lab", "l", "", "the lab (default: the only one up)")
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// loadLab loads the named lab, or the only one up.
func loadLab(name string) (*nodes.State, error) {
	var args []string
	if name != "" {
		args = []string{name}
	}
	lab, err := oneLab(args, nodes.List)
	if err != nil {
		return nil, err
	}
	return nodes.Load(lab)
}
