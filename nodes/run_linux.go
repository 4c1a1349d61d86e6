package nodes

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/topo"
)

// runOnce starts the program in its host and waits for it to end. It
// returns the exit code (-1 when killed by a signal).
func (p *proc) runOnce(ctx context.Context) (int, error) {
	cmd, err := p.command()
	if err != nil {
		return 0, err
	}
	var disp *display
	if p.p.Display {
		fbdir := filepath.Join(Dir(p.s.plan.Lab), "display", p.host.Name+"-"+p.p.Name)
		if disp, err = startDisplay(p.host.NS, fbdir); err != nil {
			return 0, err
		}
		cmd.Env = append(cmd.Env, disp.Env())
		defer p.closeDisplay(disp)
	}
	streams, err := p.attach(cmd)
	if err != nil {
		return 0, err
	}
	// Born inside the host: the child inherits the locked thread's netns.
	err = nsdo.DoNamed(p.host.NS, cmd.Start)
	streams.afterStart()
	if err != nil {
		streams.closeAll()
		return 0, err
	}
	p.mu.Lock()
	p.cmd, p.state, p.status, p.signal, p.labSignal = cmd, StateRunning, nil, "", false
	p.mu.Unlock()
	p.resetOutput()
	p.line("sys", fmt.Sprintf("started as pid %d: %s", cmd.Process.Pid, topo.Command(p.p.Command)))
	p.rdMu.Lock()
	p.readers = streams.readers
	p.flushWant = map[string]bool{}
	p.rdMu.Unlock()
	var wg sync.WaitGroup
	for _, r := range streams.readers {
		wg.Add(1)
		go func() { defer wg.Done(); p.capture(r.stream, r.f) }()
	}
	exited := make(chan struct{})
	if streams.stdin != nil {
		go p.feed(streams.stdin, streams.tty, exited)
	}
	go p.watchReady(cmd.Process.Pid, exited)
	limit := p.p.TimeLimit.D()
	if limit == 0 && !p.p.Service {
		limit = defaultTaskMax
	}
	var timedOut bool
	var timer <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		timer = t.C
	}
	waitErr := make(chan error, 1)
	go func() {
		wg.Wait() // read all output before Wait
		waitErr <- cmd.Wait()
	}()
	var werr error
	select {
	case werr = <-waitErr:
	case <-timer:
		timedOut = true
		p.mu.Lock()
		p.labSignal = true
		p.mu.Unlock()
		if disp != nil {
			disp.snapshot() // the window as it was, before it closes
		}
		p.line("sys", fmt.Sprintf("time limit %s reached: stopping it", limit))
		p.signalGroup(syscall.SIGTERM)
		select {
		case werr = <-waitErr:
		case <-time.After(2 * time.Second):
			p.signalGroup(syscall.SIGKILL)
			werr = <-waitErr
		}
	}
	close(exited)
	streams.closeAll()
	return p.recordExit(cmd, werr, timedOut), nil
}

// streams are the parent's ends of a program's stdio: pipes, or one
// pseudo-terminal.
type streams struct {
	readers []streamReader
	stdin   io.WriteCloser
	tty     bool
	child   []*os.File // the child's ends, closed once it has them
	mine    []*os.File
}

type streamReader struct {
	stream string
	f      *os.File
}

func (s *streams) afterStart() {
	for _, f := range s.child {
		f.Close()
	}
	s.child = nil
}

func (s *streams) closeAll() {
	s.afterStart()
	for _, f := range s.mine {
		f.Close()
	}
}

