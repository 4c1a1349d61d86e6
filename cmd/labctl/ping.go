package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/labctl/labctl/nodes"
	"github.com/spf13/cobra"
)

func init() {
	registerVerb(newPingCmd)
	registerVerb(newPingAllCmd)
}

func newPingCmd() *cobra.Command {
	var (
		labName  string
		count    int
		interval time.Duration
		timeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "ping [LAB] A B",
		Short: "Ping from node A to node B (ICMP echo, no iputils needed)",
		Args:  cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, ab, err := labState(labName, args, 2, 2)
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			r := nodes.Ping(ctx, st, ab[0], ab[1], count, interval, timeout)
			if r.Err != nil {
				return r.Err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "--- %s -> %s (%s): %d sent, %d received, %.0f%% loss", r.From, r.To, r.Addr, r.Sent, r.Received, lossPct(r))
			if min, avg, max, err := nodes.RTTStats(r.RTTs); err == nil {
				fmt.Fprintf(out, ", rtt min/avg/max = %s/%s/%s", ms(min), ms(avg), ms(max))
			}
			fmt.Fprintln(out)
			if r.Received == 0 {
				return &exitError{code: 1, err: fmt.Errorf("%s cannot reach %s", r.From, r.To)}
			}
			return nil
		},
	}
	addLabFlag(cmd, &labName)
	cmd.Flags().IntVarP(&count, "count", "c", 3, "echo requests to send")
	cmd.Flags().DurationVarP(&interval, "interval", "i", 200*time.Millisecond, "time between requests")
	cmd.Flags().DurationVarP(&timeout, "timeout", "W", time.Second, "how long to wait for each reply")
	return cmd
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/1e6) }

func lossPct(r nodes.PingResult) float64 {
	if r.Sent == 0 {
		return 100
	}
	return 100 * float64(r.Sent-r.Received) / float64(r.Sent)
}

func newPingAllCmd() *cobra.Command {
	var labName string
	cmd := &cobra.Command{
		Use:   "pingall [LAB]",
		Short: "Ping between every pair of hosts, with a Mininet-like summary",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, _, err := labState(labName, args, 0, 0)
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			if !pingAll(ctx, cmd.OutOrStdout(), st) {
				return &exitError{code: 1, err: fmt.Errorf("lab %s: some hosts cannot reach each other", st.Lab)}
			}
			return nil
		},
	}
	addLabFlag(cmd, &labName)
	return cmd
}

// pingAll prints Mininet's pingall report and says whether every pair
// reached each other.
func pingAll(ctx context.Context, out io.Writer, st *nodes.State) bool {
	return nodes.PingAllReport(ctx, out, st)
}
