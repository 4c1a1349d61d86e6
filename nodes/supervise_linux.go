package nodes

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/topo"
)

// Program states.
const (
	StateWaiting   = "waiting"
	StateRunning   = "running"
	StateReady     = "ready"
	StateExited    = "exited"
	StateKilled    = "killed"
	StateTimedOut  = "timed out"
	StateSkipped   = "skipped"
	StateFailed    = "failed to start"
	defaultTaskMax = 60 * time.Second
	defaultReady   = 10 * time.Second
	maxRestarts    = 10
	maxLine        = 64 << 10
)

// cleanPath is the PATH programs get: the system's, not root's or labctl's.
const cleanPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Supervisor runs a lab's programs in their hosts, captures their output,
// plays the timeline, evaluates the checks once the tasks are over, and
// then keeps the services running (and restarted, by policy) until it is
// stopped. It is the `labctl supervise LAB` daemon.
type Supervisor struct {
	plan  *Plan
	st    *State
	log   *slog.Logger
	start time.Time

	outMu sync.Mutex
	out   *os.File

	procs []*proc
	byKey map[string]*proc
}

type proc struct {
	s    *Supervisor
	host PlanHost
	p    topo.Program
	key  string // host/prog

	logMu sync.Mutex
	logf  *os.File

	ready     chan struct{} // closed once ready
	readyOnce sync.Once
	failed    chan struct{} // closed if it can never become ready
	failOnce  sync.Once
	done      chan struct{} // closed when it will not run again

	mu       sync.Mutex
	state    string
	cmd      *exec.Cmd
	status   *int
	signal   string
	restarts int
	detail   string
	restart  bool // a timeline restart is pending
	stopping bool
	lineRE   *regexp.Regexp
}

// NewSupervisor prepares a supervisor for a lab that is up.
func NewSupervisor(lab string, log *slog.Logger) (*Supervisor, error) {
	st, err := Load(lab)
	if err != nil {
		return nil, err
	}
	plan, err := LoadPlan(lab)
	if err != nil {
		return nil, err
	}
	s := &Supervisor{plan: plan, st: st, log: log.With("lab", lab), byKey: map[string]*proc{}}
	for _, h := range plan.Hosts {
		for _, p := range h.Programs {
			pr := &proc{s: s, host: h, p: p, key: h.Name + "/" + p.Name, state: StateWaiting,
				ready: make(chan struct{}), failed: make(chan struct{}), done: make(chan struct{})}
			if p.Ready != nil && p.Ready.Line != "" {
				pr.lineRE = regexp.MustCompile(p.Ready.Line)
			}
			s.procs = append(s.procs, pr)
			s.byKey[pr.key] = pr
		}
	}
	return s, nil
}