// attach gives the program its stdio. With tty, one pseudo-terminal is
// its stdin, stdout and stderr and its controlling terminal.
func (p *proc) attach(cmd *exec.Cmd) (*streams, error) {
	s := &streams{}
	if p.p.TTY {
		m, sl, err := openPTY()
		if err != nil {
			return nil, fmt.Errorf("pseudo-terminal: %w", err)
		}
		_ = sl.Chown(p.s.plan.UID, p.s.plan.GID)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = sl, sl, sl
		cmd.SysProcAttr.Setpgid = false // setsid makes it a group leader
		cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, true, 0
		s.child, s.mine = []*os.File{sl}, []*os.File{m}
		s.readers = []streamReader{{"out", m}}
		s.stdin, s.tty = nopCloser{m}, true
		return s, nil
	}
	for _, stream := range []string{"out", "err"} {
		r, w, err := os.Pipe()
		if err != nil {
			s.closeAll()
			return nil, err
		}
		s.child, s.mine = append(s.child, w), append(s.mine, r)
		s.readers = append(s.readers, streamReader{stream, r})
		if stream == "out" {
			cmd.Stdout = w
		} else {
			cmd.Stderr = w
		}
	}
	if len(p.p.Stdin) > 0 || p.p.KeepStdin {
		r, w, err := os.Pipe()
		if err != nil {
			s.closeAll()
			return nil, err
		}
		cmd.Stdin = r
		s.child, s.mine = append(s.child, r), append(s.mine, w)
		s.stdin = w
	}
	return s, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// command builds the exec.Cmd: the hostexec wrapper (the lab's labctl),
// which names the host, mounts its hosts file, opens the way to the
// program's folders, drops to the programs' user and execs the program;
// a clean environment; its own process group; death with the supervisor.
func (p *proc) command() (*exec.Cmd, error) {
	argv := p.p.Command
	pathList := p.s.path(p.p)
	path := argv[0]
	if !strings.Contains(path, "/") {
		lp, err := lookPath(pathList, path)
		if err != nil {
			return nil, err
		}
		path = lp
	} else if !filepath.IsAbs(path) {
		path = filepath.Join(p.dir(), path)
	}
	hs := hostSetup{Hostname: p.host.Name, Hosts: p.host.Hosts, UID: -1, GID: -1, Dir: p.dir(), PPID: os.Getpid(), Path: path}
	if !p.p.Root {
		hs.UID, hs.GID = p.s.plan.UID, p.s.plan.GID
		hs.Reveal = append(append([]string{}, p.p.Path...), p.s.plan.Path...)
		hs.Reveal = append(hs.Reveal, filepath.Dir(path), hs.Dir)
	}
	setup, err := json.Marshal(hs)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(p.s.wrapper(), append([]string{"hostexec", string(setup)}, argv...)...)
	cmd.Args[0] = "labctl"
	cmd.Dir = "/"
	env := []string{
		"PATH=" + pathList, "HOME=" + p.host.Home, "LANG=C.UTF-8", "TERM=dumb",
		"LABCTL_LAB=" + p.s.plan.Lab, "LABCTL_NODE=" + p.host.Name, "LABCTL_PROGRAM=" + p.p.Name,
		"USER=" + p.s.plan.User, "LOGNAME=" + p.s.plan.User,
		"PYTHONUNBUFFERED=1", // a student's print() shows up as it happens
	}
	if p.p.TTY {
		env[3] = "TERM=xterm"
	}
	if p.s.plan.LogMark != "" {
		env = append(env, LogMarkEnv+"="+p.s.plan.LogMark)
	}
	for k, v := range p.p.Env {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL,
		Cloneflags: syscall.CLONE_NEWUTS | syscall.CLONE_NEWNS}
	return cmd, nil
}

func (p *proc) dir() string {
	if p.p.Dir == "" {
		return p.host.Home
	}
	return p.p.Dir
}

// wrapper is the lab's copy of labctl, which the programs' user can run.
func (s *Supervisor) wrapper() string {
	if s.plan.BinDir != "" {
		return filepath.Join(s.plan.BinDir, "labctl")
	}
	exe, _ := os.Executable()
	return exe
}

// path is a program's PATH: the lab's labctl, the program's and the lab's
// path: folders, then the system's.
func (s *Supervisor) path(p topo.Program) string {
	var parts []string
	if s.plan.BinDir != "" {
		parts = append(parts, s.plan.BinDir)
	}
	parts = append(parts, p.Path...)
	parts = append(parts, s.plan.Path...)
	return strings.Join(append(parts, cleanPath), ":")
}

// lookPath finds a command in the programs' PATH, not in labctl's.
func lookPath(pathList, name string) (string, error) {
	for _, dir := range strings.Split(pathList, ":") {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q: not found in %s", name, pathList)
}

// closeDisplay stops the program's display and records its screenshot.
func (p *proc) closeDisplay(d *display) {
	path := strings.TrimSuffix(ProgramLog(p.s.plan.Lab, p.host.Name, p.p.Name), ".log") + ".png"
	drew, err := d.close(path)
	switch {
	case err != nil:
		p.line("sys", fmt.Sprintf("display: screenshot: %v", err))
	case drew:
		p.line("sys", "display: screenshot "+path)
	default:
		p.line("sys", "display: the program drew nothing")
	}
	p.mu.Lock()
	p.window = drew
	if drew && err == nil {
		p.screenshot = path
	}
	p.mu.Unlock()
}
