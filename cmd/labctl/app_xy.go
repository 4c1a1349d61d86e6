package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/proto/xy"
)

func init() {
	registerApp(newXYServerCmd)
	registerApp(newXYClientCmd)
}

func newXYServerCmd() *cobra.Command {
	var (
		listen string
		port   int
		srv    xy.Server
	)
	cmd := &cobra.Command{
		Use:   "xy-server",
		Short: "X/Y ordering server: pairs two clients, tells both whose message arrived first (docs/PROTOCOLS.md section 1)",
		Long: `X/Y ordering server (seed 001). The first client to connect is X, the
second Y; once both are connected each is told its letter, each sends
"Client X: <name>" or just "<name>" (a newline or a short pause ends it), and both get "X: Alice received before Y: Bob" (or the
other way round) by the order the messages arrived. By default the server
exits after one acknowledged pair; --serve-forever keeps pairing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			srv.Out = cmd.OutOrStdout()
			return runXYServer(ctx, &srv, joinListen(listen, port))
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "address to listen on, host or host:port (default: all addresses)")
	f.IntVar(&port, "port", 12000, "TCP port, unless --listen has one")
	f.BoolVar(&srv.ServeForever, "serve-forever", false, "serve pair after pair instead of exiting after the first acknowledgment")
	f.DurationVar(&srv.IdleTimeout, "idle-timeout", xy.DefaultIdleTimeout, "time a paired client has to send its message")
	f.DurationVar(&srv.WaitTimeout, "wait-timeout", xy.DefaultWaitTimeout, "time a lone client waits for a partner")
	f.IntVar(&srv.MaxClients, "max-clients", xy.DefaultMaxClients, "connections held at once; beyond it the server stops accepting")
	f.DurationVar(&srv.Pause, "pause", xy.DefaultPause, "a message sent without a newline ends after this quiet time (negative: newline-terminated lines only)")
	return cmd
}

func runXYServer(ctx context.Context, srv *xy.Server, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("xy: listen %q: %w", addr, err)
	}
	return srv.Serve(ctx, ln)
}

func newXYClientCmd() *cobra.Command {
	var (
		server string
		c      xy.Client
	)
	cmd := &cobra.Command{
		Use:   "xy-client",
		Short: "X/Y ordering client: learns its letter, sends its name, prints the reply",
		Long: `X/Y ordering client (seed 001). Waits for "Client X connected" (or Y),
sends "Client X: <name>" (or, with --bare, the name alone without a
newline, as the seed's figures do) with --name or a name typed on stdin,
then prints the server's acknowledgment. Exits 1 if the server answers
ERROR.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			c.In, c.Prompt, c.Out = cmd.InOrStdin(), cmd.ErrOrStderr(), cmd.OutOrStdout()
			return runXYClient(ctx, &c, server)
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "127.0.0.1:12000", "server host:port")
	f.StringVar(&c.Name, "name", "", "name to send (default: typed on stdin once the letter is known)")
	f.DurationVar(&c.Timeout, "timeout", 10*time.Minute, "longest wait for each server line (0: no limit)")
	f.BoolVar(&c.Bare, "bare", false, "send the seed figures' form: the name alone, without \"Client X: \" and without a newline")
	f.DurationVar(&c.Pause, "pause", xy.DefaultPause, "a server line sent without a newline ends after this quiet time (negative: lines only)")
	return cmd
}

func runXYClient(ctx context.Context, c *xy.Client, server string) error {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return fmt.Errorf("xy: %w", err)
	}
	return c.Run(ctx, conn)
}

// joinListen makes a listen address from --listen (a host, or host:port)
// and --port.
func joinListen(listen string, port int) string {
	if _, _, err := net.SplitHostPort(listen); err == nil {
		return listen
	}
	return net.JoinHostPort(listen, strconv.Itoa(port))
}
