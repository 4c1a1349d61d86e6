package main

import (
	"sort"

	"github.com/spf13/cobra"
)

// apps holds the constructors of the course programs (`labctl app NAME`).
// They run as ordinary, unprivileged processes inside lab hosts; each
// program's file registers itself in init.
var apps []func() *cobra.Command

func registerApp(mk func() *cobra.Command) { apps = append(apps, mk) }

func newAppCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "app NAME [flags]",
		Short: "Run one of the course programs (servers and clients); labs start these inside hosts",
		Long: `Run one of the course programs. Labs start them inside hosts, but they are
ordinary programs: run them anywhere, e.g. on loopback:

  labctl app xy-server --port 12000
  labctl app xy-client --server 127.0.0.1:12000 --name Alice`,
	}
	subs := make([]*cobra.Command, 0, len(apps))
	for _, mk := range apps {
		subs = append(subs, mk())
	}
	sort.Slice(subs, func(i, j int) bool { return subs[i].Name() < subs[j].Name() })
	cmd.AddCommand(subs...)
	return cmd
}
