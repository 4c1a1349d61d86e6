package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/labctl/labctl/nodes"
	"github.com/spf13/cobra"
)

func init() {
	registerVerb(newStatusCmd)
	registerVerb(newInspectCmd)
}

func newStatusCmd() *cobra.Command {
	return rootless(&cobra.Command{
		Use:   "status",
		Short: "List the labs on this machine",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			labs, err := nodes.List()
			if err != nil {
				return err
			}
			if len(labs) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no lab is up")
				return nil
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "LAB\tPHASE\tNODES\tLINKS\tIMPAIRMENTS\tUP SINCE\tSOURCE\tGRADING")
			for _, lab := range labs {
				st, err := nodes.Load(lab)
				if err != nil {
					fmt.Fprintf(w, "%s\tunreadable: %v\n", lab, err)
					continue
				}
				grading := "-"
				if g, ok := nodes.GradingOf(lab); ok {
					grading = g.Name + " (" + g.Submission + ")"
					if g.Orphaned() {
						grading += ", orphaned: labctl grade down " + g.Name
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", st.Lab, st.Phase, len(st.Nodes), len(st.Links),
					st.Backend, st.Created.Local().Format(time.DateTime), st.Source, grading)
			}
			return w.Flush()
		},
	})
}

func newInspectCmd() *cobra.Command {
	var asJSON bool
	var labName string
	cmd := &cobra.Command{
		Use:   "inspect [LAB] [--json]",
		Short: "Show a lab's nodes, namespaces, interfaces, addresses and links",
		Long: `Show a lab's nodes, namespaces, interfaces, addresses and links. --json
prints the lab's state document, whose shape is stable (docs/inspect-json.md):
scripts use it to find a host's namespace and address, e.g.

  labctl inspect xy --json | jq -r '.nodes[] | select(.name=="server") | .interfaces[0].addrs[0]'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, _, err := labState(labName, args, 0, 0)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			fmt.Fprintf(out, "lab %s (%s), %s, impairments: %s, id %s\n", st.Lab, st.Source, st.Phase, backendWords(st.Backend), st.ID)
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NODE\tKIND\tNETNS\tINTERFACE\tADDRESS\tMAC\tPEER")
			for _, n := range st.Nodes {
				if len(n.Ifaces) == 0 {
					fmt.Fprintf(w, "%s\t%s\t%s\t-\t\t\t\n", n.Name, n.Kind, n.NS)
				}
				for k, i := range n.Ifaces {
					name, kind, ns := n.Name, n.Kind, n.NS
					if k > 0 {
						name, kind, ns = "", "", ""
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, kind, ns, i.Name, strings.Join(i.Addrs, ","), i.MAC, i.Peer)
				}
				for _, r := range n.Routes {
					fmt.Fprintf(w, "\t\t\troute %s\t\t\t\n", r)
				}
			}
			if err := w.Flush(); err != nil {
				return err
			}
			w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "\nLINK\tENDS\tVIA\tA->B\tB->A")
			for _, l := range st.Links {
				fmt.Fprintf(w, "%s\t%s:%s <-> %s:%s\t%s\t%s\t%s\n", l.ID, l.A.Node, l.A.Iface, l.B.Node, l.B.Iface, l.Via, l.AtoB, l.BtoA)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the state document as JSON")
	addLabFlag(cmd, &labName)
	return rootless(cmd)
}
