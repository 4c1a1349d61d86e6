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
			if err := engineLink(lab, link); err != nil {
				return err
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
			if err := netem.Capture(ctx, lab, link, point, w); err != nil {
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

// engineLink checks that a lab is up with the userspace backend and that
// the link goes through its engine, with a clear message if not.
func engineLink(lab, link string) error {
	netem.EngineRoot = nodes.StateRoot
	st, err := nodes.Load(lab)
	if err != nil {
		return err
	}
	l, ok := st.Link(link)
	if !ok {
		var ids []string
		for _, l := range st.Links {
			ids = append(ids, l.ID)
		}
		return &exitError{code: 2, err: fmt.Errorf("lab %q has no link %q (links: %v)", lab, link, ids)}
	}
	if l.Via != netem.ViaTAP {
		return fmt.Errorf("lab %q: link %q is a plain veth (backend %s), not a userspace engine link: capture and faults need `backend: userspace`, and on labs of more than %d links an impairment in the lab file: %w",
			lab, link, st.Backend, netem.MaxEngineLinks, netem.ErrUnsupported)
	}
	return nil
}
