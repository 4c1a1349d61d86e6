package main

import (
	"errors"
	"log/slog"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit status (for example a failed check: 1,
// bad usage: 2) through cobra back to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// globalFlags are shared by every verb.
type globalFlags struct {
	verbose bool
}

var gflags globalFlags

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "labctl",
		Short:         "Network labs for socket programs: hosts in namespaces, impaired links, programs and checks",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			lvl := slog.LevelWarn
			if gflags.verbose {
				lvl = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(logWriter(), &slog.HandlerOptions{Level: lvl})))
		},
	}
	root.PersistentFlags().BoolVarP(&gflags.verbose, "verbose", "v", false, "log what labctl does to stderr")
	for _, mk := range verbs {
		root.AddCommand(mk())
	}
	root.AddCommand(newAppCmd())
	return root
}

// verbs holds the constructors of the top-level commands; each verb's file
// registers itself in init so that files do not fight over one list.
var verbs []func() *cobra.Command

func registerVerb(mk func() *cobra.Command) { verbs = append(verbs, mk) }
