package main

import (
	"context"
	"fmt"
	"time"

	"github.com/labctl/labctl/nodes"
	"github.com/spf13/cobra"
)

func init() { registerVerb(newRunCmd) }

func newRunCmd() *cobra.Command {
	var f upFlags
	cmd := &cobra.Command{
		Use:   "run [LAB | -f FILE] [--program HOST=COMMAND]...",
		Short: "Up, run the programs and checks, down: one command for CI and grading",
		Long: `Build the lab, run its programs, print the checks and take the lab down
again, whatever happened. The exit status is 0 only if every check passed.

To grade a submission against the reference programs, swap one program:

  sudo labctl run xy --program x='python3 client.py Alice'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, err := prepareLab(args, f)
			if err != nil {
				return err
			}
			f.test, f.detach, f.oneShot = "none", false, true
			st, runErr := runUp(cmd, lab, f)
			if st != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				if err := nodes.Destroy(ctx, st.Lab, logger()); err != nil {
					return fmt.Errorf("%v; and taking the lab down: %w", runErr, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "*** lab %s down\n", st.Lab)
			}
			return runErr
		},
	}
	addLabFlags(cmd, &f)
	return cmd
}
