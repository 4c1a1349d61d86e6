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
	var all bool
	cmd := &cobra.Command{
		Use:   "down [LAB | --all]",
		Short: "Take a lab down: kill its programs, delete its namespaces, links and state",
		Long: `Take a lab down. It is idempotent, and also finishes the job for an 'up'
that crashed or was killed halfway. With no LAB, the only lab that is up.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireRoot(); err != nil {
				return err
			}
			// Teardown runs to the end even after Ctrl-C, bounded in time.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var labs []string
			if all {
				l, err := nodes.List()
				if err != nil {
					return err
				}
				labs = l
			} else {
				lab, err := oneLab(args, nodes.List)
				if err != nil {
					return err
				}
				labs = []string{lab}
			}
			var errs []error
			for _, lab := range labs {
				if err := nodes.Destroy(ctx, lab, logger()); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "*** lab %s down\n", lab)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "take every lab down")
	return cmd
}
