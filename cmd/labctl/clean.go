package main

import (
	"context"
	"fmt"
	"time"

	"github.com/labctl/labctl/nodes"
	"github.com/spf13/cobra"
)

func init() { registerVerb(newCleanCmd) }

func newCleanCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "clean",
		Short: "Remove every labctl leftover on this machine, and nothing else",
		Long: `Remove every lab, every network namespace marked as labctl's, every
interface tagged as labctl's and every orphaned labctl daemon. Namespaces and
interfaces that labctl did not make (no labctl tag) are never touched.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			done, err := nodes.Clean(ctx, logger())
			for _, d := range done {
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", d)
			}
			if len(done) == 0 && err == nil {
				fmt.Fprintln(cmd.OutOrStdout(), "nothing to clean")
			}
			return err
		},
	}
}
