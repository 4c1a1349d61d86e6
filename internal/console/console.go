// Package console is labctl's Mininet-style console (`labctl cli`): a
// prompt where `<node> <command…>` runs the command inside that node, with
// node names in its arguments replaced by the nodes' addresses (`h2 ping -c1
// h1`), and built-ins act on the whole lab (pingall, iperf, link, netem,
// xterm, …). It reads a script the same way when its input is not a
// terminal, and then stops at the first command that fails.
//
// Commands run as root inside the node's network namespace, as Mininet's
// do. A command in the foreground owns the terminal: Ctrl-C reaches it and
// not the console. A command ending in `&` runs in the background with its
// output in a log file; background jobs end when the console exits, unless
// started with the `detach` prefix, which leaves them in the lab until
// `labctl down`.
package console

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/labctl/labctl/nodes"
	"github.com/peterh/liner"
)

// Prompt is what the console shows, as Mininet shows `mininet> `.
const Prompt = "labctl> "

// maxLine bounds one console line (a script's too).
const maxLine = 64 << 10

// Console is one console session on a lab.
type Console struct {
	// Lab is the lab the console drives; its state is reloaded before every
	// command, so links set from elsewhere are seen.
	Lab string
	// Self is the labctl binary: verbs the console shares with the CLI
	// (netem, logs) run through it, so they behave exactly as on the shell.
	Self string
	// Out and Err receive what the console and its commands print.
	Out, Err io.Writer
	// OwnsLab: exit takes the lab down (the console was opened by `up --cli`,
	// as `sudo mn` does).
	OwnsLab bool
	// Down takes the lab down when OwnsLab.
	Down func(ctx context.Context) error

	st          *nodes.State
	jobs        *jobTable
	interactive bool
	terms       []termWindow // tmux windows this console opened
	wentDown    bool

	mu     sync.Mutex
	cancel context.CancelFunc // the running built-in's, for Ctrl-C
}

func (c *Console) interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
	}
}

// errExit ends the console loop.
var errExit = errors.New("exit")

// statusError is a command that ran and failed with an exit status.
type statusError struct{ code int }

func (e statusError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// ExitCode is the status a failed console command (or script) ends with.
func ExitCode(err error) int {
	var se statusError
	if errors.As(err, &se) {
		return se.code
	}
	if err == nil {
		return 0
	}
	return 1
}

func (c *Console) init() error {
	st, err := nodes.Load(c.Lab)
	if err != nil {
		return err
	}
	c.st = st
	c.jobs = newJobTable(filepath.Join(nodes.Dir(c.Lab), "console"))
	return nil
}

// RunInteractive runs the console on the terminal until exit, quit or
// Ctrl-D, with line editing, history and completion.
func (c *Console) RunInteractive(ctx context.Context) error {
	if err := c.init(); err != nil {
		return err
	}
	defer c.close(ctx)
	c.interactive = true
	// Ctrl-C belongs to the foreground command; at the prompt it clears
	// the line. The console itself ignores SIGINT (by catching it).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	go func() {
		for range sigs {
			c.interrupt()
		}
	}()

	origMode, _ := liner.TerminalMode()
	ln := liner.NewLiner()
	defer ln.Close()
	// A closed terminal (SIGHUP) or a SIGTERM still ends the console's jobs
	// and windows, and gives the terminal back.
	ends := make(chan os.Signal, 1)
	signal.Notify(ends, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(ends)
	go func() {
		sig, ok := <-ends
		if !ok {
			return
		}
		_ = ln.Close()
		c.close(ctx)
		os.Exit(128 + int(sig.(syscall.Signal)))
	}()
	lineMode, _ := liner.TerminalMode()
	ln.SetCtrlCAborts(true)
	ln.SetTabCompletionStyle(liner.TabPrints)
	ln.SetWordCompleter(c.complete)
	hist := historyPath()
	if f, err := os.Open(hist); err == nil {
		_, _ = ln.ReadHistory(f)
		f.Close()
	}
	defer func() {
		if f, err := os.OpenFile(hist, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err == nil {
			_, _ = ln.WriteHistory(f)
			f.Close()
		}
	}()
	c.say("*** lab %s: %d nodes. Type `help` for the commands, `exit` or Ctrl-D to leave.", c.Lab, len(c.st.Nodes))
	for {
		c.jobs.reportDone(c.Out)
		line, err := ln.Prompt(Prompt)
		if errors.Is(err, liner.ErrPromptAborted) {
			continue
		}
		if err == io.EOF {
			fmt.Fprintln(c.Out)
			return nil
		}
		if err != nil {
			return err
		}
		if strings.TrimSpace(line) != "" {
			ln.AppendHistory(line)
		}
		// A command gets the terminal as the shell would give it.
		if origMode != nil {
			_ = origMode.ApplyMode()
		}
		err = c.Exec(ctx, line)
		if lineMode != nil {
			_ = lineMode.ApplyMode()
		}
		if errors.Is(err, errExit) {
			return nil
		}
		if err != nil && !errors.As(err, new(statusError)) {
			c.say("*** %v", err)
		}
		if c.wentDown {
			return nil
		}
	}
}

// RunScript runs the lines of r as console commands, in order, and stops
// at the first that fails; its error carries that command's status.
func (c *Console) RunScript(ctx context.Context, r io.Reader) error {
	if err := c.init(); err != nil {
		return err
	}
	defer c.close(ctx)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return c.script(ctx, r, "")
}

func (c *Console) script(ctx context.Context, r io.Reader, name string) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		err := c.Exec(ctx, line)
		c.jobs.reportDone(c.Out)
		if errors.Is(err, errExit) {
			return nil
		}
		if err != nil {
			where := fmt.Sprintf("line %d", n)
			if name != "" {
				where = name + ":" + where[5:]
			}
			if !errors.As(err, new(statusError)) {
				c.say("*** %s: %v", where, err)
				return statusError{code: 1}
			}
			c.say("*** %s: %q failed (%v)", where, strings.TrimSpace(line), err)
			return err
		}
		if c.wentDown {
			return nil
		}
		if ctx.Err() != nil {
			return statusError{code: 130}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading script: %w", err)
	}
	return nil
}

// close ends the console's background jobs and windows and, when it owns
// the lab, takes the lab down.
func (c *Console) close(ctx context.Context) {
	if n := c.jobs.stopAll(); n > 0 {
		c.say("*** stopped %d background job(s)", n)
	}
	if d := c.jobs.detached(); d > 0 {
		c.say("*** %d detached job(s) keep running in the lab until `labctl down %s`", d, c.Lab)
	}
	c.closeTerms()
	if c.wentDown {
		return
	}
	if c.OwnsLab && c.Down != nil {
		c.say("*** taking lab %s down (the console made it)", c.Lab)
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if err := c.Down(dctx); err != nil {
			c.say("*** down: %v", err)
		}
		return
	}
	c.say("*** lab %s stays up: `sudo labctl down %s` takes it down", c.Lab, c.Lab)
}

// Exec runs one console line.
func (c *Console) Exec(ctx context.Context, line string) error {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return nil
	}
	if len(line) > maxLine {
		return fmt.Errorf("line of %d bytes: the limit is %d", len(line), maxLine)
	}
	if err := c.reload(); err != nil {
		return err
	}
	word, rest := cut(line)
	if b, ok := builtins[word]; ok {
		// Ctrl-C interrupts a built-in (wait, iperf, pingall, …); a node's
		// command gets the terminal's SIGINT itself.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		c.mu.Lock()
		c.cancel = cancel
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			c.cancel = nil
			c.mu.Unlock()
		}()
		return b.run(ctx, c, rest)
	}
	if _, ok := c.st.Node(word); ok {
		return c.nodeCommand(ctx, word, rest, false)
	}
	return fmt.Errorf("unknown command or node %q (type `help`)", word)
}

