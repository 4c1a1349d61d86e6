package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/nodes"
	"github.com/spf13/cobra"
)

func init() { registerVerb(newNetemCmd) }

func newNetemCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "netem",
		Short: "Change, show or reset the impairments of a running lab's links",
		Long: `Change, show or reset the impairments of a running lab's links.

A link A-B has two directions; each is impaired on its sending end's egress.
'delay 25ms' on both directions adds 50 ms to the RTT between A and B; on one
direction, 25 ms. Between two hosts behind a switch, a packet crosses the
sender's link (host -> switch) and the receiver's link (switch -> host):
the one-way delay is the sum of those two directions.`,
	}
	cmd.AddCommand(newNetemSetCmd(), newNetemShowCmd(), newNetemResetCmd())
	return cmd
}

// dirsFrom picks the directions `--from NODE` means: both when from is
// empty, else the one NODE sends on.
func dirsFrom(l *netem.Link, from string) ([]netem.Dir, error) {
	switch from {
	case "":
		return []netem.Dir{netem.AtoB, netem.BtoA}, nil
	case l.A.Node:
		return []netem.Dir{netem.AtoB}, nil
	case l.B.Node:
		return []netem.Dir{netem.BtoA}, nil
	}
	return nil, &exitError{code: 2, err: fmt.Errorf("link %q: --from %q: want %q or %q", l.ID, from, l.A.Node, l.B.Node)}
}

// liveLink loads a lab and finds one of its links and its backend.
func liveLink(lab, id string) (*nodes.State, *netem.Link, netem.Backend, error) {
	st, err := nodes.Load(lab)
	if err != nil {
		return nil, nil, nil, err
	}
	l, ok := st.Link(id)
	if !ok {
		ids := make([]string, 0, len(st.Links))
		for _, x := range st.Links {
			ids = append(ids, strconv.Quote(x.ID))
		}
		return nil, nil, nil, &exitError{code: 2, err: fmt.Errorf("lab %q: no link %q (links: %s)", lab, id, strings.Join(ids, ", "))}
	}
	b, err := nodes.Backend(st)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("lab %q was built with no impairment backend (%q): %w", lab, st.Backend, err)
	}
	return st, l, b, nil
}

func dirLabel(l netem.Link, d netem.Dir) string {
	if d == netem.BtoA {
		return l.B.Node + " -> " + l.A.Node
	}
	return l.A.Node + " -> " + l.B.Node
}

func newNetemSetCmd() *cobra.Command {
	var f specFlags
	var from, labName string
	cmd := &cobra.Command{
		Use:   "set [LAB] LINK [--from NODE] [--delay D] [--jitter D] [--loss P] ...",
		Short: "Replace a link's impairment, both directions or the one --from NODE sends on",
		Long: `Replace a live link's impairment. The flags given make the whole new
impairment of the direction: what is not given is clean (so 'set --loss 5%'
after 'set --delay 50ms' leaves no delay). Without --from both directions get
it; with --from NODE only what NODE sends. Link ids are as 'labctl inspect'
lists them, e.g. "h1-s1". The lab is -l LAB, or the first argument, or else
the only lab up. There is one flag per lab-file field (docs/labfile.md).

  labctl netem set h1-s1 --delay 50ms --jitter 5ms --loss 10%
  labctl netem set lab1 h1-s1 --from h1 --rate 10mbit
  labctl netem set lab1 h1-s1 --delay 20ms --reorder 25% --gap 5
  labctl netem set lab1 h1-s1 --loss-ge 1%,30%`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := f.spec()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			lab, rest, err := labArgs(labName, args, 1, 1)
			if err != nil {
				return err
			}
			st, l, b, err := liveLink(lab, rest[0])
			if err != nil {
				return err
			}
			dirs, err := dirsFrom(l, from)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := nodes.SetImpairment(ctx, st, l, from, s); err != nil {
				return err
			}
			for _, d := range dirs {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s (%s): %s [%s backend]\n", l.ID, d, dirLabel(*l, d), s, b.Name())
			}
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&from, "from", "", "impair only what this node sends on the link")
	addLabFlag(cmd, &labName)
	return cmd
}

func newNetemResetCmd() *cobra.Command {
	var labName string
	cmd := &cobra.Command{
		Use:   "reset [LAB] [LINK]",
		Short: "Make a link (or every link of the lab) clean, both directions",
		Long: `Make a link clean both ways, or every link of the lab. The lab is -l LAB,
or the first argument (one argument is the lab if a lab of that name is up,
else a link of the only lab up), or else the only lab up.`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, rest, err := labArgs(labName, args, 0, 1)
			if err != nil {
				return err
			}
			st, err := nodes.Load(lab)
			if err != nil {
				return err
			}
			ids := rest
			if len(ids) == 0 {
				for _, l := range st.Links {
					ids = append(ids, l.ID)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, id := range ids {
				st, l, _, err := liveLink(lab, id)
				if err != nil {
					return err
				}
				if err := nodes.SetImpairment(ctx, st, l, "", netem.Spec{}); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: clean both ways\n", id)
			}
			return nil
		},
	}
	addLabFlag(cmd, &labName)
	return cmd
}

// showRow is one direction of one link in `netem show`.
type showRow struct {
	Lab        string      `json:"lab"`
	Link       string      `json:"link"`
	Dir        string      `json:"dir"`
	From       string      `json:"from"`
	To         string      `json:"to"`
	Backend    string      `json:"backend"`
	Via        string      `json:"via"`
	Configured netem.Spec  `json:"configured"`
	Live       *netem.Spec `json:"live,omitempty"` // what the backend reports; absent when it cannot be read
	LiveError  string      `json:"live_error,omitempty"`
}

func newNetemShowCmd() *cobra.Command {
	var asJSON bool
	var labName string
	cmd := &cobra.Command{
		Use:   "show [LAB] [--json]",
		Short: "Show each link's impairment per direction: configured, and as the backend reports it",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, _, err := labState(labName, args, 0, 0)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rows := showRows(ctx, st)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				return enc.Encode(rows)
			}
			return printShow(cmd.OutOrStdout(), rows)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	addLabFlag(cmd, &labName)
	return cmd
}

func showRows(ctx context.Context, st *nodes.State) []showRow {
	b, berr := nodes.Backend(st)
	var rows []showRow
	for _, l := range st.Links {
		var live [2]*netem.Spec
		var lerr error
		if berr != nil {
			lerr = berr
		} else if ab, ba, err := b.Show(ctx, l); err != nil {
			lerr = err
		} else {
			live = [2]*netem.Spec{&ab, &ba}
		}
		for i, d := range []netem.Dir{netem.AtoB, netem.BtoA} {
			from, to := l.A.Node, l.B.Node
			if d == netem.BtoA {
				from, to = to, from
			}
			r := showRow{Lab: st.Lab, Link: l.ID, Dir: d.String(), From: from, To: to, Backend: st.Backend, Via: l.Via,
				Configured: l.Spec(d), Live: live[i]}
			if lerr != nil {
				r.LiveError = lerr.Error()
			}
			rows = append(rows, r)
		}
	}
	return rows
}

func printShow(out io.Writer, rows []showRow) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "LINK\tDIRECTION\tBACKEND\tCONFIGURED\tLIVE")
	for _, r := range rows {
		live := "?"
		switch {
		case r.Live != nil:
			live = r.Live.String()
		case r.LiveError != "":
			live = "unreadable: " + r.LiveError
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Link, r.From+" -> "+r.To, r.Backend, r.Configured, live)
	}
	return w.Flush()
}
