package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/labctl/labctl/nodes"
	"github.com/labctl/labctl/topo"
	"github.com/spf13/cobra"
)

// requireRoot explains, before anything is attempted, why labctl needs root.
func requireRoot() error {
	if os.Geteuid() != 0 {
		return &exitError{code: 1, err: errors.New("this needs root: labctl makes network namespaces, links and bridges; run it with sudo (the programs it starts run as you, not as root)")}
	}
	return nil
}

// signalContext is cancelled by SIGINT or SIGTERM; labctl then tears down
// what it was building under a fresh, bounded context.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// labSource is how a command names a lab to build.
type labSource struct {
	file string
	topo string
}

// resolveLab finds the lab to build: -f FILE, --topo SPEC, a built-in lab's
// name, a path to a lab file, or the default lab.
func resolveLab(args []string, src labSource) (*topo.Lab, error) {
	set := 0
	for _, s := range []string{src.file, src.topo} {
		if s != "" {
			set++
		}
	}
	if len(args) > 0 {
		set++
	}
	if set > 1 {
		return nil, &exitError{code: 2, err: errors.New("name the lab once: LAB, -f FILE or --topo SPEC")}
	}
	switch {
	case src.file != "":
		return topo.LoadFile(src.file)
	case src.topo != "":
		return topo.Generate(src.topo)
	case len(args) == 0:
		return topo.Builtin(topo.DefaultLab)
	}
	name := args[0]
	if strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") || strings.Contains(name, "/") {
		return topo.LoadFile(name)
	}
	if _, err := os.Stat(name); err == nil && !isBuiltin(name) {
		return topo.LoadFile(name)
	}
	return topo.Builtin(name)
}

func isBuiltin(name string) bool {
	for _, n := range topo.BuiltinNames() {
		if n == name {
			return true
		}
	}
	return false
}

func logger() *slog.Logger { return slog.Default() }

// oneLab returns the lab a command that takes [LAB] means: the one given,
// or the only one up.
func oneLab(args []string, list func() ([]string, error)) (string, error) {
	if len(args) > 0 {
		return args[0], nil
	}
	labs, err := list()
	if err != nil {
		return "", err
	}
	switch len(labs) {
	case 0:
		return "", errors.New("no lab is up (start one with `labctl up`)")
	case 1:
		return labs[0], nil
	}
	return "", &exitError{code: 2, err: fmt.Errorf("several labs are up (%s): name one", strings.Join(labs, ", "))}
}

// Every verb that acts on a running lab names it the same way: -l/--lab
// LAB, or LAB as its first argument, or neither, and then it is the only
// lab up.

// addLabFlag gives a verb its -l/--lab flag.
func addLabFlag(cmd *cobra.Command, dst *string) {
	cmd.Flags().StringVarP(dst, "lab", "l", "", "act on lab `LAB` (default: the only one up; or give LAB as the first argument)")
}

// labArgs finds the lab a verb acts on and the arguments that follow it.
// The verb takes min to max arguments after the lab; one more than max
// means the first one is the lab. When fewer may follow (min < max), a
// first argument that names a lab that is up is the lab (as `logs xy`
// means lab xy). --lab and a lab as the first argument are exclusive.
func labArgs(flagLab string, args []string, min, max int) (string, []string, error) {
	if flagLab != "" {
		if len(args) > max {
			return "", nil, &exitError{code: 2, err: fmt.Errorf("--lab %s and %d arguments: want at most %d after the lab", flagLab, len(args), max)}
		}
		return flagLab, args, nil
	}
	if len(args) == max+1 || (len(args) > min && labIsUp(args[0])) {
		return args[0], args[1:], nil
	}
	lab, err := oneLab(nil, nodes.List)
	return lab, args, err
}

// labIsUp says whether a lab of that name has state on this machine.
func labIsUp(name string) bool {
	labs, _ := nodes.List()
	for _, l := range labs {
		if l == name {
			return true
		}
	}
	return false
}

// labState loads the lab labArgs resolved.
func labState(flagLab string, args []string, min, max int) (*nodes.State, []string, error) {
	lab, rest, err := labArgs(flagLab, args, min, max)
	if err != nil {
		return nil, nil, err
	}
	st, err := nodes.Load(lab)
	return st, rest, err
}
