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

	"github.com/labctl/labctl/topo"
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
	return "", fmt.Errorf("several labs are up (%s): name one", strings.Join(labs, ", "))
}
