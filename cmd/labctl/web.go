package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/labctl/labctl/internal/web"
	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/nodes"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func init() { registerVerb(newWebCmd) }

type webFlags struct {
	listen  string
	anyPort bool   // up --web: another port when the default one is taken
	urlFile string // up --web: where the daemon writes its URL
}

func newWebCmd() *cobra.Command {
	var f webFlags
	var labName string
	cmd := &cobra.Command{
		Use:   "web [LAB | -l LAB] [--listen 127.0.0.1:8350]",
		Short: "Serve a live page of the labs: topology, impairments, counters, programs, output, checks",
		Long: `Serve one page (embedded in labctl, works offline) showing every lab on
this machine, or only LAB: the topology with each link's impairment per
direction, live per-link counters (packets, bytes, rate, drops by cause), the
programs' states and output, and the checks. From the page an impairment can
be changed (as with 'labctl netem set'), a link taken down or up, a program
restarted and a userspace link's capture downloaded.

It listens on loopback unless --listen says otherwise. It prints a URL with a
token: changes need it (POST from the page itself), and on any address other
than loopback reading does too. Nothing on the page runs a command in a host.`,
		Example: `  sudo labctl web
  sudo labctl web course --listen 0.0.0.0:8350   # from another machine: the token is needed`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab := labName // "": every lab
			if len(args) == 1 {
				lab = args[0]
			}
			if lab != "" {
				if _, err := nodes.Load(lab); err != nil {
					return err
				}
			}
			ln, err := net.Listen("tcp", f.listen)
			if err != nil && f.anyPort && errors.Is(err, syscall.EADDRINUSE) {
				host, _, _ := net.SplitHostPort(f.listen)
				ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
			}
			if err != nil {
				return fmt.Errorf("web: listen on %q: %w", f.listen, err)
			}
			ctx, stop := signalContext()
			defer stop()
			srv, err := web.New(ctx, ln.Addr().String(), web.Options{Lab: lab, Spec: netemSetForm{}, Log: logger()})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "*** labctl web: open %s\n", srv.URL())
			host, _, _ := net.SplitHostPort(ln.Addr().String())
			if web.IsLoopback(host) {
				fmt.Fprintf(out, "    (reading needs no token on loopback; changes need the token in this URL)\n")
			} else {
				fmt.Fprintf(out, "    (not loopback: reading and changes need the token in this URL)\n")
			}
			if f.urlFile != "" {
				if err := writeURLFile(f.urlFile, srv.URL()); err != nil {
					return err
				}
			}
			return srv.Serve(ctx, ln)
		},
	}
	cmd.Flags().StringVar(&f.listen, "listen", web.DefaultListen, "listen on `ADDRESS`, HOST:PORT (anything but loopback needs the token to read too)")
	cmd.Flags().BoolVar(&f.anyPort, "any-port", false, "if the port is taken, listen on another one")
	cmd.Flags().StringVar(&f.urlFile, "url-file", "", "write the URL to this file once listening")
	cmd.Flags().StringVarP(&labName, "lab", "l", "", "serve only the lab `LAB` (default: every lab on this machine)")
	_ = cmd.Flags().MarkHidden("any-port")
	_ = cmd.Flags().MarkHidden("url-file")
	return cmd
}

func writeURLFile(path, url string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(url+"\n"), 0o600); err != nil {
		return fmt.Errorf("web: %w", err)
	}
	return os.Rename(tmp, path)
}

// startWeb is `up --web`: it starts `labctl web LAB` as a daemon of the
// lab (it goes down with the lab) and prints its URL.
func startWeb(ctx context.Context, st *nodes.State) (string, error) {
	urlFile := filepath.Join(nodes.Dir(st.Lab), "web.url")
	_ = os.Remove(urlFile)
	d, err := nodes.StartDaemon(st, "web", []string{"web", st.Lab, "--listen", web.DefaultListen, "--any-port", "--url-file", urlFile})
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(urlFile); err == nil {
			return strings.TrimSpace(string(b)), nil
		}
		if !d.Alive() {
			return "", fmt.Errorf("lab %q: the web server stopped at start (see %s)", st.Lab, filepath.Join(nodes.Dir(st.Lab), "web.log"))
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("lab %q: the web server did not start: %w", st.Lab, ctx.Err())
		case <-tick.C:
		}
	}
}

// netemSetForm is the page's impairment form made of `labctl netem set`'s
// own flags: the same fields, parsed and validated by the same code, with
// the same messages.
type netemSetForm struct{}

func (netemSetForm) flags(f *specFlags) *pflag.FlagSet {
	fs := pflag.NewFlagSet("netem set", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	f.register(fs)
	return fs
}

func (n netemSetForm) Fields() []web.SpecField {
	var out []web.SpecField
	n.flags(&specFlags{}).VisitAll(func(fl *pflag.Flag) {
		out = append(out, web.SpecField{Name: fl.Name, Type: fl.Value.Type(), Help: fl.Usage})
	})
	return out
}

func (n netemSetForm) Parse(fields map[string]string) (netem.Spec, []web.FieldError) {
	var f specFlags
	fs := n.flags(&f)
	var errs []web.FieldError
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		v := strings.TrimSpace(fields[name])
		if v == "" {
			continue
		}
		// One flag at a time, as the command line would have it: each
		// field gets its own message, pflag's and topo's words.
		if err := fs.Parse([]string{"--" + name + "=" + v}); err != nil {
			errs = append(errs, web.FieldError{Field: name, Error: err.Error()})
		}
	}
	if len(errs) > 0 {
		return netem.Spec{}, errs
	}
	s, err := f.spec()
	if err != nil {
		return netem.Spec{}, []web.FieldError{{Error: err.Error()}}
	}
	return s, nil
}

func (n netemSetForm) Format(s netem.Spec) map[string]string {
	m := map[string]string{}
	n.flags(&specFlags{s: s}).VisitAll(func(fl *pflag.Flag) {
		if v := fl.Value.String(); v != "" {
			m[fl.Name] = v
		}
	})
	if g := s.LossGE; g != nil {
		m["loss-ge"] = strings.Join([]string{g.P.String(), g.R.String(), g.LossBad.String(), g.LossGood.String()}, ",")
	}
	return m
}
