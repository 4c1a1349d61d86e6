package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/proto/filesvc"
)

func init() {
	registerApp(newFilesvcServerCmd)
	registerApp(newFilesvcClientCmd)
}

// appContext is cancelled by SIGINT or SIGTERM, so servers stop cleanly.
func appContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// defaultStateDir is where servers keep state that must outlive them:
// $XDG_STATE_HOME/labctl, else ~/.local/state/labctl.
func defaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "labctl")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "labctl")
	}
	return filepath.Join(os.TempDir(), "labctl-state")
}

// outside reports an error if path lies inside dir.
func outside(path, dir string) error {
	ap, err1 := filepath.Abs(path)
	ad, err2 := filepath.Abs(dir)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	rel, err := filepath.Rel(ad, ap)
	if err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("%q is inside the repository %q; keep it elsewhere", path, dir)
	}
	return nil
}

func newFilesvcServerCmd() *cobra.Command {
	var (
		host, repo, stateDir, logPath string
		port                          int
		cfg                           filesvc.Config
	)
	cmd := &cobra.Command{
		Use:   "filesvc-server",
		Short: "CP372 file server: names, echo, status, list, get, put (docs/PROTOCOLS.md section 3)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if logPath == "" {
				logPath = filepath.Join(stateDir, "filesvc-"+strconv.Itoa(port)+".jsonl")
			}
			if err := outside(logPath, repo); err != nil {
				return &exitError{code: 2, err: fmt.Errorf("--log: %w", err)}
			}
			cfg.Repo, cfg.LogPath = repo, logPath
			cfg.Logger, cfg.Out = logger(), cmd.OutOrStdout()
			ctx, stop := appContext()
			defer stop()
			return runFilesvcServer(ctx, net.JoinHostPort(host, strconv.Itoa(port)), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&host, "host", "", "address to listen on (default: all)")
	f.IntVar(&port, "port", 12345, "TCP port")
	f.StringVar(&repo, "repo", "repository", "repository folder (created if missing)")
	f.StringVar(&stateDir, "state-dir", defaultStateDir(), "folder for the connection log")
	f.StringVar(&logPath, "log", "", "connection log, JSON lines (default <state-dir>/filesvc-<port>.jsonl)")
	f.IntVar(&cfg.MaxClients, "max-clients", 3, "clients served at once; more get \"Server full, try later\"")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", 5*time.Minute, "time to send a whole command line")
	f.DurationVar(&cfg.IOTimeout, "io-timeout", 30*time.Second, "per read/write during transfers and replies")
	f.Int64Var(&cfg.MinRate, "min-rate", 4096, "bytes/s a transfer may not fall below over any --rate-window (after one window of grace)")
	f.DurationVar(&cfg.RateWindow, "rate-window", 10*time.Second, "the sliding window of --min-rate")
	f.DurationVar(&cfg.Pause, "pause", 200*time.Millisecond, "a command sent without a newline ends after this quiet time (negative: lines only)")
	f.Int64Var(&cfg.MaxFileSize, "max-file-size", 1<<30, "largest upload in bytes")
	f.IntVar(&cfg.MaxLine, "max-line", 4096, "longest command line in bytes")
	return cmd
}

func runFilesvcServer(ctx context.Context, addr string, cfg filesvc.Config) error {
	srv, err := filesvc.NewServer(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("filesvc: listen %q: %w", addr, err)
	}
	fmt.Fprintf(cfg.Out, "listening on %s\n", ln.Addr())
	return srv.Serve(ctx, ln)
}

func newFilesvcClientCmd() *cobra.Command {
	var (
		server     string
		cmds       []string
		noProgress bool
		cfg        filesvc.ClientConfig
	)
	cmd := &cobra.Command{
		Use:   "filesvc-client [COMMAND...]",
		Short: "CP372 file client: runs COMMANDs (or --cmd, or lines from stdin), then exits",
		Long: `CP372 file client. Commands go to the server as typed, except:
  get NAME         download NAME into --download-dir (size and END checked)
  put PATH [NAME]  upload a local file (SHA-256 checked)
Without commands it reads them from stdin. It sends exit at the end.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Progress = filesvc.TerminalProgress(os.Stderr, !noProgress)
			ctx, stop := appContext()
			defer stop()
			return runFilesvcClient(ctx, server, append(cmds, args...), cfg, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "127.0.0.1:12345", "server host:port")
	f.StringArrayVar(&cmds, "cmd", nil, "a command to run (repeatable; before positional ones)")
	f.StringVar(&cfg.DownloadDir, "download-dir", "downloads", "where get saves files")
	f.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "per read/write while waiting for the server")
	f.BoolVar(&noProgress, "no-progress", false, "no progress bar (none anyway when stderr is not a terminal)")
	return cmd
}

func runFilesvcClient(ctx context.Context, server string, cmds []string, cfg filesvc.ClientConfig, in io.Reader, out io.Writer) error {
	c, err := filesvc.Dial(ctx, server, cfg)
	if errors.Is(err, filesvc.ErrServerFull) {
		fmt.Fprintln(out, filesvc.FullMessage)
		return &exitError{code: 1, err: err}
	}
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Run(ctx, cmds, in, out)
}
