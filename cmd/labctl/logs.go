package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/labctl/labctl/nodes"
	"github.com/spf13/cobra"
)

func init() { registerVerb(newLogsCmd) }

func newLogsCmd() *cobra.Command {
	var (
		followFlag bool
		all        bool
		labName    string
	)
	cmd := &cobra.Command{
		Use:   "logs [LAB] [NODE[/PROGRAM]] [-f]",
		Short: "Show what a lab's programs printed (timestamped, per host and program)",
		Long: `Show the captured output of a lab's programs, interleaved in the order it
was read, each line prefixed with host/program. Marks: | stdout, ! stderr,
> typed into stdin, ~ log records of labctl's own programs, * what labctl
did (start, ready, exit, timeline). A program's output cannot drive the
terminal: colour passes, other control characters are shown escaped. The
lab is -l LAB, or the first argument (one argument is the lab if a lab of
that name is up, else a node of the only lab up), or else the only lab up.
The logs, with RFC 3339 timestamps, are under /run/labctl/LAB/logs/, and
the exact bytes in PROG.stdout.raw and PROG.stderr.raw next to them.`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, rest, err := labArgs(labName, args, 0, 1)
			if err != nil {
				return err
			}
			filter := ""
			if len(rest) == 1 {
				filter = rest[0]
			}
			ctx, stop := signalContext()
			defer stop()
			return showLogs(ctx, cmd.OutOrStdout(), lab, filter, followFlag, all)
		},
	}
	cmd.Flags().BoolVarP(&followFlag, "follow", "f", false, "keep printing new output until Ctrl-C or the lab goes down")
	cmd.Flags().BoolVar(&all, "all", false, "include labctl's own lines (starts, exits, timeline)")
	addLabFlag(cmd, &labName)
	return rootless(cmd)
}

func showLogs(ctx context.Context, out io.Writer, lab, filter string, follow, all bool) error {
	f, err := os.Open(nodes.OutputLog(lab))
	if errors.Is(err, os.ErrNotExist) {
		if _, lerr := nodes.Load(lab); lerr != nil {
			return lerr
		}
		return fmt.Errorf("lab %s has no program output (it runs no programs, or they have not started)", lab)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	pr := newPrinter(out)
	pr.fitPlan(lab)
	match := func(l outputLine) bool {
		if l.stream == "sys" && !all && l.key != "labctl" {
			return false
		}
		if filter == "" {
			return true
		}
		if strings.Contains(filter, "/") {
			return l.key == filter
		}
		return strings.HasPrefix(l.key, filter+"/")
	}
	rd := bufio.NewReader(f)
	partial := ""
	for {
		s, err := rd.ReadString('\n')
		if err == nil {
			if l, ok := parseOutputLine(strings.TrimSuffix(partial+s, "\n")); ok && match(l) {
				pr.print(l)
			}
			partial = ""
			continue
		}
		partial += s
		if !follow {
			return nil
		}
		if _, lerr := nodes.Load(lab); lerr != nil {
			return nil // the lab went down
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}
