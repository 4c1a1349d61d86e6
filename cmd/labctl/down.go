package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/labctl/labctl/nodes"
	"github.com/spf13/cobra"
)

func init() { registerVerb(newDownCmd) }

func newDownCmd() *cobra.Command {
	var (
		all     bool
		labName string
	)
	cmd := &cobra.Command{
		Use:   "down [LAB | -l LAB | --all]",
		Short: "Take a lab down: kill its programs, delete its namespaces, links and state",
		Long: `Take a lab down. With no LAB, the only lab that is up.

It is idempotent: it finishes the job of an 'up' or 'down' that crashed or
was killed halfway, and for a lab that is not up it says "no such lab" and
exits 0. A lab whose state file is missing, empty or unreadable is taken
down by its ownership marks: namespaces lab-LAB-* whose loopback carries
the alias labctl:LAB:ID, interfaces with that alias, labctl daemons with
LABCTL_TAG=labctl:LAB:ID and every process inside those namespaces; down
says on stderr what it could not read.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			// Teardown runs to the end even after Ctrl-C, bounded in time.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			labs, err := nodes.List()
			if err != nil {
				return err
			}
			if all && (len(args) > 0 || labName != "") {
				return &exitError{code: 2, err: errors.New("--all or a lab, not both")}
			}
			if !all {
				lab := labName
				if len(args) == 1 {
					lab = args[0]
				}
				if lab != "" && len(args) == 1 && labName != "" {
					return &exitError{code: 2, err: errors.New("name the lab once: LAB or -l LAB")}
				}
				if lab == "" && len(labs) == 0 {
					fmt.Fprintln(out, "*** no lab is up: nothing to take down")
					return nil
				}
				if lab == "" {
					if lab, err = oneLab(nil, nodes.List); err != nil {
						return err
					}
				}
				labs = []string{lab}
			}
			var errs []error
			for _, lab := range labs {
				err := nodes.Destroy(ctx, lab, logger())
				switch {
				case errors.Is(err, nodes.ErrNoLab):
					fmt.Fprintf(out, "*** lab %s: no such lab, nothing to take down\n", lab)
				case err != nil:
					errs = append(errs, err)
				default:
					fmt.Fprintf(out, "*** lab %s down\n", lab)
				}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "take every lab down")
	addLabFlag(cmd, &labName)
	return cmd
}
