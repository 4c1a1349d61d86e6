package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/proto/stopwait"
)

func init() {
	registerApp(newStopwaitServerCmd)
	registerApp(newStopwaitClientCmd)
}

func newStopwaitServerCmd() *cobra.Command {
	var (
		listen string
		port   int
		udp    bool
		srv    stopwait.Server
	)
	cmd := &cobra.Command{
		Use:   "stopwait-server",
		Short: "Stop-and-wait server: ACK/NACK with CRC-32, over TCP or UDP (docs/PROTOCOLS.md section 2)",
		Long: `Stop-and-wait server (seed 000). Answers each "<seq> <crc32> <message>"
frame with ACK or NACK and prints each message once, in order; TCHAU ends a
session with BYE. With --udp, sessions are keyed by the client's address.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			srv.Out = cmd.OutOrStdout()
			return runStopwaitServer(ctx, &srv, joinListen(listen, port), udp)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "address to listen on, host or host:port (default: all addresses)")
	f.IntVar(&port, "port", 9000, "port, unless --listen has one")
	f.BoolVar(&udp, "udp", false, "serve over UDP instead of TCP")
	f.IntVar(&srv.MaxSessions, "max-sessions", stopwait.DefaultMaxSessions, "sessions served at once (the seed's max_threads); others wait")
	f.DurationVar(&srv.IdleTimeout, "idle-timeout", stopwait.DefaultIdleTimeout, "a session with no frame for this long ends")
	f.DurationVar(&srv.Pause, "pause", stopwait.DefaultPause, "TCP: a frame sent without a newline ends after this quiet time (negative: lines only)")
	f.DurationVar(&srv.EndedAge, "ended-age", stopwait.DefaultEndedAge, "UDP: how long an ended session is remembered, so a late duplicate is never delivered twice")
	f.IntVar(&srv.MaxEnded, "max-ended", stopwait.DefaultMaxEnded, "UDP: ended sessions remembered at once; at the limit new sessions wait")
	return cmd
}

func runStopwaitServer(ctx context.Context, srv *stopwait.Server, addr string, udp bool) error {
	var lc net.ListenConfig
	if udp {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return fmt.Errorf("stopwait: listen udp %q: %w", addr, err)
		}
		return srv.ServePacket(ctx, pc)
	}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("stopwait: listen tcp %q: %w", addr, err)
	}
	return srv.Serve(ctx, ln)
}

func newStopwaitClientCmd() *cobra.Command {
	var (
		server string
		udp    bool
		faulty bool
		c      stopwait.Client
	)
	cmd := &cobra.Command{
		Use:   "stopwait-client [LINE...]",
		Short: "Stop-and-wait client: sends messages reliably over a (simulated) faulty channel",
		Long: `Stop-and-wait client (seed 000). Sends the LINE arguments, or else stdin
lines; each line is split on "||" into messages, and TCHAU (or the end of
the input) ends the session. Retransmits on NACK and on --timeout, up to
--tries times per message. Prints one outcome line per message.

Faulty channel (off by default, reproducible with --seed): --corrupt,
--wrong-seq, --drop and --delay are the shares of transmissions hit by each
fault; --faulty is the seed's channel (0.125 of each unless given).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if faulty {
				for _, s := range []struct {
					name  string
					share *float64
				}{{"corrupt", &c.Faults.Corrupt}, {"wrong-seq", &c.Faults.WrongSeq}, {"drop", &c.Faults.Drop}, {"delay", &c.Faults.Delay}} {
					if !cmd.Flags().Changed(s.name) {
						*s.share = 0.125
					}
				}
			}
			if err := c.Faults.Validate(); err != nil {
				return &exitError{code: 2, err: err}
			}
			var input io.Reader = cmd.InOrStdin()
			if len(args) > 0 {
				input = strings.NewReader(strings.Join(args, "\n") + "\n")
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			c.Out = cmd.OutOrStdout()
			return runStopwaitClient(ctx, &c, server, udp, input)
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "127.0.0.1:9000", "server host:port")
	f.BoolVar(&udp, "udp", false, "send datagrams (with the UDP checksum off) instead of using TCP")
	f.DurationVar(&c.Timeout, "timeout", stopwait.DefaultTimeout, "retransmission timer")
	f.IntVar(&c.MaxTries, "tries", stopwait.DefaultMaxTries, "transmissions per message before giving up")
	f.Float64Var(&c.Faults.Corrupt, "corrupt", 0, "share of transmissions sent corrupted (0..1)")
	f.Float64Var(&c.Faults.WrongSeq, "wrong-seq", 0, "share sent with a wrong sequence number")
	f.Float64Var(&c.Faults.Drop, "drop", 0, "share dropped (not sent)")
	f.Float64Var(&c.Faults.Delay, "delay", 0, "share sent late, by up to --delay-max")
	f.DurationVar(&c.Faults.MaxDelay, "delay-max", 0, "longest delay (default: 2 × --timeout)")
	f.BoolVar(&faulty, "faulty", false, "the seed's channel: 0.125 of each fault unless given")
	f.Uint64Var(&c.Faults.Seed, "seed", 1, "seed of the simulated faults")
	return cmd
}

func runStopwaitClient(ctx context.Context, c *stopwait.Client, server string, udp bool, input io.Reader) error {
	network := "tcp"
	if udp {
		network = "udp"
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, network, server)
	if err != nil {
		return fmt.Errorf("stopwait: %w", err)
	}
	return c.Run(ctx, conn, input)
}
