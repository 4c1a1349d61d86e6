package tests

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ptyConsole is `labctl cli` on a pseudo-terminal, as a student's terminal.
type ptyConsole struct {
	t    *testing.T
	cmd  *exec.Cmd
	tty  *os.File
	mu   sync.Mutex
	out  bytes.Buffer
	mark int // expect searches from here
	done chan struct{}
}

func openConsole(t *testing.T, env []string, args ...string) *ptyConsole {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// A private HOME: the console's history and the shells' ~/.bashrc are
	// the test's, not the machine's (a pyenv in root's .bashrc can stall an
	// interactive shell for a minute on a stale lock).
	cmd.Env = append(os.Environ(), append([]string{"TERM=xterm", "HOME=" + t.TempDir()}, env...)...)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	require.NoError(t, err)
	c := &ptyConsole{t: t, cmd: cmd, tty: tty, done: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			c.mu.Lock()
			c.out.Write(buf[:n])
			c.mu.Unlock()
			if err != nil {
				close(c.done)
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		tty.Close()
	})
	return c
}

func (c *ptyConsole) send(s string) {
	c.t.Helper()
	_, err := c.tty.WriteString(s)
	require.NoError(c.t, err)
}

// expect waits until the output since the last match holds re.
func (c *ptyConsole) expect(re string, within time.Duration) string {
	c.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(within)
	for {
		c.mu.Lock()
		seen := c.out.String()[c.mark:]
		if loc := rx.FindStringIndex(seen); loc != nil {
			c.mark += loc[1]
			c.mu.Unlock()
			return seen[:loc[1]]
		}
		c.mu.Unlock()
		select {
		case <-c.done:
			// Read what came in with the end, then judge once more.
			c.mu.Lock()
			seen = c.out.String()[c.mark:]
			c.mu.Unlock()
			if loc := rx.FindStringIndex(seen); loc != nil {
				c.mark += loc[1]
				return seen[:loc[1]]
			}
			c.t.Fatalf("console ended before %q; it printed:\n%s", re, seen)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no %q within %v; the console printed:\n%s", re, within, seen)
		}
	}
}

func (c *ptyConsole) prompt() { c.t.Helper(); c.expect(`labctl> `, 20*time.Second) }

// exited waits for the console to end and returns its exit status.
func (c *ptyConsole) exited(within time.Duration) int {
	c.t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- c.cmd.Wait() }()
	select {
	case err := <-ch:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		require.NoError(c.t, err)
		return 0
	case <-time.After(within):
		c.t.Fatalf("console still running after %v", within)
	}
	return -1
}

func requirePing(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ping"); err != nil {
		t.Skip("ping (iputils-ping) is not installed; scripts/test.sh installs it")
	}
}

