package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/labctl/labctl/internal/grade"
	"github.com/labctl/labctl/topo"
	"github.com/spf13/cobra"
)

func init() {
	registerVerb(newGradeCmd)
	registerVerb(newGradeExecCmd)
}

type gradeFlags struct {
	src                   labSource
	submissions, out      string
	name, shard, backend  string
	programs, builds      []string
	formats               []string
	jobs, pids            int
	timeLimit, buildLimit time.Duration
	memory, outputLimit   string
	cpu                   float64
}

func newGradeCmd() *cobra.Command {
	var f gradeFlags
	cmd := &cobra.Command{
		Use:   "grade [LAB | -f FILE] --submissions DIR --program HOST=TEMPLATE...",
		Short: "Grade a folder of submissions, each in its own lab, and write the reports",
		Long: `Each subfolder of --submissions is one submission. Each runs in its own
instance of the lab (named NAME-NNN after --name), its programs in place of
the lab's reference programs given by --program, N at a time, confined to
a cgroup (CPU, memory, pids) as a user of its own, its output capped. The
lab's checks grade it. Writes report.csv, report.json and report.html
(and Gradescope's results.json with --format gradescope) into --out, and
prints a summary line. Exits 0 when the grading ran, whatever the grades.

TEMPLATE placeholders: {dir} (the program's working folder: a writable
copy of the built submission), {name} (its folder name), {run:STEM}
(STEM.py, STEM.c, STEM.java or STEM.go found in the submission: built,
then run; {run?:STEM}: the lab's program where it is missing), ${host} (a
host's address). See docs/grading.md.`,
		Example: `  sudo labctl grade xy --submissions class/ --program x='{run:client} ${server}'
  sudo labctl grade xy --submissions class/ --program server='python3 server.py' --jobs 2 --out report/
  sudo labctl grade xy --submissions class/ --program x='{run:client} ${server}' --shard $JOB_COMPLETION_INDEX/4
  sudo labctl grade merge --out all/ shard-0/ shard-1/ shard-2/ shard-3/
  sudo labctl grade down g1a2b3c`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(args)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			o.Progress = cmd.OutOrStdout()
			ctx, stop := signalContext()
			defer stop()
			rep, err := grade.Run(ctx, o)
			if rep != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "*** %s\n*** reports: %s (%s)\n", rep.Summary, rep.Out, strings.Join(o.Formats, ", "))
			}
			var usage *grade.UsageError
			if errors.As(err, &usage) {
				return &exitError{code: 2, err: err}
			}
			if errors.Is(err, grade.ErrInterrupted) {
				return &exitError{code: 130, err: fmt.Errorf("%w: every lab is down; the report holds the %d submissions that finished", err, len(rep.Rows))}
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.src.file, "file", "f", "", "lab file (YAML)")
	fl.StringVar(&f.submissions, "submissions", "", "folder with one subfolder per submission")
	fl.StringArrayVar(&f.programs, "program", nil, "HOST=TEMPLATE or HOST/PROGRAM=TEMPLATE: what a submission runs in place of that program")
	fl.StringArrayVar(&f.builds, "build", nil, "HOST=COMMAND: a build step run in the submission's copy first (no network; {run:...} implies one)")
	fl.IntVar(&f.jobs, "jobs", 0, "submissions graded at a time (default: the number of cores)")
	fl.StringVar(&f.out, "out", "", "report folder (default: grade-NAME)")
	fl.StringVar(&f.name, "name", "", "the grading's id: every lab is NAME-NNN (default: a fresh id)")
	fl.StringSliceVar(&f.formats, "format", []string{"csv", "json", "html"}, "reports: csv, json, html, gradescope")
	fl.StringVar(&f.shard, "shard", "", "K/N: grade only shard K (0 <= K < N) of the class")
	fl.DurationVar(&f.timeLimit, "time-limit", 0, "each submitted program's time limit (default: the lab's)")
	fl.DurationVar(&f.buildLimit, "build-limit", grade.DefaultBuildLimit, "each build step's time limit")
	fl.StringVar(&f.memory, "memory", "512MiB", "memory per submission (all its processes together, no swap)")
	fl.IntVar(&f.pids, "pids", grade.DefaultLimits.Pids, "processes and threads per submission")
	fl.Float64Var(&f.cpu, "cpu", grade.DefaultLimits.CPU, "CPUs per submission")
	fl.StringVar(&f.outputLimit, "output-limit", "1MiB", "output kept per program (stdout and stderr); the rest is counted")
	fl.StringVar(&f.backend, "backend", "", "impairment backend: auto, kernel or userspace")
	cmd.AddCommand(newGradeMergeCmd(), newGradeDownCmd())
	return cmd
}

