package console

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/nodes"
	"github.com/vishvananda/netlink"
)

// builtin is one console command.
type builtin struct {
	usage string // after the name
	help  string
	run   func(ctx context.Context, c *Console, args string) error
}

var builtins map[string]builtin

func init() {
	builtins = map[string]builtin{
		"help":     {"", "this list", cmdHelp},
		"nodes":    {"", "list the nodes", cmdNodes},
		"net":      {"", "each node's interfaces and what they connect to", cmdNet},
		"links":    {"", "every link and the state of its two ends", cmdLinks},
		"intfs":    {"", "each node's interfaces", cmdIntfs},
		"dump":     {"", "every node with its interfaces, addresses and namespace", cmdDump},
		"pingall":  {"", "ping between every pair of hosts", cmdPingall},
		"pingpair": {"", "ping between the first two hosts", cmdPingpair},
		"iperf":    {"[A B] [-t SECS]", "TCP throughput from A to B (default: first and last host)", cmdIperf},
		"iperfudp": {"BW [A B] [-t SECS]", "UDP throughput at BW (e.g. 10M) from A to B", cmdIperfUDP},
		"link":     {"A B up|down", "take the link between nodes A and B (or link id A) down or up", cmdLink},
		"netem":    {"LINK [--delay D --loss P …] | LINK reset | show", "set, reset or show impairments, as `labctl netem set`", cmdNetem},
		"logs":     {"[HOST[/PROGRAM]]", "what the lab's programs printed", cmdLogs},
		"checks":   {"", "the lab's check results", cmdChecks},
		"jobs":     {"", "the background jobs", cmdJobs},
		"kill":     {"%N [SIGNAL]", "end a background job (all it started)", cmdKill},
		"wait":     {"[%N…]", "wait for background jobs to end", cmdWait},
		"detach":   {"NODE CMD", "run CMD in NODE in the background, kept after the console exits", cmdDetach},
		"xterm":    {"NODE…", "a terminal per node: xterm with DISPLAY, else a tmux window", cmdXterm},
		"sh":       {"CMD", "run CMD on the machine (outside the lab)", cmdSh},
		"source":   {"FILE", "run the console commands in FILE", cmdSource},
		"time":     {"CMD", "run a console command and print how long it took", cmdTime},
		"exit":     {"", "leave the console (Ctrl-D too)", cmdExit},
		"quit":     {"", "leave the console", cmdExit},
	}
}

