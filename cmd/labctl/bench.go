package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/internal/bench"
	"github.com/labctl/labctl/topo"
)

func init() { registerVerb(newBenchCmd) }

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Side-by-side benchmarks on a throwaway lab",
	}
	cmd.AddCommand(newBenchRUDPCmd())
	return cmd
}

func newBenchRUDPCmd() *cobra.Command {
	var (
		loss, rate, format, out, from string
		rtt, capD                     time.Duration
		size                          int64
	)
	cmd := &cobra.Command{
		Use:   "rudp",
		Short: "Goodput vs loss: /get's sack and seed, TCP cubic and BBR (the file server's get), and the link's limit, on one link",
		Long: `Brings up a two-host lab (h1 serves, h2 fetches through a link with --rate
and --rtt/2 of delay each way), and at each --loss level (both directions)
measures in one run: the reliable UDP download with the sack and the seed
algorithms, the file server's get over TCP with cubic and with BBR
(TCP_CONGESTION on the server's socket), and the link's limit (a UDP stream
paced above the line rate) beside the analytic rate × payload/frame. The
engine decides loss before its rate queue, so that limit holds at every
loss level. A transfer still running after --cap is stopped and its goodput
taken from the bytes delivered by then (marked capped). Writes
rudp-bench.{md,csv,json,png,svg} into --out and prints --format.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from != "" {
				return redrawBenchRUDP(cmd.OutOrStdout(), from, out, format, rate, rtt, size)
			}
			cfg, err := benchRUDPConfig(loss, rate, rtt, size, capD)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if format != "table" && format != "csv" && format != "json" {
				return &exitError{code: 2, err: fmt.Errorf("--format %q: want table, csv or json", format)}
			}
			ctx, stop := signalContext()
			defer stop()
			rows, err := bench.RunRUDP(ctx, cfg)
			if err != nil {
				return err
			}
			if err := writeBenchRUDP(out, cfg, rows); err != nil {
				return err
			}
			return printBench(cmd.OutOrStdout(), format, rows)
		},
	}
	f := cmd.Flags()
	f.StringVar(&loss, "loss", "0,5,10,20,30", "loss levels in percent, each direction")
	f.StringVar(&rate, "rate", "10mbit", "the link's rate, each direction")
	f.DurationVar(&rtt, "rtt", 20*time.Millisecond, "round-trip time (half of it is the delay each way)")
	f.Int64Var(&size, "size", 20_000_000, "file size in bytes")
	f.DurationVar(&capD, "cap", 60*time.Second, "stop a transfer still running after this long (goodput from the bytes delivered; marked capped)")
	f.StringVar(&format, "format", "table", "what to print: table (Markdown), csv or json")
	f.StringVar(&out, "out", ".", "folder for rudp-bench.{md,csv,json,png,svg}")
	f.StringVar(&from, "from", "", "no run: redraw the table and chart from a run's rudp-bench.json")
	return cmd
}

func benchRUDPConfig(loss, rate string, rtt time.Duration, size int64, capD time.Duration) (bench.RUDPConfig, error) {
	var cfg bench.RUDPConfig
	for _, s := range strings.Split(loss, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
		if err != nil || v < 0 || v >= 100 {
			return cfg, fmt.Errorf("--loss %q: want percentages in 0-99, comma-separated", loss)
		}
		cfg.Loss = append(cfg.Loss, v)
	}
	r, err := topo.ParseRate(rate)
	if err != nil || r == 0 {
		return cfg, fmt.Errorf("--rate: %w", err)
	}
	if rtt < 0 || size <= 0 || capD <= 0 {
		return cfg, fmt.Errorf("--rtt, --size and --cap must be positive")
	}
	bin, err := os.Executable()
	if err != nil {
		return cfg, err
	}
	cfg.Bin, cfg.RateMbit, cfg.RTT, cfg.Size, cfg.Cap, cfg.Log = bin, float64(r)/1e6, rtt, size, capD, logger()
	return cfg, nil
}

func writeBenchRUDP(dir string, cfg bench.RUDPConfig, rows []bench.Row) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	base := filepath.Join(dir, "rudp-bench")
	for ext, w := range map[string]func(io.Writer, []bench.Row) error{".md": bench.WriteMarkdown, ".csv": bench.WriteCSV, ".json": bench.WriteJSON} {
		f, err := os.Create(base + ext)
		if err != nil {
			return err
		}
		if err := w(f, rows); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	title := fmt.Sprintf("goodput vs loss: %g Mbit/s, %v RTT, %d MB", cfg.RateMbit, cfg.RTT, cfg.Size/1_000_000)
	return bench.WriteChart(base, title, rows)
}

func redrawBenchRUDP(w io.Writer, from, out, format, rate string, rtt time.Duration, size int64) error {
	f, err := os.Open(from)
	if err != nil {
		return err
	}
	defer f.Close()
	rows, err := bench.ReadJSON(f)
	if err != nil {
		return err
	}
	r, err := topo.ParseRate(rate)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--rate: %w", err)}
	}
	cfg := bench.RUDPConfig{RateMbit: float64(r) / 1e6, RTT: rtt, Size: size}
	if err := writeBenchRUDP(out, cfg, rows); err != nil {
		return err
	}
	return printBench(w, format, rows)
}

func printBench(w io.Writer, format string, rows []bench.Row) error {
	switch format {
	case "csv":
		return bench.WriteCSV(w, rows)
	case "json":
		return bench.WriteJSON(w, rows)
	}
	return bench.WriteMarkdown(w, rows)
}
