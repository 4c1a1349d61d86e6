package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/topo"
	"github.com/spf13/cobra"
)

func init() { registerVerb(newFaultCmd) }

func newFaultCmd() *cobra.Command {
	var (
		labName string
		f       netem.Fault
		dur     time.Duration
		del     time.Duration
		aftr    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "fault [LAB] LINK ACTION [flags]",
		Short: "Script a fault on a userspace link: drop/duplicate/delay/corrupt the Nth matching packet, or take the link down",
		Long: `Script a fault on a link that goes through the userspace engine.

ACTION is one of:
  drop | duplicate | delay | corrupt   the --nth packet (from now) that matches
                                      --proto, --port, --from and --data
  down [--for D] [--after D]          drop everything both ways (a cut cable)
  up                                  bring the link back up now
  list                                show pending and fired faults
  clear                               disarm pending faults and bring the link up

The lab is -l LAB, or the first argument, or else the only lab up.

Examples:
  labctl fault client-s1 down --for 2s
  labctl fault lab1 client-s1 drop --nth 3 --proto udp --port 9000 --from client
  labctl fault lab1 client-s1 corrupt --nth 2 --proto tcp --data --byte 10`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, rest, err := labArgs(labName, args, 2, 2)
			if err != nil {
				return err
			}
			link, action := rest[0], rest[1]
			b, l, err := capableLink(lab, link)
			if err != nil {
				return err
			}
			fl, ok := b.(netem.Faulter)
			if !ok {
				return fmt.Errorf("lab %q: the %s backend cannot script faults (the userspace backend can: `backend: userspace`): %w", lab, b.Name(), netem.ErrUnsupported)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out := cmd.OutOrStdout()
			switch action {
			case "up":
				return fl.LinkUp(ctx, *l)
			case "clear":
				return fl.ClearFaults(ctx, *l)
			case "list":
				pending, fired, err := fl.ListFaults(ctx, *l)
				if err != nil {
					return err
				}
				for _, p := range pending {
					fmt.Fprintln(out, "pending:", p)
				}
				for _, p := range fired {
					fmt.Fprintln(out, "fired:  ", p)
				}
				return nil
			case netem.FaultDown:
				f = netem.Fault{Action: netem.FaultDown, For: topo.Duration(dur), After: topo.Duration(aftr)}
			case netem.FaultDrop, netem.FaultDuplicate, netem.FaultDelay, netem.FaultCorrupt:
				f.Action = action
				f.Delay = topo.Duration(del)
			default:
				return &exitError{code: 2, err: fmt.Errorf("action %q: want drop, duplicate, delay, corrupt, down, up, list or clear", action)}
			}
			if f.Action != netem.FaultDown && !cmd.Flags().Changed("nth") {
				return &exitError{code: 2, err: errors.New("say which packet: --nth N (1 is the next matching packet)")}
			}
			if err := fl.AddFaults(ctx, *l, []netem.Fault{f}); err != nil {
				return err
			}
			fmt.Fprintf(out, "link %s: %s\n", link, f)
			return nil
		},
	}
	addLabFlag(cmd, &labName)
	fl := cmd.Flags()
	fl.IntVar(&f.Nth, "nth", 0, "act on the Nth matching packet, counted from now")
	fl.StringVar(&f.Match.Proto, "proto", "", "match tcp, udp or icmp")
	fl.Uint16Var(&f.Match.Port, "port", 0, "match this source or destination port")
	fl.StringVar(&f.Match.From, "from", "", "match packets sent by this node (default: either end)")
	fl.BoolVar(&f.Match.Data, "data", false, "match only packets with L4 payload (not bare TCP ACKs)")
	fl.DurationVar(&del, "delay", 0, "extra delay, for action delay")
	fl.IntVar(&f.Byte, "byte", 0, "payload byte to corrupt (all its bits flipped; checksums fixed)")
	fl.DurationVar(&dur, "for", 0, "how long the link stays down (default: until 'labctl fault LINK up')")
	fl.DurationVar(&aftr, "after", 0, "take the link down after this long")
	return cmd
}
