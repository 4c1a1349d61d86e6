package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/nodes"
	"github.com/spf13/cobra"
)

func init() { registerVerb(newCaptureCmd) }

func newCaptureCmd() *cobra.Command {
	var (
		labName  string
		file     string
		duration time.Duration
		point    string
	)
	cmd := &cobra.Command{
		Use:   "capture [LAB] LINK -w FILE [--duration D]",
		Short: "Capture a userspace link's frames, both directions, to a pcapng file",
		Long: `Capture every frame of a link that goes through the userspace engine, in
both directions (pcapng interface 0 is A->B, 1 is B->A), until Ctrl-C or
--duration. --point delivered (default) records what the receiving end gets,
after loss, duplication, corruption and delay; --point sent records what the
sending end sent, dropped packets included. -w - writes to stdout, e.g.
  labctl capture LAB LINK -w - | tshark -r -`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return &exitError{code: 2, err: errors.New("say where to write: -w FILE (or -w - for stdout)")}
			}
			lab, rest, err := labArgs(labName, args, 1, 1)
			if err != nil {
				return err
			}
			link := rest[0]
			b, l, err := capableLink(lab, link)
			if err != nil {
				return err
			}
			c, ok := b.(netem.Capturer)
			if !ok {
				return fmt.Errorf("lab %q: the %s backend cannot capture (the userspace backend can: `backend: userspace`): %w", lab, b.Name(), netem.ErrUnsupported)
			}
			ctx, stop := signalContext()
			defer stop()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			out := os.Stdout
			if file != "-" {
				f, err := os.Create(file)
				if err != nil {
					return fmt.Errorf("capture: %w", err)
				}
				defer f.Close()
				out = f
			}
			w := bufio.NewWriterSize(out, 1<<16)
			if err := c.Capture(ctx, *l, point, w); err != nil {
				return err
			}
			if err := w.Flush(); err != nil {
				return fmt.Errorf("capture: %w", err)
			}
			if file != "-" {
				return out.Close()
			}
			return nil
		},
	}
	addLabFlag(cmd, &labName)
	cmd.Flags().StringVarP(&file, "write", "w", "", "pcapng file to write (- for stdout)")
	cmd.Flags().DurationVar(&duration, "duration", 0, "stop after this long (default: until Ctrl-C)")
	cmd.Flags().StringVar(&point, "point", "delivered", "what to record: delivered or sent")
	return cmd
}

// capableLink loads a running lab and finds one of its links and the
// backend that serves it; the caller asks the backend for a capability.
func capableLink(lab, link string) (netem.Backend, *netem.Link, error) {
	st, err := nodes.Load(lab)
	if err != nil {
		return nil, nil, err
	}
	l, ok := st.Link(link)
	if !ok {
		var ids []string
		for _, l := range st.Links {
			ids = append(ids, l.ID)
		}
		return nil, nil, &exitError{code: 2, err: fmt.Errorf("lab %q has no link %q (links: %v)", lab, link, ids)}
	}
	b, err := nodes.Backend(st)
	if err != nil {
		return nil, nil, err
	}
	return b, l, nil
}
