package main

import (
	"context"
	"fmt"
	"os"

	"github.com/labctl/labctl/internal/console"
	"github.com/labctl/labctl/nodes"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func init() {
	registerVerb(newCLICmd)
	registerVerb(newTermCmd)
}

func newCLICmd() *cobra.Command {
	var script, labName string
	cmd := &cobra.Command{
		Use:   "cli [LAB] [--script FILE]",
		Short: "A Mininet-style console on a lab: `h1 ping h2`, pingall, iperf, link, netem, xterm",
		Long: `Open a console on a lab, as Mininet's mininet> prompt: "NODE CMD" runs CMD
inside NODE, with node names in CMD replaced by their addresses; a trailing &
runs it in the background. Type "help" for the built-ins. With a script (on
standard input or --script) the console runs it and exits with the status of
the first command that fails. Exit leaves the lab up.`,
		Example: `  sudo labctl cli
  labctl> h2 ping -c1 h1
  labctl> h1 python3 -m http.server 80 &
  labctl> h2 curl -s h1
  sudo labctl cli mylab < steps.txt`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, _, err := labArgs(labName, args, 0, 0)
			if err != nil {
				return err
			}
			return runConsole(cmd, lab, script, false)
		},
	}
	cmd.Flags().StringVar(&script, "script", "", "run the console commands in FILE and exit")
	addLabFlag(cmd, &labName)
	return cmd
}

// runConsole opens the console on lab: a script when one is given or
// standard input is not a terminal, else the interactive prompt. ownsLab:
// exit takes the lab down (up --cli).
func runConsole(cmd *cobra.Command, lab, script string, ownsLab bool) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	c := &console.Console{
		Lab: lab, Self: self, Out: cmd.OutOrStdout(), Err: cmd.ErrOrStderr(), OwnsLab: ownsLab,
		Down: func(ctx context.Context) error { return nodes.Destroy(ctx, lab, logger()) },
	}
	ctx := context.Background()
	switch {
	case script != "":
		f, err := os.Open(script)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		defer f.Close()
		err = c.RunScript(ctx, f)
		return consoleExit(err)
	case !term.IsTerminal(int(os.Stdin.Fd())):
		return consoleExit(c.RunScript(ctx, os.Stdin))
	}
	return c.RunInteractive(ctx)
}

// consoleExit turns a script's failing command into labctl's exit status.
func consoleExit(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: console.ExitCode(err), err: fmt.Errorf("console: %w", err)}
}

func newTermCmd() *cobra.Command {
	var labName string
	cmd := &cobra.Command{
		Use:   "term [LAB] NODE...",
		Short: "A terminal per node: xterm when DISPLAY is set, else a tmux window per node",
		Long: `Open a shell inside each named node, with the node's name in its prompt and
title: an xterm each when DISPLAY is set, otherwise a tmux window each (in
the current tmux, or in a session labctl-LAB to attach to). The lab is -l LAB,
or the first argument if a lab of that name is up, or else the only lab up.`,
		Example: `  sudo labctl term h1 h2
  sudo tmux attach -t labctl-linear-2`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, nodeNames, err := labState(labName, args, 1, len(args))
			if err != nil {
				return err
			}
			if len(nodeNames) == 0 {
				return &exitError{code: 2, err: fmt.Errorf("name a node of lab %q", st.Lab)}
			}
			for _, n := range nodeNames {
				if _, ok := st.Node(n); !ok {
					return fmt.Errorf("no node %q in lab %q", n, st.Lab)
				}
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			t := console.Terminals{Lab: st.Lab, Self: self, Display: os.Getenv("DISPLAY"), InTmux: os.Getenv("TMUX") != ""}
			_, msg, err := t.Open(context.Background(), nodeNames)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
	addLabFlag(cmd, &labName)
	return cmd
}
