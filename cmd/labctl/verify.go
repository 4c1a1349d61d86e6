package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/labctl/labctl/netem/measure"
	"github.com/spf13/cobra"
)

func init() { registerVerb(newVerifyCmd) }

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

Predictions and tolerances (see the netem/measure package): delay = configured +
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
			out := cmd.OutOrStdout()
			rep, err := measure.Verify(ctx, lab, st.Backend, st.Links, measure.VerifyOptions{
				All: all, Probes: probes, RateTime: rateTime, Slack: slack,
				OnLink: func(_ measure.LinkResult, checks []measure.Check) {
					if !asJSON {
						for _, c := range checks {
							fmt.Fprintln(out, c)
						}
					}
				},
			})
			if err != nil {
				return err
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
			if rep.Verdict == measure.Fail {
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
