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
		// The one root check: every verb needs root but those marked
		// rootless (and their subcommands) and cobra's help and completion.
		// Cobra validates the arguments first, so bad usage is told as such.
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			lvl := slog.LevelWarn
			if gflags.verbose {
				lvl = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(logWriter(), &slog.HandlerOptions{Level: lvl})))
			if needsRoot(cmd) {
				return requireRoot()
			}
			return nil
		},
	}
	// A bad flag or flag value is bad usage: exit status 2.
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return &exitError{code: 2, err: err} })
	root.PersistentFlags().BoolVarP(&gflags.verbose, "verbose", "v", false, "log what labctl does to stderr")
	for _, mk := range verbs {
		root.AddCommand(mk())
	}
	root.AddCommand(rootless(newAppCmd()))
	return root
}

// rootlessKey is the annotation of a command that works without root:
// the course programs, and verbs that only read files (a lab file, or a
// lab's state and logs, which are world-readable).
const rootlessKey = "labctl/rootless"

// rootless marks cmd, and so every subcommand of it, as needing no root.
func rootless(cmd *cobra.Command) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[rootlessKey] = "yes"
	return cmd
}

// needsRoot says whether cmd needs root: every verb does unless it or a
// parent is marked rootless, or it is cobra's help or completion.
func needsRoot(cmd *cobra.Command) bool {
	if !cmd.HasParent() {
		return false // bare `labctl`: help
	}
	for c := cmd; c != nil; c = c.Parent() {
		if c.Annotations[rootlessKey] != "" {
			return false
		}
		switch c.Name() {
		case "help", "completion", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
			return false
		}
	}
	return true
}

// verbs holds the constructors of the top-level commands; each verb's file
// registers itself in init so that files do not fight over one list.
var verbs []func() *cobra.Command

func registerVerb(mk func() *cobra.Command) { verbs = append(verbs, mk) }
