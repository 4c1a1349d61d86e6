package nodes

import (
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

	exposed exposed
	auto    autoPorts // autoports_linux.go
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
	// labSignal: labctl signalled this run (timeline kill, time limit)
	labSignal bool
	// window: it ran under a display and drew; screenshot: the PNG
	window     bool
	screenshot string
	lineRE     *regexp.Regexp

	// output since the last stdin line, for stdin's after: and idle:
	outMu   sync.Mutex
	since   []byte
	lastOut time.Time
	outCh   chan struct{} // closed and replaced on each output

	// the running program's output readers, and flush requests to them
	rdMu      sync.Mutex
	readers   []streamReader
	flushWant map[string]bool
	flushAck  chan struct{}
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
	s := &Supervisor{plan: plan, st: st, log: log.With("lab", lab), byKey: map[string]*proc{},
		exposed: exposed{ports: map[string]chan struct{}{}}, auto: autoPorts{done: map[string]bool{}, to: map[string]string{}}}
	for _, h := range plan.Hosts {
		for _, p := range h.Programs {
			pr := &proc{s: s, host: h, p: p, key: h.Name + "/" + p.Name, state: StateWaiting,
				ready: make(chan struct{}), failed: make(chan struct{}), done: make(chan struct{}), outCh: make(chan struct{}),
				flushWant: map[string]bool{}, flushAck: make(chan struct{}, 2)}
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
	s.auto.ctx = ctx
	s.startLocalhost(ctx)
	for _, h := range s.plan.Hosts {
		if len(h.Expose) > 0 {
			go s.watchExpose(ctx, h)
		}
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
		if h.CopyFrom != "" {
			if err := copyTree(h.CopyFrom, h.Home, s.plan.UID, s.plan.GID); err != nil {
				if !errors.Is(err, errTooBig) {
					return fmt.Errorf("host %q: copy %q: %w", h.Name, h.CopyFrom, err)
				}
				s.emit("labctl", "sys", fmt.Sprintf("%s: %v: its replaced programs run in it, not in a copy", h.Name, err))
				for _, p := range s.procs {
					if p.host.Name == h.Name && p.p.Overridden {
						p.p.Dir = h.CopyFrom
					}
				}
			}
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
	return ProgramStatus{Program: p.key, State: p.state, Status: p.status, Signal: p.signal, Restarts: p.restarts, Detail: p.detail, LabSignal: p.labSignal,
		Window: p.window, Screenshot: p.screenshot}
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
		cr := evalCheck(s.plan.Lab, res, s.plan.Checks, c)
		switch {
		case cr.Manual:
			res.Manual++
		case cr.Pass:
			res.Passed++
		default:
			res.Failed++
		}
		res.Score += cr.Score
		res.MaxScore += cr.Points
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
