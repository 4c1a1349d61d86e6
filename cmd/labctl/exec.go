package main

import (
	"errors"
	"os"

	"github.com/labctl/labctl/nodes"
	"github.com/spf13/cobra"
)

func init() { registerVerb(newExecCmd) }

func newExecCmd() *cobra.Command {
	var labName string
	cmd := &cobra.Command{
		Use:   "exec [LAB] NODE [-- CMD [ARG...]]",
		Short: "Run a command inside a node (a shell when no command), stdio attached",
		Long: `Run a command inside a node of a running lab, stdio attached; with no
command, a shell. The lab is -l LAB, or the first argument, or else the only
lab up. Without "--", a first argument is the lab only if a lab of that name
is up and has a node named by the second.`,
		Example: `  sudo labctl exec h1 -- ip addr
  sudo labctl exec h1 -- ping -c3 10.0.0.2
  sudo labctl exec xy server                 # a shell inside host "server" of lab xy
  sudo labctl exec --lab xy server -- ss -ltn`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, node, argv, err := execArgs(labName, args, cmd.ArgsLenAtDash())
			if err != nil {
				return err
			}
			if len(argv) == 0 {
				sh := os.Getenv("SHELL")
				if sh == "" {
					sh = "/bin/sh"
				}
				argv = []string{sh}
			}
			return nodes.ExecReplace(st, node, argv)
		},
	}
	addLabFlag(cmd, &labName)
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// execArgs reads [LAB] NODE [-- CMD...]. Flags end at the first argument,
// so a "--" after it is still among args; dash is where cobra saw one
// before any argument (-1: none).
func execArgs(flagLab string, args []string, dash int) (*nodes.State, string, []string, error) {
	before, argv := args, []string(nil)
	for i, a := range args {
		if a == "--" && dash != 0 {
			before, argv = args[:i], args[i+1:]
			break
		}
	}
	if len(before) == len(args) && len(args) >= 2 {
		// No "--": NODE CMD... unless LAB NODE names a lab that is up.
		if flagLab == "" {
			if st, err := nodes.Load(args[0]); err == nil {
				if _, ok := st.Node(args[1]); ok {
					return st, args[1], args[2:], nil
				}
			}
		}
		before, argv = args[:1], args[1:]
	}
	if len(before) == 0 || len(before) > 2 {
		return nil, "", nil, &exitError{code: 2, err: errors.New("want [LAB] NODE [-- CMD [ARG...]]")}
	}
	st, rest, err := labState(flagLab, before, 1, 1)
	if err != nil {
		return nil, "", nil, err
	}
	return st, rest[0], argv, nil
}
