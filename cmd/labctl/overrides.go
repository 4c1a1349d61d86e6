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
	cmd.Flags().StringArrayVar(&f.programs, "program", nil, "replace a program's command: HOST=COMMAND or HOST/PROGRAM=COMMAND (e.g. x='python3 client.py'); its checks still apply. HOST may be a list (server,client1,client2=COMMAND) or a role of the lab's roles: map")
	cmd.Flags().StringArrayVar(&f.stdin, "stdin", nil, "replace a program's typed input: HOST=FILE (one line per line, each typed once the program is quiet; FILE.yaml: a list of stdin lines)")
	cmd.Flags().StringArrayVar(&f.ready, "ready", nil, "replace a program's readiness: HOST=tcp:PORT, udp:PORT, line:REGEXP or none")
	cmd.Flags().StringArrayVar(&f.timeLimit, "time-limit", nil, "replace a program's time limit: HOST=DURATION (e.g. x=90s)")
}

// apply changes the lab; the command first, so a student: variant comes in
// before the other flags refine it.
func (f overrideFlags) apply(lab *topo.Lab) error {
	expand := func(flag string, specs []string) ([]string, error) {
		var out []string
		for _, s := range specs {
			e, err := lab.ExpandSpec(flag, s)
			if err != nil {
				return nil, err
			}
			out = append(out, e...)
		}
		return out, nil
	}
	programs, err := expand("--program", f.programs)
	if err != nil {
		return err
	}
	stdin, err := expand("--stdin", f.stdin)
	if err != nil {
		return err
	}
	ready, err := expand("--ready", f.ready)
	if err != nil {
		return err
	}
	timeLimit, err := expand("--time-limit", f.timeLimit)
	if err != nil {
		return err
	}
	for _, p := range programs {
		if err := lab.OverrideProgram(p); err != nil {
			return err
		}
	}
	for _, s := range stdin {
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
	for _, s := range ready {
		if err := lab.OverrideReady(s); err != nil {
			return err
		}
	}
	for _, s := range timeLimit {
		if err := lab.OverrideTimeLimit(s); err != nil {
			return err
		}
	}
	return nil
}

func (f overrideFlags) any() bool {
	return len(f.programs)+len(f.stdin)+len(f.ready)+len(f.timeLimit) > 0
}
