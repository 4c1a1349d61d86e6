package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/proto/chat"
)

func init() {
	registerApp(newChatServerCmd)
	registerApp(newChatClientCmd)
}

func newChatServerCmd() *cobra.Command {
	var (
		host string
		port int
		cfg  chat.Config
		udp  udpServerFlags
	)
	cmd := &cobra.Command{
		Use:   "chat-server",
		Short: "Chat server: broadcast, /who, /msg, /upload, /files, /download, /get over reliable UDP (docs/PROTOCOLS.md sections 4-5)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Logger, cfg.Out = logger(), cmd.OutOrStdout()
			ctx, stop := appContext()
			defer stop()
			srv, err := udp.server(host, cfg.Logger)
			if err != nil {
				return err
			}
			cfg.Get = chat.RUDPGet(srv)
			defer srv.Wait()
			return runChatServer(ctx, net.JoinHostPort(host, strconv.Itoa(port)), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&host, "host", "", "address to listen on (default: all)")
	f.IntVar(&port, "port", 5002, "TCP port")
	f.StringVar(&cfg.Repo, "repo", "chat-files", "shared file folder (created if missing)")
	f.IntVar(&cfg.MaxClients, "max-clients", 100, "connections at once; more get \"ERROR server full, try later\"")
	f.DurationVar(&cfg.JoinTimeout, "join-timeout", 30*time.Second, "time to send an acceptable nickname")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", 10*time.Minute, "time to send a whole line once joined")
	f.DurationVar(&cfg.IOTimeout, "io-timeout", 30*time.Second, "per read/write during transfers and replies")
	f.Int64Var(&cfg.MinRate, "min-rate", 4096, "bytes/s an upload may not fall below over any --rate-window (after one window of grace)")
	f.DurationVar(&cfg.RateWindow, "rate-window", 10*time.Second, "the sliding window of --min-rate")
	f.DurationVar(&cfg.Pause, "pause", 200*time.Millisecond, "a line sent without a newline ends after this quiet time (negative: lines only)")
	f.Int64Var(&cfg.MaxFileSize, "max-file-size", 1<<30, "largest upload in bytes")
	f.IntVar(&cfg.MaxLine, "max-line", 4096, "longest line in bytes")
	f.IntVar(&cfg.QueueBytes, "queue-bytes", 1<<20, "outbound queue per client, in bytes (each line counts 64 more); a client whose queue is full is disconnected at once")
	udp.register(cmd)
	return cmd
}

func runChatServer(ctx context.Context, addr string, cfg chat.Config) error {
	srv, err := chat.NewServer(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("chat: listen %q: %w", addr, err)
	}
	fmt.Fprintf(cfg.Out, "listening on %s\n", ln.Addr())
	return srv.Serve(ctx, ln)
}

func newChatClientCmd() *cobra.Command {
	var (
		server, nick string
		lines        []string
		noProgress   bool
		cfg          chat.ClientConfig
	)
	cmd := &cobra.Command{
		Use:   "chat-client",
		Short: "Chat client: prints what arrives while sending --line flags or stdin lines",
		Long: `Chat client. Prints every line that arrives while it sends input lines:
the --line flags if any, else lines from stdin (the first is the nickname
unless --nick is given). Besides lines for the server it understands:
  /upload PATH [NAME]  send a local file (SHA-256 checked)
  /sleep DURATION      pause (scripts)
  /wait TEXT           wait for a received line containing TEXT (scripts)
  /get NAME [seed|sack] download NAME over reliable UDP (progress bar, goodput)
Downloads (/download NAME, /get NAME) are saved into --download-dir. /quit is sent
when the input ends.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Progress = chat.TerminalProgress(os.Stderr, !noProgress)
			cfg.Diag = cmd.ErrOrStderr()
			ctx, stop := appContext()
			defer stop()
			return runChatClient(ctx, server, nick, lines, cfg, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "127.0.0.1:5002", "server host:port")
	f.StringVar(&nick, "nick", "", "nickname (default: the first input line)")
	f.StringArrayVar(&lines, "line", nil, "a line to send (repeatable); without any, stdin is read")
	f.DurationVar(&cfg.Delay, "delay", 0, "pause between input lines")
	f.DurationVar(&cfg.WaitTimeout, "wait-timeout", 10*time.Second, "limit for /wait")
	f.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "per read/write of transfers, and to wait for replies")
	f.DurationVar(&cfg.Pause, "pause", 200*time.Millisecond, "a received line without a newline ends after this quiet time (negative: lines only)")
	f.IntVar(&cfg.MaxLine, "max-line", 4096, "longest line sent, in bytes (the server's --max-line): longer ones are refused here")
	f.StringVar(&cfg.DownloadDir, "download-dir", "downloads", "where downloads are saved")
	f.BoolVar(&noProgress, "no-progress", false, "no progress bar (none anyway when stderr is not a terminal)")
	registerUDPClientFlags(cmd, &cfg.UDP)
	return cmd
}

func runChatClient(ctx context.Context, server, nick string, lines []string, cfg chat.ClientConfig, in io.Reader, out io.Writer) error {
	c, err := chat.Dial(ctx, server, cfg, out)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Run(ctx, nick, lines, in)
}