// TestCLINodeCommands: node names become addresses, a background server
// and a foreground client talk across hosts, Ctrl-C ends a running ping
// and not the console, bad input gets one line, and exit leaves the lab up
// with nothing of the console behind.
func TestCLINodeCommands(t *testing.T) {
	requirePing(t)
	lab, _ := up(t, "cli", "--topo", "linear,2", "--test", "none")
	c := openConsole(t, nil, "cli", lab)
	c.prompt()

	c.send("h2 ping -c1 h1\n")
	c.expect(`bytes from 10\.0\.0\.1`, 10*time.Second)
	c.prompt()

	// The command runs as `labctl exec` runs it: the node's hostname, and
	// the lab's names in /etc/hosts.
	c.send("h1 hostname; getent hosts h2\n")
	c.expect(`\r?\nh1\r?\n10\.0\.0\.2\s+h2`, 10*time.Second)
	c.prompt()

	c.send("nosuch thing\n")
	c.expect(`unknown command or node "nosuch"`, 5*time.Second)
	c.prompt()

	// A background server on h1, a client on h2 naming it by node name.
	c.send("h1 " + bin + " app stopwait-server --port 9000 &\n")
	out := c.expect(`output in (\S+)\)`, 10*time.Second)
	log := regexp.MustCompile(`output in (\S+)\)`).FindStringSubmatch(out)[1]
	waitFileHolds(t, log, "server is started", 10*time.Second)
	c.prompt()
	c.send("h2 " + bin + " app stopwait-client --server h1:9000 hello\n")
	c.expect(`delivered 0 "hello"`, 15*time.Second)
	c.prompt()
	waitFileHolds(t, log, "hello", 5*time.Second)
	c.send("jobs\n")
	c.expect(`\[1\]\s+Running\s+h1 `, 5*time.Second)
	c.prompt()

	// Ctrl-C interrupts the ping, and the console goes on.
	c.send("h1 ping h2\n")
	c.expect(`bytes from 10\.0\.0\.2`, 10*time.Second)
	c.send("\x03")
	c.expect(`ping statistics`, 10*time.Second)
	c.prompt()
	c.send("nodes\n")
	c.expect(`h1 h2 s1 s2`, 5*time.Second)
	c.prompt()

	pid := jobPID(t, c)
	c.send("exit\n")
	c.expect(`stopped 1 background job`, 10*time.Second)
	c.expect(`stays up`, 10*time.Second)
	require.Equal(t, 0, c.exited(15*time.Second))
	require.NoError(t, waitGone(pid, 5*time.Second), "the background server outlived the console")
	r := labctl(t, "status")
	require.Contains(t, r.stdout, lab, "exit must leave the lab up")
}

// jobPID asks `jobs` for job 1's pid.
func jobPID(t *testing.T, c *ptyConsole) int {
	t.Helper()
	c.send("jobs\n")
	out := c.expect(`pid (\d+),`, 5*time.Second)
	pid, err := strconv.Atoi(regexp.MustCompile(`pid (\d+),`).FindStringSubmatch(out)[1])
	require.NoError(t, err)
	c.prompt()
	return pid
}

func waitFileHolds(t *testing.T, path, what string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(path)
		if strings.Contains(strings.ToLower(string(b)), what) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("%s never held %q: %s", path, what, b)
}

func waitGone(pid int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			return nil
		}
		// A zombie of someone else's counts as gone too.
		if b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat")); err == nil && bytes.Contains(b, []byte(") Z ")) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return syscall.EEXIST
}

// TestCLIScriptLinkAndIperf: a console script (as a teacher's Mininet
// script) takes a link down and up, and iperf's figure on a rate-limited
// link is within 10 % of what `labctl verify` measures.
func TestCLIScriptLinkAndIperf(t *testing.T) {
	requirePing(t)
	file := writeLab(t, "rate.yaml", `
name: rate
hosts: {h1: {}, h2: {}}
switches: [s1]
links:
  - endpoints: [h1, s1]
    netem: {rate: 10mbit}
  - endpoints: [h2, s1]
`)
	lab, _ := up(t, "clirate", "-f", file, "--test", "none")

	script := writeLab(t, "steps.txt", "link h1 s1 down\nh1 ping -c1 -W1 h2\n")
	r := labctl(t, "cli", lab, "--script", script)
	require.NotEqual(t, 0, r.code, "a ping over a downed link must fail the script: %s", r)
	assert.Contains(t, r.stdout, `line 2: "h1 ping -c1 -W1 h2" failed`)

	script = writeLab(t, "steps2.txt", "link h1 s1 up\nh1 ping -c1 -W2 h2\niperf h1 h2 -t 3\n")
	r = labctl(t, "cli", lab, "--script", script)
	require.Equal(t, 0, r.code, "%s", r)
	m := regexp.MustCompile(`\*\*\* Results: \['([\d.]+) Mbits/sec', '([\d.]+) Mbits/sec'\]`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m, "no iperf result in: %s", r.stdout)
	iperf, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)

	v := labctl(t, "verify", lab, "--json")
	require.Equal(t, 0, v.code, "%s", v)
	var rep struct {
		Links []struct {
			ID      string `json:"id"`
			Goodput map[string]struct {
				BitsPerS float64 `json:"bits_per_s"`
			} `json:"goodput"`
		} `json:"links"`
	}
	require.NoError(t, json.Unmarshal([]byte(v.stdout), &rep))
	var verified float64
	for _, l := range rep.Links {
		for _, g := range l.Goodput {
			verified = g.BitsPerS / 1e6
		}
	}
	require.Positive(t, verified, "verify measured no goodput: %s", v.stdout)
	t.Logf("iperf %.2f Mbit/s, verify %.2f Mbit/s", iperf, verified)
	assert.InEpsilon(t, verified, iperf, 0.10, "iperf %.2f Mbit/s vs verify %.2f Mbit/s", iperf, verified)
}

