package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/labctl/labctl/nodes"
	"github.com/labctl/labctl/topo"
	"github.com/spf13/cobra"
)

func init() { registerVerb(newGraphCmd) }

// graphNode and graphLink are what a drawing needs, from a lab file or a
// running lab alike.
type graphNode struct{ name, kind, addr string }
type graphLink struct {
	a, b       string
	atob, btoa string
}

func newGraphCmd() *cobra.Command {
	var (
		src     labSource
		format  string
		labName string
	)
	cmd := &cobra.Command{
		Use:   "graph [LAB | -l LAB | -f FILE | --topo SPEC] [--format dot|mermaid]",
		Short: "Draw a lab as Graphviz DOT or Mermaid",
		Long: `Draw a lab: a running lab (-l LAB, or LAB when a lab of that name is up),
a built-in lab, a lab file or a topology. With none of them, the only lab
up, or the default lab (` + topo.DefaultLab + `) when none is. Impaired links are
labelled with their impairment per direction, as configured now.

  labctl graph | dot -Tpng > lab.png
  labctl graph xy | dot -Tpng > xy.png
  labctl graph --topo tree,2,2 --format mermaid`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ns []graphNode
			var ls []graphLink
			name := ""
			if st, err := graphRunning(labName, args, src); err != nil {
				return err
			} else if st != nil {
				name, ns, ls = graphFromState(st)
			}
			if name == "" {
				lab, err := resolveLab(args, src)
				if err != nil {
					return err
				}
				name, ns, ls = graphFromLab(lab)
			}
			switch format {
			case "dot":
				writeDOT(cmd.OutOrStdout(), name, ns, ls)
			case "mermaid":
				writeMermaid(cmd.OutOrStdout(), ns, ls)
			default:
				return &exitError{code: 2, err: fmt.Errorf("format %q: want dot or mermaid", format)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&src.file, "file", "f", "", "lab file (YAML)")
	cmd.Flags().StringVar(&src.topo, "topo", "", "Mininet-style topology")
	cmd.Flags().StringVar(&format, "format", "dot", "dot or mermaid")
	addLabFlag(cmd, &labName)
	return rootless(cmd)
}

// graphRunning returns the running lab that graph's arguments mean, or
// nil when they mean a lab to build (a file, a topology, a built-in lab).
func graphRunning(labName string, args []string, src labSource) (*nodes.State, error) {
	if labName != "" {
		if len(args) > 0 || src.file != "" || src.topo != "" {
			return nil, &exitError{code: 2, err: errors.New("name the lab once: LAB, -l LAB, -f FILE or --topo SPEC")}
		}
		return nodes.Load(labName)
	}
	if src.file != "" || src.topo != "" {
		return nil, nil
	}
	if len(args) == 1 {
		if !labIsUp(args[0]) {
			return nil, nil
		}
		return nodes.Load(args[0])
	}
	labs, err := nodes.List()
	if err != nil || len(labs) == 0 {
		return nil, nil
	}
	lab, err := oneLab(nil, func() ([]string, error) { return labs, nil })
	if err != nil {
		return nil, err
	}
	return nodes.Load(lab)
}

func graphFromLab(lab *topo.Lab) (string, []graphNode, []graphLink) {
	var ns []graphNode
	for _, n := range lab.Nodes {
		ns = append(ns, graphNode{n.Name, string(n.Kind), n.Addr()})
	}
	var ls []graphLink
	for _, l := range lab.Links {
		ls = append(ls, graphLink{l.A.Node, l.B.Node, l.Spec(l.A.Node).String(), l.Spec(l.B.Node).String()})
	}
	return lab.Name, ns, ls
}

func graphFromState(st *nodes.State) (string, []graphNode, []graphLink) {
	var ns []graphNode
	for _, n := range st.Nodes {
		ns = append(ns, graphNode{n.Name, n.Kind, n.Addr()})
	}
	var ls []graphLink
	for _, l := range st.Links {
		ls = append(ls, graphLink{l.A.Node, l.B.Node, l.AtoB.String(), l.BtoA.String()})
	}
	return st.Lab, ns, ls
}

func linkLabel(l graphLink) string {
	switch {
	case l.atob == "clean" && l.btoa == "clean":
		return ""
	case l.atob == l.btoa:
		return l.atob
	}
	return fmt.Sprintf("%s→%s: %s\\n%s→%s: %s", l.a, l.b, l.atob, l.b, l.a, l.btoa)
}

func writeDOT(w io.Writer, name string, ns []graphNode, ls []graphLink) {
	fmt.Fprintf(w, "graph %q {\n  node [fontname=\"Helvetica\"];\n", name)
	for _, n := range ns {
		shape := map[string]string{"host": "box", "switch": "ellipse", "router": "diamond"}[n.kind]
		label := n.name
		if n.addr != "" {
			label += "\\n" + n.addr
		}
		fmt.Fprintf(w, "  %q [shape=%s, label=\"%s\"];\n", n.name, shape, label)
	}
	for _, l := range ls {
		attr := ""
		if lbl := linkLabel(l); lbl != "" {
			attr = fmt.Sprintf(" [label=\"%s\", color=red]", lbl)
		}
		fmt.Fprintf(w, "  %q -- %q%s;\n", l.a, l.b, attr)
	}
	fmt.Fprintln(w, "}")
}

func writeMermaid(w io.Writer, ns []graphNode, ls []graphLink) {
	fmt.Fprintln(w, "graph LR")
	for _, n := range ns {
		label := n.name
		if n.addr != "" {
			label += "<br/>" + n.addr
		}
		open, close := "[", "]"
		switch n.kind {
		case "switch":
			open, close = "((", "))"
		case "router":
			open, close = "{", "}"
		}
		fmt.Fprintf(w, "  %s%s\"%s\"%s\n", mermaidID(n.name), open, label, close)
	}
	for _, l := range ls {
		if lbl := linkLabel(l); lbl != "" {
			fmt.Fprintf(w, "  %s ---|\"%s\"| %s\n", mermaidID(l.a), strings.ReplaceAll(lbl, "\\n", "<br/>"), mermaidID(l.b))
		} else {
			fmt.Fprintf(w, "  %s --- %s\n", mermaidID(l.a), mermaidID(l.b))
		}
	}
}

// mermaidID keeps node names that Mermaid reserves ("end") from breaking
// the chart.
func mermaidID(s string) string { return "n_" + strings.ReplaceAll(s, "-", "_") }
