package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/spf13/cobra"
)

func init() { registerVerb(newVerifyCmd) }

// verifyReport is what `verify --json` prints.
type verifyReport struct {
	Lab     string        `json:"lab"`
	Backend string        `json:"backend"`
	Links   []verifyLink  `json:"links"`
	Checks  []netem.Check `json:"checks"`
	Verdict string        `json:"verdict"` // PASS or FAIL
}

type verifyLink struct {
	ID      string                          `json:"id"`
	Probe   netem.ProbeResult               `json:"probe"`
	Goodput map[string]*netem.GoodputResult `json:"goodput,omitempty"` // by direction
}

func newVerifyCmd() *cobra.Command {
	var (
		asJSON, all bool
		labName     string
		probes      int
		rateTime    time.Duration
		slack       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify [LAB] [--json] [--all]",
		Short: "Measure every impaired link and compare with its configured impairment (PASS/FAIL per line)",
		Long: `Measure every impaired link of a running lab, each direction, between the
link's two ends, and print configured vs measured with a verdict per line:
one-way delay (median), RTT (median), loss, duplicates, reordering, and
with a rate, TCP goodput. Exits 1 if any line FAILs.

How: for the run, the two ends get temporary link-local addresses
(169.254.123.1/30 and .2/30; on a switch, on its bridge) that are removed
after, so probes cross exactly that link whatever the lab's addressing.
UDP probes (sequence-numbered, timestamped; one per 2 ms and at most a
tenth of the link's rate, a few seconds per link) go A -> B and B echoes each one; both sockets
are in this process, so one monotonic clock gives each one-way delay. The
rate is a bounded TCP bulk transfer per rate-limited direction.

Predictions and tolerances (see the netem package): delay = configured +
the probe frame's serialisation, within 2 ms + 5% + a quarter of the jitter;
loss = 1-(1-loss)(1-corrupt) (a corrupted datagram is dropped by the
receiving kernel), within 4 binomial standard deviations + 0.5 points;
goodput = rate x (MTU-52)/(MTU+14), within 10%. Lines marked INFO are
measured but not judged (for example reordering under jitter, or goodput
on a lossy direction).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, _, err := labState(labName, args, 0, 0)
			if err != nil {
				return err
			}
			lab := st.Lab
			ctx, cancel := signalContext()
			defer cancel()
			rep := verifyReport{Lab: lab, Backend: st.Backend, Verdict: netem.Pass, Links: []verifyLink{}, Checks: []netem.Check{}}
			for _, l := range st.Links {
				if !all && !l.Impaired() {
					continue
				}
				vl, checks, err := verifyOne(ctx, l, probes, rateTime, slack)
				if err != nil {
					return err
				}
				rep.Links = append(rep.Links, vl)
				rep.Checks = append(rep.Checks, checks...)
				if !asJSON {
					for _, c := range checks {
						fmt.Fprintln(cmd.OutOrStdout(), c)
					}
				}
			}
			for _, c := range rep.Checks {
				if c.Verdict == netem.Fail {
					rep.Verdict = netem.Fail
				}
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else if len(rep.Links) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "lab %q has no impaired link (--all measures the clean ones too)\n", lab)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d links measured, backend %s\n", rep.Verdict, len(rep.Links), rep.Backend)
			}
			if rep.Verdict == netem.Fail {
				return &exitError{code: 1, err: errors.New("verify: measured impairments differ from the configured ones")}
			}
			return nil
		},
	}
	addLabFlag(cmd, &labName)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the measurements and verdicts as JSON")
	cmd.Flags().BoolVar(&all, "all", false, "measure clean links too")
	cmd.Flags().IntVar(&probes, "probes", 1000, "UDP probes per link (fewer on slow links, to stay under a tenth of the rate)")
	cmd.Flags().DurationVar(&rateTime, "rate-time", 3*time.Second, "length of each TCP goodput transfer")
	cmd.Flags().DurationVar(&slack, "slack", 0, "widen every delay tolerance by this much (slow, loaded or emulated machines add delay of their own)")
	return cmd
}

// verifyOne measures one link: probes both ways and, per rate-limited
// direction, a TCP transfer. The temporary probe addresses are removed
// whatever happens.
func verifyOne(ctx context.Context, l netem.Link, probes int, rateTime, slack time.Duration) (vl verifyLink, checks []netem.Check, err error) {
	a, b, undo, err := netem.AttachProbeAddrs(l)
	if err != nil {
		return vl, nil, err
	}
	defer func() { err = errors.Join(err, undo()) }()
	o := netem.PlanProbes(l, probes, 5*time.Second)
	o.Slack = slack
	r, err := netem.Probe(ctx, a, b, o)
	if err != nil {
		return vl, nil, fmt.Errorf("link %q: %w", l.ID, err)
	}
	vl = verifyLink{ID: l.ID, Probe: r, Goodput: map[string]*netem.GoodputResult{}}
	good := map[netem.Dir]*netem.GoodputResult{}
	for _, d := range []netem.Dir{netem.AtoB, netem.BtoA} {
		if l.Spec(d).Rate == 0 {
			continue
		}
		from, to := a, b
		if d == netem.BtoA {
			from, to = b, a
		}
		g, err := netem.Goodput(ctx, from, to, rateTime)
		if err != nil {
			return vl, nil, fmt.Errorf("link %q %s: %w", l.ID, d, err)
		}
		good[d], vl.Goodput[d.String()] = &g, &g
	}
	return vl, netem.Judge(l, r, good, o), nil
}