func (f gradeFlags) options(args []string) (grade.Options, error) {
	o := grade.Options{Submissions: f.submissions, Programs: f.programs, Builds: f.builds, Jobs: f.jobs,
		Out: f.out, Name: f.name, Formats: f.formats, TimeLimit: f.timeLimit, BuildLimit: f.buildLimit,
		Backend: f.backend, Log: logger()}
	if _, err := resolveLab(args, f.src); err != nil {
		return o, err
	}
	o.Lab = func() (*topo.Lab, error) { return resolveLab(args, f.src) }
	mem, err := parseBytes(f.memory)
	if err != nil {
		return o, fmt.Errorf("--memory: %w", err)
	}
	outLim, err := parseBytes(f.outputLimit)
	if err != nil {
		return o, fmt.Errorf("--output-limit: %w", err)
	}
	if f.pids < 8 || f.cpu <= 0 {
		return o, fmt.Errorf("--pids %d, --cpu %g: want at least 8 processes and some CPU", f.pids, f.cpu)
	}
	o.Limits = grade.Limits{Memory: mem, Pids: f.pids, CPU: f.cpu}
	o.OutputLimit = outLim
	if f.shard != "" {
		if o.Shard, err = grade.ParseShard(f.shard); err != nil {
			return o, err
		}
	}
	if err := grade.CheckPrivileges(); err != nil {
		return o, err
	}
	return o, nil
}

// parseBytes reads 512MiB, 1GB, 4096.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			var n int64
			if _, err := fmt.Sscan(num, &n); err != nil || n <= 0 || fmt.Sprint(n) != strings.TrimSpace(num) {
				return 0, fmt.Errorf("bad size %q: want e.g. 512MiB", s)
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("bad size %q", s)
}

func newGradeMergeCmd() *cobra.Command {
	var out string
	var formats []string
	cmd := &cobra.Command{
		Use:   "merge --out DIR REPORT_DIR...",
		Short: "Join the reports of a class's shards (each a grade --out folder)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return &exitError{code: 2, err: errors.New("--out: name the folder for the merged report")}
			}
			rep, err := grade.MergeDirs(out, args, formats)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "*** %s\n", rep.Summary)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "folder for the merged report")
	cmd.Flags().StringSliceVar(&formats, "format", []string{"csv", "json", "html"}, "reports: csv, json, html, gradescope")
	return rootless(cmd) // it only reads and writes reports
}

func newGradeDownCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "down NAME",
		Short: "Take down every lab of a grading (what a crashed labctl grade left), and nothing else",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			n, err := grade.Down(ctx, args[0], false, logger())
			fmt.Fprintf(cmd.OutOrStdout(), "*** grading %s: %d labs taken down\n", args[0], n)
			return err
		},
	}
}

// newGradeExecCmd is the wrapper a graded program runs in (see
// grade.Jail): hidden, started by the lab's supervisor.
func newGradeExecCmd() *cobra.Command {
	return &cobra.Command{
		Use:                grade.JailVerb + " [flags] -- COMMAND...",
		Short:              "Run one submitted program in its limits (the wrapper labctl grade uses)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			j, err := grade.ParseJail(args)
			if err != nil {
				return &exitError{code: 125, err: err}
			}
			code, err := grade.RunJail(j, os.Stdout, os.Stderr)
			if err != nil {
				return &exitError{code: 125, err: err}
			}
			os.Exit(code)
			return nil
		},
	}
}