// TestCLIXtermFallsBackToTmux: without DISPLAY, xterm opens a tmux window
// per host (a private tmux server), and the console's exit closes them.
func TestCLIXtermFallsBackToTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed; scripts/test.sh installs it")
	}
	lab, _ := up(t, "clitmux", "--topo", "linear,2", "--test", "none")
	tmp := t.TempDir()
	env := []string{"TMUX_TMPDIR=" + tmp, "DISPLAY=", "TMUX="}
	tmux := func(args ...string) (string, error) {
		cmd := exec.Command("tmux", args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { _, _ = tmux("kill-server") })

	c := openConsole(t, env, "cli", lab)
	c.prompt()
	c.send("xterm h1 h2\n")
	c.expect(`tmux window\(s\) in session labctl-`+regexp.QuoteMeta(lab), 10*time.Second)
	c.prompt()
	out, err := tmux("list-windows", "-t", "labctl-"+lab, "-F", "#{window_name}")
	require.NoError(t, err, out)
	assert.Equal(t, []string{"h1", "h2"}, strings.Fields(out))

	// The shell in window h1 runs inside h1: its prompt names the host and
	// its address is h1's.
	_, err = tmux("send-keys", "-t", "labctl-"+lab+":h1", "ip -4 -o addr show eth0", "Enter")
	require.NoError(t, err)
	deadline := time.Now().Add(10 * time.Second)
	var pane string
	for time.Now().Before(deadline) {
		pane, _ = tmux("capture-pane", "-p", "-t", "labctl-"+lab+":h1")
		if strings.Contains(pane, "10.0.0.1/8") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.Contains(t, pane, "10.0.0.1/8")
	assert.Contains(t, pane, "(h1)")

	c.send("exit\n")
	require.Equal(t, 0, c.exited(15*time.Second))
	out, err = tmux("list-windows", "-t", "labctl-"+lab)
	assert.Error(t, err, "the console's tmux windows outlived it: %s", out)
}

// TestCLIUpScriptOwnsLab: `up --cli-script` builds the lab, runs the
// script, exits with the first failing command's status and takes the lab
// down, as `sudo mn` does on exit.
func TestCLIUpScriptOwnsLab(t *testing.T) {
	requirePing(t)
	name := labName("cliup")
	t.Cleanup(func() {
		labctl(t, "down", name)
		requireNoLeftovers(t, name)
	})
	script := writeLab(t, "mn.txt", "pingall\nh1 sh -c 'exit 3'\nh2 echo never\n")
	r := labctl(t, "up", "--name", name, "--topo", "single,2", "--test", "none", "--cli-script", script)
	require.Equal(t, 3, r.code, "%s", r)
	assert.Contains(t, r.stdout, "0% dropped")
	assert.NotContains(t, r.stdout, "never")
	assert.Contains(t, r.stdout, "taking lab "+name+" down")
	requireNoLeftovers(t, name)
}

// TestCLILabGoesDown: a lab taken down under the console ends it cleanly.
func TestCLILabGoesDown(t *testing.T) {
	lab, _ := up(t, "clidown", "--topo", "single,2", "--test", "none")
	c := openConsole(t, nil, "cli", lab)
	c.prompt()
	require.Equal(t, 0, labctl(t, "down", lab).code)
	c.send("nodes\n")
	c.expect(`lab \S+ is down: leaving the console`, 10*time.Second)
	require.Equal(t, 0, c.exited(15*time.Second))
}
