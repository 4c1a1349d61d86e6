package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/labctl/labctl/nodes"
	"github.com/labctl/labctl/topo"
	"github.com/spf13/cobra"
)

func init() { registerVerb(newUpCmd) }

type upFlags struct {
	src       labSource
	backend   string
	name      string
	test      string
	over      overrideFlags
	detach    bool
	oneShot   bool   // run: the lab goes down right after
	cli       bool   // open the console once up; its exit takes the lab down
	cliScript string // run a console script once up, then take the lab down
	web       bool   // serve the lab's live page (labctl web LAB)
}

func newUpCmd() *cobra.Command {
	var f upFlags
	cmd := &cobra.Command{
		Use:   "up [LAB | -f FILE | --topo SPEC]",
		Short: "Build a lab: hosts, switches, links, impairments (default lab: " + topo.DefaultLab + ")",
		Long: `Build a lab and leave it up for exec, ping, netem and logs until
'labctl down'. LAB is a built-in lab (` + strings.Join(topo.BuiltinNames(), ", ") + `)
or a lab file; --topo builds a Mininet topology: minimal, single,N, linear,N,
tree,DEPTH,FANOUT.`,
		Example: `  sudo labctl up
  sudo labctl up --topo linear,4
  sudo labctl up -f mylab.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, err := prepareLab(args, f)
			if err != nil {
				return err
			}
			console := f.cli || f.cliScript != ""
			if console {
				// The console owns the terminal: programs start detached.
				f.detach = true
			}
			st, err := runUp(cmd, lab, f)
			if err != nil || !console {
				return err
			}
			return runConsole(cmd, st.Lab, f.cliScript, true)
		},
	}
	addLabFlags(cmd, &f)
	cmd.Flags().BoolVarP(&f.detach, "detach", "d", false, "start the programs and return at once (follow them with 'labctl logs -f')")
	cmd.Flags().BoolVar(&f.cli, "cli", false, "open the console (labctl cli) once the lab is up; leaving it takes the lab down, as sudo mn does")
	cmd.Flags().StringVar(&f.cliScript, "cli-script", "", "run the console commands in `FILE` once the lab is up, then take the lab down; exit with the first failing command's status")
	cmd.Flags().BoolVar(&f.web, "web", false, "serve the lab's live page (as labctl web LAB does) and print its URL")
	cmd.Flags().StringVar(&f.test, "test", "auto", "after up: auto (a pingall report for small labs with no programs), pingall (fail if any pair cannot reach each other) or none")
	return cmd
}

// addLabFlags adds the flags up and run share.
func addLabFlags(cmd *cobra.Command, f *upFlags) {
	cmd.Flags().StringVarP(&f.src.file, "file", "f", "", "lab file (YAML)")
	cmd.Flags().StringVar(&f.src.topo, "topo", "", "Mininet-style topology: minimal, single,N, linear,N, tree,D,F")
	cmd.Flags().StringVar(&f.backend, "backend", "", "impairment backend: auto, kernel or userspace (overrides the lab file)")
	cmd.Flags().StringVar(&f.name, "name", "", "name the lab (to run two copies of one lab side by side)")
	addOverrideFlags(cmd, &f.over)
}

// prepareLab resolves the lab and applies --name and --program.
func prepareLab(args []string, f upFlags) (*topo.Lab, error) {
	lab, err := resolveLab(args, f.src)
	if err != nil {
		return nil, err
	}
	if err := f.over.apply(lab); err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	if f.name != "" {
		lab.Name = f.name
	}
	if f.name != "" || f.over.any() {
		if err := lab.Build(); err != nil {
			return nil, err
		}
	}
	return lab, nil
}

// runUp deploys the lab, runs its programs and checks, and reports. It
// returns the state of the lab it made (nil if none).
func runUp(cmd *cobra.Command, lab *topo.Lab, f upFlags) (*nodes.State, error) {
	ctx, stop := signalContext()
	defer stop()
	out := cmd.OutOrStdout()
	t0 := time.Now()
	st, err := nodes.Deploy(ctx, lab, nodes.Options{Backend: f.backend, Log: logger()})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "*** lab %s up in %s: %d nodes, %d links, impairments: %s\n",
		st.Lab, time.Since(t0).Round(time.Millisecond), len(st.Nodes), len(st.Links), backendWords(st.Backend))
	printLinks(out, st)
	if f.web {
		u, err := startWeb(ctx, st)
		if err != nil {
			return st, err
		}
		fmt.Fprintf(out, "*** live page of the lab: %s\n", u)
	}
	if err := upTest(ctx, out, lab, st, f.test); err != nil {
		return st, err
	}
	if len(labPrograms(lab)) > 0 {
		if err := runPrograms(ctx, out, lab, st, f.detach); err != nil {
			return st, err
		}
		return st, nil
	}
	if f.oneShot {
		return st, nil
	}
	fmt.Fprintf(out, "*** the lab stays up: try `sudo labctl exec %s -- ip addr`; take it down with `sudo labctl down %s`\n", firstHost(st), st.Lab)
	return st, nil
}

func firstHost(st *nodes.State) string {
	for _, n := range st.Nodes {
		if n.Kind != "switch" {
			return n.Name
		}
	}
	return st.Nodes[0].Name
}

// runPrograms starts the lab's supervisor and, unless detached, follows the
// programs' output until the checks are in.
func runPrograms(ctx context.Context, out io.Writer, lab *topo.Lab, st *nodes.State, detach bool) error {
	cwd, _ := os.Getwd()
	var plan *nodes.Plan
	var sup *nodes.Daemon
	// Under the lab's lock: a `down` at the same time finds either no plan,
	// copy or supervisor, or all of them recorded.
	err := nodes.UpdateState(ctx, st.Lab, func(cur *nodes.State) error {
		if cur.ID != st.ID {
			return fmt.Errorf("lab %q was taken down and up again meanwhile: %w", st.Lab, nodes.ErrNoLab)
		}
		var err error
		if plan, err = nodes.BuildPlan(lab, cur, cwd); err != nil {
			return err
		}
		if err := plan.Save(); err != nil {
			return err
		}
		sup, err = cur.StartDaemon("supervisor", []string{"supervise", st.Lab})
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "*** programs start, as user %s (the lab stays up: `labctl down %s` ends it)\n", plan.User, st.Lab)
	if detach {
		fmt.Fprintf(out, "*** detached: follow with `labctl logs -f %s`\n", st.Lab)
		return nil
	}
	res, err := follow(ctx, out, st.Lab, sup)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(out, "*** stopped following; the lab and its programs stay up (`labctl down %s`)\n", st.Lab)
		return nil
	}
	if err != nil {
		return err
	}
	if !printResult(out, st.Lab, res) {
		return &exitError{code: 1, err: fmt.Errorf("lab %s: %d of %d checks failed", st.Lab, res.Failed, res.Failed+res.Passed)}
	}
	return nil
}

// autoPingallMax bounds the automatic pingall, which sends n*(n-1) pings.
const autoPingallMax = 16

// upTest runs what --test asks for once the lab is up. Like `mn --test
// pingall`, a small lab with nothing to run shows that its hosts reach each
// other; only --test pingall makes an unreachable pair an error, since a lab
// may be partitioned on purpose.
func upTest(ctx context.Context, out io.Writer, lab *topo.Lab, st *nodes.State, test string) error {
	switch test {
	case "none":
		return nil
	case "pingall":
		if !pingAll(ctx, out, st) {
			return &exitError{code: 1, err: fmt.Errorf("lab %s: some hosts cannot reach each other", st.Lab)}
		}
		return nil
	case "auto":
		if len(labPrograms(lab)) > 0 {
			return nil
		}
		if hosts := len(st.Nodes) - countKind(st, "switch"); hosts > autoPingallMax {
			fmt.Fprintf(out, "*** %d hosts: no automatic pingall (run `labctl pingall`)\n", hosts)
			return nil
		}
		pingAll(ctx, out, st)
		return nil
	}
	return &exitError{code: 2, err: fmt.Errorf("--test %q: want auto, pingall or none", test)}
}

func countKind(st *nodes.State, kind string) int {
	n := 0
	for _, nd := range st.Nodes {
		if nd.Kind == kind {
			n++
		}
	}
	return n
}

func backendWords(b string) string {
	switch b {
	case "kernel":
		return "kernel (tc-netem)"
	case "userspace":
		return "userspace (TAP + labctl engine)"
	case "none":
		return "none available (links are plain veth)"
	}
	return b
}

func labPrograms(lab *topo.Lab) []topo.Program {
	var ps []topo.Program
	for _, n := range lab.Nodes {
		ps = append(ps, n.Programs...)
	}
	return ps
}

// printLinks lists the impaired links with their backend, per direction.
func printLinks(out io.Writer, st *nodes.State) {
	for _, l := range st.Links {
		if !l.Impaired() {
			continue
		}
		fmt.Fprintf(out, "    link %-14s %s -> %s: %s\n", l.ID, l.A.Node, l.B.Node, l.AtoB)
		fmt.Fprintf(out, "    link %-14s %s -> %s: %s   [%s via %s]\n", l.ID, l.B.Node, l.A.Node, l.BtoA, st.Backend, l.Via)
	}
}
