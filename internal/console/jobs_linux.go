package console

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/labctl/labctl/nodes"
)

// maxJobs bounds the background jobs of one console; one more is refused
// with an error until a job ends.
const maxJobs = 64

// stopGrace is how long a job has between SIGTERM and SIGKILL.
const stopGrace = 2 * time.Second

// job is one background command.
type job struct {
	n        int
	node     string
	line     string
	cmd      *exec.Cmd
	log      string
	detached bool
	done     chan struct{}
	status   int
	reported bool
}

type jobTable struct {
	dir  string
	mu   sync.Mutex
	next int
	jobs []*job
}

func newJobTable(dir string) *jobTable { return &jobTable{dir: dir, next: 1} }

// nodeCommand runs `line` in node's namespace through /bin/sh: in the
// foreground (the terminal's, or the script's output), or in the
// background when the line ends in `&`.
func (c *Console) nodeCommand(ctx context.Context, node, line string, detach bool) error {
	bg := detach
	if strings.HasSuffix(line, "&") && !strings.HasSuffix(line, "&&") {
		bg = true
		line = strings.TrimSpace(strings.TrimSuffix(line, "&"))
	}
	if line == "" {
		return fmt.Errorf("node %s: no command (try `%s ip addr`)", node, node)
	}
	shell := c.substitute(line)
	if bg {
		j, err := c.jobs.start(c.st, node, line, shell, detach)
		if err != nil {
			return err
		}
		what := "background"
		if detach {
			what = "detached"
		}
		c.say("[%d] %d  %s %s   (%s; output in %s)", j.n, j.cmd.Process.Pid, node, line, what, j.log)
		return nil
	}
	cmd := exec.Command("/bin/sh", "-c", shell)
	cmd.Stdout, cmd.Stderr = c.Out, c.Err
	if c.interactive {
		cmd.Stdin = os.Stdin
	}
	if err := nodes.StartIn(c.st, node, cmd); err != nil {
		return err
	}
	return waitStatus(ctx, cmd)
}

// waitStatus waits for a foreground command; a cancelled context (a
// script's SIGTERM) ends it.
func waitStatus(ctx context.Context, cmd *exec.Cmd) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err = <-done:
		case <-time.After(stopGrace):
			_ = cmd.Process.Kill()
			err = <-done
		}
	}
	return exitStatus(err)
}

func exitStatus(err error) error {
	if err == nil {
		return nil
	}
	if ee, ok := err.(*exec.ExitError); ok {
		code := ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return statusError{code: code}
	}
	return err
}

func (t *jobTable) start(st *nodes.State, node, line, shell string, detach bool) (*job, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	live := 0
	for _, j := range t.jobs {
		if !j.finished() {
			live++
		}
	}
	if live >= maxJobs {
		return nil, fmt.Errorf("%d background jobs are running, the most one console keeps: end one (`kill %%N`)", live)
	}
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return nil, err
	}
	j := &job{n: t.next, node: node, line: line, detached: detach, done: make(chan struct{})}
	j.log = filepath.Join(t.dir, fmt.Sprintf("job-%d.log", j.n))
	f, err := os.OpenFile(j.log, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	j.cmd = exec.Command("/bin/sh", "-c", shell)
	j.cmd.Stdin, j.cmd.Stdout, j.cmd.Stderr = devnull, f, f
	// Its own process group: Ctrl-C at the terminal does not reach it, and
	// kill %N reaches everything it started. A detached job gets its own
	// session, so it outlives the console.
	j.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !detach, Setsid: detach}
	if err := nodes.StartIn(st, node, j.cmd); err != nil {
		return nil, err
	}
	t.next++
	t.jobs = append(t.jobs, j)
	go func() {
		j.status = ExitCode(exitStatus(j.cmd.Wait()))
		close(j.done)
	}()
	return j, nil
}

func (j *job) finished() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

// reportDone prints, once, the jobs that ended since the last prompt, as a
// shell does.
func (t *jobTable) reportDone(w io.Writer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, j := range t.jobs {
		if j.finished() && !j.reported {
			j.reported = true
			fmt.Fprintf(w, "[%d]  Done (exit %d)  %s %s\n", j.n, j.status, j.node, j.line)
		}
	}
}

func (t *jobTable) list(w io.Writer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, j := range t.jobs {
		state := "Running"
		if j.finished() {
			state = fmt.Sprintf("Done (exit %d)", j.status)
			j.reported = true
		}
		if j.detached {
			state += ", detached"
		}
		fmt.Fprintf(w, "[%d]  %-16s %s %s   (pid %d, output %s)\n", j.n, state, j.node, j.line, j.cmd.Process.Pid, j.log)
	}
}

func (t *jobTable) find(spec string) (*job, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(spec, "%"))
	if err != nil || !strings.HasPrefix(spec, "%") {
		return nil, fmt.Errorf("%q: name a job as %%N (see `jobs`)", spec)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, j := range t.jobs {
		if j.n == n {
			return j, nil
		}
	}
	return nil, fmt.Errorf("no job %%%d", n)
}

// stop ends a job's whole process group: SIGTERM, then SIGKILL after the
// grace period.
func (j *job) stop(sig syscall.Signal) {
	if j.finished() {
		return
	}
	_ = syscall.Kill(-j.cmd.Process.Pid, sig)
	if sig == syscall.SIGKILL {
		<-j.done
		return
	}
	select {
	case <-j.done:
	case <-time.After(stopGrace):
		_ = syscall.Kill(-j.cmd.Process.Pid, syscall.SIGKILL)
		<-j.done
	}
}

// stopAll ends every job that is not detached and says how many it ended.
func (t *jobTable) stopAll() int {
	t.mu.Lock()
	var live []*job
	for _, j := range t.jobs {
		if !j.detached && !j.finished() {
			live = append(live, j)
		}
	}
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, j := range live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j.stop(syscall.SIGTERM)
		}()
	}
	wg.Wait()
	return len(live)
}

func (t *jobTable) detached() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, j := range t.jobs {
		if j.detached && !j.finished() {
			n++
		}
	}
	return n
}

// wait waits for the given jobs (all but detached ones when none given).
func (t *jobTable) wait(ctx context.Context, js []*job) error {
	if js == nil {
		t.mu.Lock()
		for _, j := range t.jobs {
			if !j.detached {
				js = append(js, j)
			}
		}
		t.mu.Unlock()
	}
	for _, j := range js {
		select {
		case <-j.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
