package console

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/labctl/labctl/nodes"
)

// termWindow is a tmux window the console opened, closed when it exits.
type termWindow struct {
	target string // session:window
}

// Terminals is how `xterm`/`labctl term` open one shell per host.
type Terminals struct {
	Lab  string
	Self string // the labctl binary
	// Display, when set, opens real xterms; otherwise tmux windows.
	Display string
	// InTmux: the caller runs inside tmux ($TMUX), so windows open there.
	InTmux bool
}

// Session is the tmux session that holds a lab's windows when the caller
// is not inside tmux.
func Session(lab string) string { return "labctl-" + lab }

// shellCommand is the command line of a shell inside node whose prompt and
// title carry the node's name.
func (t Terminals) shellCommand(node string) (string, error) {
	rc := filepath.Join(nodes.Dir(t.Lab), "console", "rc-"+node)
	if err := os.MkdirAll(filepath.Dir(rc), 0o755); err != nil {
		return "", err
	}
	body := fmt.Sprintf(`[ -f ~/.bashrc ] && . ~/.bashrc
PS1='(%[1]s) \w\$ '
PROMPT_COMMAND='printf "\033]0;%[1]s (lab %[2]s)\007"'
`, node, t.Lab)
	if err := os.WriteFile(rc, []byte(body), 0o644); err != nil {
		return "", err
	}
	shell := "bash --rcfile " + shq(rc) + " -i"
	if _, err := exec.LookPath("bash"); err != nil {
		shell = "sh -i"
	}
	return fmt.Sprintf("%s exec --lab %s %s -- env PS1=%s %s", shq(t.Self), shq(t.Lab), shq(node), shq("("+node+") # "), shell), nil
}

// Open opens one terminal per node and returns the tmux windows it made
// (none for xterms, which close with their shells).
func (t Terminals) Open(ctx context.Context, nodeNames []string) ([]termWindow, string, error) {
	if t.Display != "" {
		if _, err := exec.LookPath("xterm"); err == nil {
			for _, n := range nodeNames {
				line, err := t.shellCommand(n)
				if err != nil {
					return nil, "", err
				}
				x := exec.Command("xterm", "-title", n+" (lab "+t.Lab+")", "-e", "sh", "-c", line)
				x.Env = append(os.Environ(), "DISPLAY="+t.Display)
				if err := x.Start(); err != nil {
					return nil, "", fmt.Errorf("xterm for %s: %w", n, err)
				}
				go func() { _ = x.Wait() }()
			}
			return nil, fmt.Sprintf("*** opened %d xterm(s)", len(nodeNames)), nil
		}
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		return nil, "", fmt.Errorf("no DISPLAY and no tmux: install tmux (apt-get install tmux) or use `labctl exec %s NODE` in another terminal", t.Lab)
	}
	var made []termWindow
	sess := Session(t.Lab)
	newSession := !t.InTmux && exec.CommandContext(ctx, "tmux", "has-session", "-t", "="+sess).Run() != nil
	for i, n := range nodeNames {
		line, err := t.shellCommand(n)
		if err != nil {
			return made, "", err
		}
		var args []string
		switch {
		case t.InTmux:
			args = []string{"new-window", "-P", "-F", "#{session_name}:#{window_id}", "-n", n, line}
		case newSession && i == 0:
			args = []string{"new-session", "-d", "-P", "-F", "#{session_name}:#{window_id}", "-s", sess, "-n", n, "-x", "200", "-y", "50", line}
		default:
			args = []string{"new-window", "-d", "-P", "-F", "#{session_name}:#{window_id}", "-t", sess + ":", "-n", n, line}
		}
		out, err := exec.CommandContext(ctx, "tmux", args...).Output()
		if err != nil {
			return made, "", fmt.Errorf("tmux window for %s: %w", n, err)
		}
		made = append(made, termWindow{target: strings.TrimSpace(string(out))})
	}
	if t.InTmux {
		return made, fmt.Sprintf("*** opened %d tmux window(s) named after the hosts", len(made)), nil
	}
	return made, fmt.Sprintf("*** no DISPLAY: %d tmux window(s) in session %s; attach with `tmux attach -t %s`", len(made), sess, sess), nil
}

func cmdXterm(ctx context.Context, c *Console, args string) error {
	ns := strings.Fields(args)
	if len(ns) == 0 {
		return fmt.Errorf("usage: xterm NODE…")
	}
	for _, n := range ns {
		if _, ok := c.st.Node(n); !ok {
			return fmt.Errorf("no node %q", n)
		}
	}
	t := Terminals{Lab: c.Lab, Self: c.Self, Display: os.Getenv("DISPLAY"), InTmux: os.Getenv("TMUX") != ""}
	made, msg, err := t.Open(ctx, ns)
	c.terms = append(c.terms, made...)
	if err != nil {
		return err
	}
	c.say("%s", msg)
	return nil
}

// closeTerms closes the tmux windows this console opened: the console
// leaves nothing behind.
func (c *Console) closeTerms() {
	for _, w := range c.terms {
		_ = exec.Command("tmux", "kill-window", "-t", w.target).Run()
	}
	c.terms = nil
}

// shq quotes s for /bin/sh.
func shq(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