// reload refreshes the lab's state; a lab taken down under the console
// ends it.
func (c *Console) reload() error {
	st, err := nodes.Load(c.Lab)
	if errors.Is(err, nodes.ErrNoLab) {
		c.wentDown = true
		c.say("*** lab %s is down: leaving the console", c.Lab)
		return errExit
	}
	if err != nil {
		return err
	}
	c.st = st
	return nil
}

func (c *Console) say(format string, a ...any) {
	fmt.Fprintf(c.Out, format+"\n", a...)
}

// cut splits the first word off a line.
func cut(line string) (string, string) {
	line = strings.TrimSpace(line)
	i := strings.IndexAny(line, " \t")
	if i < 0 {
		return line, ""
	}
	return line[:i], strings.TrimSpace(line[i+1:])
}

// substitute replaces every word of args that names a lab node with an
// address by that address, as Mininet's console does, and also the host
// part of a word NODE:PORT (`--server h1:9000`).
func (c *Console) substitute(args string) string {
	words := strings.Split(args, " ")
	for i, w := range words {
		name, port, hasPort := strings.Cut(w, ":")
		if hasPort && (port == "" || strings.Trim(port, "0123456789") != "") {
			continue
		}
		if n, ok := c.st.Node(name); ok {
			if a := n.Addr(); a != "" {
				words[i] = a
				if hasPort {
					words[i] += ":" + port
				}
			}
		}
	}
	return strings.Join(words, " ")
}

// hosts are the lab's nodes that run programs (hosts and routers), in
// the state's order.
func (c *Console) hosts() []string {
	var hs []string
	for _, n := range c.st.Nodes {
		if n.Kind != "switch" {
			hs = append(hs, n.Name)
		}
	}
	return hs
}

func (c *Console) nodeNames() []string {
	var ns []string
	for _, n := range c.st.Nodes {
		ns = append(ns, n.Name)
	}
	return ns
}

// complete completes the word under the cursor: a command or node name
// first, node names (and link ids) after.
func (c *Console) complete(line string, pos int) (string, []string, string) {
	head, tail := line[:pos], line[pos:]
	start := strings.LastIndexAny(head, " \t") + 1
	word := head[start:]
	var cands []string
	if strings.TrimSpace(head[:start]) == "" {
		for name := range builtins {
			cands = append(cands, name)
		}
	} else if first, _ := cut(head); first == "netem" {
		for _, l := range c.st.Links {
			cands = append(cands, l.ID)
		}
	}
	cands = append(cands, c.nodeNames()...)
	var out []string
	for _, s := range cands {
		if strings.HasPrefix(s, word) {
			out = append(out, s+" ")
		}
	}
	sort.Strings(out)
	return head[:start], out, tail
}

func historyPath() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), ".labctl_history")
	}
	return filepath.Join(home, ".labctl_history")
}