// Run starts everything and returns when ctx is cancelled (down) after
// stopping the programs.
func (s *Supervisor) Run(ctx context.Context) error {
	var err error
	s.out, err = os.OpenFile(OutputLog(s.plan.Lab), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer s.out.Close()
	if err := s.prepareHomes(); err != nil {
		s.emit("labctl", "sys", "cannot prepare the hosts: "+err.Error())
		return err
	}
	s.start = time.Now()
	for _, p := range s.procs {
		if err := p.openLog(); err != nil {
			return err
		}
		go p.run(ctx)
	}
	go s.playTimeline(ctx)
	go s.serveControl(ctx) // supervise_ctl_linux.go
	go s.finish(ctx)
	<-ctx.Done()
	s.stopAll()
	return nil
}

// prepareHomes makes each host's home folder, owned by the programs' user,
// and the files the lab puts there.
func (s *Supervisor) prepareHomes() error {
	for _, h := range s.plan.Hosts {
		if err := os.MkdirAll(h.Home, 0o755); err != nil {
			return err
		}
		if err := os.Chown(h.Home, s.plan.UID, s.plan.GID); err != nil {
			return err
		}
		for _, f := range h.Files {
			if err := s.makeFile(h, f); err != nil {
				return fmt.Errorf("host %q: file %q: %w", h.Name, f.Path, err)
			}
		}
	}
	return nil
}

func (s *Supervisor) makeFile(h PlanHost, f topo.File) error {
	p := filepath.Join(h.Home, filepath.Clean("/"+f.Path))
	// Folders on the way belong to the programs' user too.
	rel, _ := filepath.Rel(h.Home, filepath.Dir(p))
	cur := h.Home
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if part == "." || part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		_ = os.Lchown(cur, s.plan.UID, s.plan.GID)
	}
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	if f.Size > 0 {
		_, err = io.CopyN(w, seededBytes(s.plan.Seed, h.Name+":"+f.Path), int64(f.Size))
	} else {
		_, err = w.WriteString(f.Content)
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Lchown(p, s.plan.UID, s.plan.GID)
}

// emit writes one line to the lab's combined output log.
func (s *Supervisor) emit(key, stream, text string) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	fmt.Fprintf(s.out, "%s %s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), key, stream, text)
}

func (p *proc) openLog() error {
	path := ProgramLog(p.s.plan.Lab, p.host.Name, p.p.Name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.logf = f
	return nil
}

// line records one line of output (stream out, err) or of the supervisor's
// own account (sys), timestamped, in the program's log and the lab's.
func (p *proc) line(stream, text string) {
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	p.logMu.Lock()
	fmt.Fprintf(p.logf, "%s %s %s\n", ts, stream, text)
	p.logMu.Unlock()
	p.s.emit(p.key, stream, text)
	if stream != "sys" && p.lineRE != nil && p.lineRE.MatchString(text) {
		p.markReady()
	}
}

func (p *proc) markReady() {
	p.readyOnce.Do(func() {
		p.mu.Lock()
		if p.state == StateRunning {
			p.state = StateReady
		}
		p.mu.Unlock()
		close(p.ready)
	})
}

func (p *proc) markFailed(why string) {
	p.failOnce.Do(func() {
		p.mu.Lock()
		if p.detail == "" {
			p.detail = why
		}
		p.mu.Unlock()
		close(p.failed)
	})
}

func (p *proc) setState(state string) {
	p.mu.Lock()
	p.state = state
	p.mu.Unlock()
}

// run is the life of one program: wait for its dependencies, start it,
// restart it by policy, until it is over for good.
func (p *proc) run(ctx context.Context) {
	defer close(p.done)
	if why := p.waitDeps(ctx); why != "" {
		p.setState(StateSkipped)
		p.mu.Lock()
		p.detail = why
		p.mu.Unlock()
		p.line("sys", "not started: "+why)
		p.markFailed(why)
		return
	}
	if d := p.p.StartDelay.D(); d > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
	p.loop(ctx)
}

// loop runs the program, and again as long as its restart policy or a
// timeline restart asks.
func (p *proc) loop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		code, err := p.runOnce(ctx)
		if err != nil {
			p.setState(StateFailed)
			p.line("sys", "cannot start: "+err.Error())
			p.markFailed(err.Error())
			return
		}
		p.mu.Lock()
		again := p.restart && !p.stopping
		p.restart = false
		policy := p.p.Restart
		if !again && !p.stopping && p.restarts < maxRestarts && ctx.Err() == nil {
			again = policy == topo.RestartAlways || (policy == topo.RestartOnFailure && code != 0)
			if again {
				p.restarts++
			}
		}
		p.mu.Unlock()
		if !again {
			return
		}
		p.line("sys", fmt.Sprintf("restarting (restart: %s)", orDefault(policy, "timeline")))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

func orDefault(s, d string) string {
	if s == "" || s == topo.RestartNo {
		return d
	}
	return s
}

// waitDeps waits until every program this one comes after is ready; it
// returns why not when one of them never will be.
func (p *proc) waitDeps(ctx context.Context) string {
	for _, dep := range p.p.After {
		key := dep
		if !strings.Contains(dep, "/") {
			key = p.host.Name + "/" + dep
		}
		d := p.s.byKey[key]
		if d == nil {
			return "no program " + key
		}
		select {
		case <-d.ready:
		case <-d.failed:
			return key + " did not become ready"
		case <-ctx.Done():
			return "lab stopped"
		}
	}
	return ""
}

// runOnce starts the program in its host and waits for it to end. It
// returns the exit code (-1 when killed by a signal).
func (p *proc) runOnce(ctx context.Context) (int, error) {
	cmd, err := p.command()
	if err != nil {
		return 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, err
	}
	var stdin io.WriteCloser
	if len(p.p.Stdin) > 0 || p.p.KeepStdin {
		if stdin, err = cmd.StdinPipe(); err != nil {
			return 0, err
		}
	}
	// Born inside the host: the child inherits the locked thread's netns.
	if err := nsdo.DoNamed(p.host.NS, cmd.Start); err != nil {
		return 0, err
	}
	p.mu.Lock()
	p.cmd, p.state, p.status, p.signal = cmd, StateRunning, nil, ""
	p.mu.Unlock()
	p.line("sys", fmt.Sprintf("started as pid %d: %s", cmd.Process.Pid, topo.Command(cmd.Args)))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.copyLines("out", stdout) }()
	go func() { defer wg.Done(); p.copyLines("err", stderr) }()
	exited := make(chan struct{})
	if stdin != nil {
		go p.feed(stdin, exited)
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
		wg.Wait() // read all output before Wait closes the pipes
		waitErr <- cmd.Wait()
	}()
	var werr error
	select {
	case werr = <-waitErr:
	case <-timer:
		timedOut = true
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
	return p.recordExit(cmd, werr, timedOut), nil
}

// command builds the exec.Cmd: the program's user, a clean environment,
// its own process group, and death with the supervisor.
func (p *proc) command() (*exec.Cmd, error) {
	argv := p.p.Command
	path := argv[0]
	if !strings.Contains(path, "/") {
		lp, err := lookPath(p.s.path(), path)
		if err != nil {
			return nil, err
		}
		path = lp
	}
	cmd := exec.Command(path, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Dir = p.p.Dir
	if cmd.Dir == "" {
		cmd.Dir = p.host.Home
	}
	env := []string{
		"PATH=" + p.s.path(), "HOME=" + p.host.Home, "LANG=C.UTF-8", "TERM=dumb",
		"LABCTL_LAB=" + p.s.plan.Lab, "LABCTL_NODE=" + p.host.Name, "LABCTL_PROGRAM=" + p.p.Name,
		"USER=" + p.s.plan.User, "LOGNAME=" + p.s.plan.User,
		"PYTHONUNBUFFERED=1", // a student's print() shows up as it happens
	}
	for k, v := range p.p.Env {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if !p.p.Root {
		attr.Credential = &syscall.Credential{Uid: uint32(p.s.plan.UID), Gid: uint32(p.s.plan.GID), Groups: []uint32{}}
	}
	cmd.SysProcAttr = attr
	return cmd, nil
}

// path is the programs' PATH: the lab's labctl, then the system's.
func (s *Supervisor) path() string {
	if s.plan.BinDir == "" {
		return cleanPath
	}
	return s.plan.BinDir + ":" + cleanPath
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

// copyLines reads a pipe line by line into the logs. A line longer than
// maxLine is split, never dropped.
func (p *proc) copyLines(stream string, r io.Reader) {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		b, err := br.ReadSlice('\n')
		if len(b) > 0 {
			p.line(stream, strings.TrimRight(string(b), "\r\n"))
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return
		}
	}
}

// feed types the stdin lines, each after its delay, then closes stdin.
func (p *proc) feed(w io.WriteCloser, exited <-chan struct{}) {
	defer func() {
		if !p.p.KeepStdin {
			w.Close()
		}
	}()
	for _, l := range p.p.Stdin {
		if d := l.Delay.D(); d > 0 {
			select {
			case <-exited:
				return
			case <-time.After(d):
			}
		}
		if _, err := io.WriteString(w, l.Text+"\n"); err != nil {
			return
		}
		p.line("in", l.Text)
	}
	if p.p.KeepStdin {
		<-exited
	}
}

// watchReady decides when the program is ready: at once without a
// readiness condition; when its host has a listening TCP or bound UDP
// socket on the port; or when the line matcher in line() fires. Each has a
// deadline.
func (p *proc) watchReady(pid int, exited <-chan struct{}) {
	r := p.p.Ready
	if r == nil {
		p.markReady()
		return
	}
	timeout := r.Timeout.D()
	if timeout == 0 {
		timeout = defaultReady
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var tick <-chan time.Time
	if r.TCP != "" || r.UDP != "" {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-p.ready:
			return
		case <-exited:
			if p.p.Ready != nil {
				p.markFailed("exited before it was ready")
			}
			return
		case <-deadline.C:
			why := fmt.Sprintf("not ready within %s", timeout)
			p.line("sys", why)
			p.markFailed(why)
			return
		case <-tick:
			if r.TCP != "" && socketUp(pid, "tcp", topo.ParsePort(r.TCP)) ||
				r.UDP != "" && socketUp(pid, "udp", topo.ParsePort(r.UDP)) {
				p.line("sys", "ready")
				p.markReady()
				return
			}
		}
	}
}

func (p *proc) signalGroup(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, sig)
	}
}

// recordExit notes how the program ended, in its state and in its log.
func (p *proc) recordExit(cmd *exec.Cmd, werr error, timedOut bool) int {
	if cmd.ProcessState == nil {
		p.line("sys", "wait: "+werr.Error())
		return -1
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	code, state, sig, detail := -1, StateExited, "", ""
	if ws.Signaled() {
		sig = signalName(ws.Signal())
		state, detail = StateKilled, "killed by signal "+sig
	} else {
		code = ws.ExitStatus()
		detail = fmt.Sprintf("exited with status %d", code)
	}
	if timedOut {
		state, detail = StateTimedOut, "stopped at its time limit ("+detail+")"
	}
	p.mu.Lock()
	p.state, p.signal, p.detail = state, sig, detail
	if !ws.Signaled() {
		p.status = &code
	}
	p.mu.Unlock()
	p.line("sys", detail)
	return code
}

func signalName(s syscall.Signal) string {
	names := map[syscall.Signal]string{syscall.SIGKILL: "KILL", syscall.SIGTERM: "TERM", syscall.SIGINT: "INT",
		syscall.SIGHUP: "HUP", syscall.SIGSEGV: "SEGV", syscall.SIGABRT: "ABRT", syscall.SIGPIPE: "PIPE", syscall.SIGQUIT: "QUIT"}
	if n, ok := names[s]; ok {
		return n
	}
	return s.String()
}

// status is a snapshot for the result.
func (p *proc) snapshot() ProgramStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return ProgramStatus{Program: p.key, State: p.state, Status: p.status, Signal: p.signal, Restarts: p.restarts, Detail: p.detail}
}

// finish waits for the tasks (programs that are not services) and for any
// service an exit check names to end, and for the other services to be
// ready (or failed), bounded by the plan's deadline; then it evaluates the
// checks.
func (s *Supervisor) finish(ctx context.Context) {
	deadline := time.NewTimer(s.plan.Deadline)
	defer deadline.Stop()
	exitChecked := map[string]bool{}
	for _, c := range s.plan.Checks {
		if c.Exit != "" {
			exitChecked[c.Exit] = true
		}
	}
	for _, p := range s.procs {
		var wait <-chan struct{} = p.done
		if p.p.Service && !exitChecked[p.key] {
			wait = p.readyOrFailed()
		}
		select {
		case <-wait:
		case <-deadline.C:
			s.emit("labctl", "sys", fmt.Sprintf("the run took longer than %s: checking now", s.plan.Deadline))
			s.evaluate()
			return
		case <-ctx.Done():
			return
		}
	}
	s.evaluate()
}

func (p *proc) readyOrFailed() <-chan struct{} {
	c := make(chan struct{})
	go func() {
		select {
		case <-p.ready:
		case <-p.failed:
		case <-p.done:
		}
		close(c)
	}()
	return c
}

func (s *Supervisor) evaluate() {
	res := &Result{Took: time.Since(s.start)}
	for _, p := range s.procs {
		res.Programs = append(res.Programs, p.snapshot())
	}
	for _, c := range s.plan.Checks {
		cr := evalCheck(s.plan.Lab, res, c)
		if cr.Pass {
			res.Passed++
		} else {
			res.Failed++
		}
		res.Checks = append(res.Checks, cr)
	}
	if err := res.save(s.plan.Lab); err != nil {
		s.log.Error("cannot write the result", "err", err)
	}
	s.emit("labctl", "sys", fmt.Sprintf("checks: %d passed, %d failed", res.Passed, res.Failed))
}

// stopAll ends every program: TERM to each process group, then KILL.
func (s *Supervisor) stopAll() {
	for _, p := range s.procs {
		p.mu.Lock()
		p.stopping = true
		p.mu.Unlock()
		p.signalGroup(syscall.SIGTERM)
	}
	deadline := time.After(3 * time.Second)
	for _, p := range s.procs {
		select {
		case <-p.done:
		case <-deadline:
			for _, q := range s.procs {
				q.signalGroup(syscall.SIGKILL)
			}
			return
		}
	}
}