func cmdHelp(ctx context.Context, c *Console, args string) error {
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(c.Out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE CMD…\trun CMD inside NODE; node names in CMD become addresses; `&` runs it in the background")
	for _, n := range names {
		b := builtins[n]
		fmt.Fprintf(tw, "%s %s\t%s\n", n, b.usage, b.help)
	}
	return tw.Flush()
}

func cmdNodes(ctx context.Context, c *Console, args string) error {
	c.say("available nodes are: \n%s", strings.Join(c.nodeNames(), " "))
	return nil
}

// peerIface is the interface at the other end of one of node's interfaces.
func (c *Console) peerIface(node string, i nodes.IfaceState) string {
	if p, ok := c.st.Node(i.Peer); ok {
		for _, pi := range p.Ifaces {
			if pi.Link == i.Link {
				return p.Name + "-" + pi.Name
			}
		}
	}
	return i.Peer
}

func cmdNet(ctx context.Context, c *Console, args string) error {
	for _, n := range c.st.Nodes {
		parts := []string{n.Name}
		for _, i := range n.Ifaces {
			parts = append(parts, n.Name+"-"+i.Name+":"+c.peerIface(n.Name, i))
		}
		c.say("%s", strings.Join(parts, " "))
	}
	return nil
}

func cmdIntfs(ctx context.Context, c *Console, args string) error {
	for _, n := range c.st.Nodes {
		var names []string
		for _, i := range n.Ifaces {
			names = append(names, i.Name)
		}
		c.say("%s: %s", n.Name, strings.Join(names, ","))
	}
	return nil
}

func cmdDump(ctx context.Context, c *Console, args string) error {
	for _, n := range c.st.Nodes {
		var parts []string
		for _, i := range n.Ifaces {
			a := "None"
			if len(i.Addrs) > 0 {
				a = strings.Join(i.Addrs, ",")
			}
			parts = append(parts, i.Name+":"+a)
		}
		kind := strings.ToUpper(n.Kind[:1]) + n.Kind[1:]
		c.say("<%s %s: %s netns=%s>", kind, n.Name, strings.Join(parts, ","), n.NS)
	}
	return nil
}

// operState reads whether an interface is up (administratively and with
// a carrier).
func operState(e netem.End) string {
	state := "MISSING"
	_ = netem.WithHandle(e.NS, func(h *netlink.Handle) error {
		lk, err := h.LinkByName(e.Iface)
		if err != nil {
			return err
		}
		a := lk.Attrs()
		switch {
		case a.Flags&1 == 0: // IFF_UP
			state = "DOWN"
		case a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown:
			state = "OK"
		default:
			state = strings.ToUpper(a.OperState.String())
		}
		return nil
	})
	return state
}

func cmdLinks(ctx context.Context, c *Console, args string) error {
	for _, l := range c.st.Links {
		c.say("%s-%s<->%s-%s (%s %s)  [%s]", l.A.Node, l.A.Iface, l.B.Node, l.B.Iface, operState(l.A), operState(l.B), l.ID)
	}
	return nil
}

func cmdPingall(ctx context.Context, c *Console, args string) error {
	if !nodes.PingAllReport(ctx, c.Out, c.st) {
		return statusError{code: 1}
	}
	return nil
}

func cmdPingpair(ctx context.Context, c *Console, args string) error {
	hs := c.hosts()
	if len(hs) < 2 {
		return fmt.Errorf("lab %s has fewer than two hosts", c.Lab)
	}
	c.say("*** Ping: testing ping reachability")
	ok := 0
	for _, p := range [][2]string{{hs[0], hs[1]}, {hs[1], hs[0]}} {
		r := nodes.Ping(ctx, c.st, p[0], p[1], 1, time.Second, time.Second)
		to := "X"
		if r.Received > 0 {
			to, ok = p[1], ok+1
		}
		c.say("%s -> %s", p[0], to)
	}
	c.say("*** Results: %d%% dropped (%d/2 received)", 100*(2-ok)/2, ok)
	if ok < 2 {
		return statusError{code: 1}
	}
	return nil
}

func cmdLink(ctx context.Context, c *Console, args string) error {
	f := strings.Fields(args)
	var id, dir string
	switch len(f) {
	case 3:
		var ok bool
		if id, ok = c.st.LinkBetween(f[0], f[1]); !ok {
			return fmt.Errorf("no link between %q and %q", f[0], f[1])
		}
		dir = f[2]
	case 2:
		if _, ok := c.st.Link(f[0]); !ok {
			return fmt.Errorf("no link %q (see `links`)", f[0])
		}
		id, dir = f[0], f[1]
	default:
		return fmt.Errorf("usage: link A B up|down")
	}
	if dir != "up" && dir != "down" {
		return fmt.Errorf("link %s: %q: want up or down", id, dir)
	}
	return nodes.SetLinkUp(ctx, c.st, id, dir == "up")
}

// runSelf runs one of labctl's own verbs on this lab, so that it behaves
// exactly as on the shell.
func (c *Console) runSelf(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, c.Self, args...)
	cmd.Stdout, cmd.Stderr = c.Out, c.Err
	return exitStatus(cmd.Run())
}

