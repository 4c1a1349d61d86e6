package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/labctl/labctl/topo"
	"github.com/spf13/cobra"
)

// overrideFlags replace parts of a lab's programs from the command line,
// to run a student's program in a role: --program (the command), --stdin,
// --ready, --time-limit.
type overrideFlags struct {
	programs  []string
	stdin     []string
	ready     []string
	timeLimit []string
}

func addOverrideFlags(cmd *cobra.Command, f *overrideFlags) {
	cmd.Flags().StringArrayVar(&f.programs, "program", nil, "replace a program's command: HOST=COMMAND or HOST/PROGRAM=COMMAND (e.g. x='python3 client.py'); its checks still apply")
	cmd.Flags().StringArrayVar(&f.stdin, "stdin", nil, "replace a program's typed input: HOST=FILE (one line per line, each typed once the program is quiet; FILE.yaml: a list of stdin lines)")
	cmd.Flags().StringArrayVar(&f.ready, "ready", nil, "replace a program's readiness: HOST=tcp:PORT, udp:PORT, line:REGEXP or none")
	cmd.Flags().StringArrayVar(&f.timeLimit, "time-limit", nil, "replace a program's time limit: HOST=DURATION (e.g. x=90s)")
}

// apply changes the lab; the command first, so a student: variant comes in
// before the other flags refine it.
func (f overrideFlags) apply(lab *topo.Lab) error {
	for _, p := range f.programs {
		if err := lab.OverrideProgram(p); err != nil {
			return err
		}
	}
	for _, s := range f.stdin {
		_, file, ok := strings.Cut(s, "=")
		if !ok || file == "" {
			return fmt.Errorf("--stdin %q: want HOST=FILE or HOST/PROGRAM=FILE", s)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("--stdin %q: %w", s, err)
		}
		yamlFile := strings.HasSuffix(file, ".yaml") || strings.HasSuffix(file, ".yml")
		if err := lab.OverrideStdin(s, b, yamlFile); err != nil {
			return err
		}
	}
	for _, s := range f.ready {
		if err := lab.OverrideReady(s); err != nil {
			return err
		}
	}
	for _, s := range f.timeLimit {
		if err := lab.OverrideTimeLimit(s); err != nil {
			return err
		}
	}
	return nil
}

func (f overrideFlags) any() bool {
	return len(f.programs)+len(f.stdin)+len(f.ready)+len(f.timeLimit) > 0
}