func cmdNetem(ctx context.Context, c *Console, args string) error {
	f := strings.Fields(args)
	switch {
	case len(f) == 0 || f[0] == "show":
		return c.runSelf(ctx, append([]string{"netem", "show", c.Lab}, f[min(1, len(f)):]...)...)
	case len(f) == 2 && f[1] == "reset":
		return c.runSelf(ctx, "netem", "reset", c.Lab, f[0])
	}
	return c.runSelf(ctx, append([]string{"netem", "set", c.Lab}, f...)...)
}

func cmdLogs(ctx context.Context, c *Console, args string) error {
	return c.runSelf(ctx, append([]string{"logs", c.Lab}, strings.Fields(args)...)...)
}

func cmdChecks(ctx context.Context, c *Console, args string) error {
	res, err := nodes.LoadResult(c.Lab)
	if err != nil {
		return fmt.Errorf("lab %s: no check results yet (%w)", c.Lab, err)
	}
	for _, ch := range res.Checks {
		v := "PASS"
		if !ch.Pass {
			v = "FAIL"
		}
		line := fmt.Sprintf("  %s  %s", v, ch.Title)
		if ch.Detail != "" && !ch.Pass {
			line += ": " + ch.Detail
		}
		c.say("%s", line)
	}
	c.say("*** %d passed, %d failed", res.Passed, res.Failed)
	if res.Failed > 0 {
		return statusError{code: 1}
	}
	return nil
}

func cmdJobs(ctx context.Context, c *Console, args string) error {
	c.jobs.list(c.Out)
	return nil
}

var signals = map[string]syscall.Signal{
	"TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP,
}

func cmdKill(ctx context.Context, c *Console, args string) error {
	f := strings.Fields(args)
	if len(f) == 0 || len(f) > 2 {
		return fmt.Errorf("usage: kill %%N [TERM|KILL|INT|HUP]")
	}
	j, err := c.jobs.find(f[0])
	if err != nil {
		return err
	}
	sig := syscall.SIGTERM
	if len(f) == 2 {
		s, ok := signals[strings.TrimPrefix(strings.ToUpper(f[1]), "SIG")]
		if !ok {
			return fmt.Errorf("signal %q: want TERM, KILL, INT or HUP", f[1])
		}
		sig = s
	}
	j.stop(sig)
	c.jobs.reportDone(c.Out)
	return nil
}

func cmdWait(ctx context.Context, c *Console, args string) error {
	var js []*job
	for _, s := range strings.Fields(args) {
		j, err := c.jobs.find(s)
		if err != nil {
			return err
		}
		js = append(js, j)
	}
	return c.jobs.wait(ctx, js)
}

func cmdDetach(ctx context.Context, c *Console, args string) error {
	node, rest := cut(args)
	if _, ok := c.st.Node(node); !ok {
		return fmt.Errorf("usage: detach NODE CMD (no node %q)", node)
	}
	return c.nodeCommand(ctx, node, rest, true)
}

// cmdSh runs a command on the machine itself, as Mininet's `sh` does.
func cmdSh(ctx context.Context, c *Console, args string) error {
	if args == "" {
		return fmt.Errorf("usage: sh CMD")
	}
	cmd := exec.Command("/bin/sh", "-c", args)
	cmd.Stdout, cmd.Stderr = c.Out, c.Err
	if c.interactive {
		cmd.Stdin = os.Stdin
	}
	// Every thread not inside nsdo.Do is in the machine's own namespace.
	if err := cmd.Start(); err != nil {
		return err
	}
	return waitStatus(ctx, cmd)
}

func cmdSource(ctx context.Context, c *Console, args string) error {
	if args == "" {
		return fmt.Errorf("usage: source FILE")
	}
	f, err := os.Open(args)
	if err != nil {
		return err
	}
	defer f.Close()
	return c.script(ctx, f, args)
}

func cmdTime(ctx context.Context, c *Console, args string) error {
	t0 := time.Now()
	err := c.Exec(ctx, args)
	c.say("*** Elapsed time: %.6f secs", time.Since(t0).Seconds())
	return err
}

func cmdExit(ctx context.Context, c *Console, args string) error { return errExit }
