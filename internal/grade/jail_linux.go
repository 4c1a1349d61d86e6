package grade

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// JailVerb is the hidden labctl verb that runs one submission's program
// inside its limits; the lab's supervisor starts it (as root, in the
// host's namespace) in place of the student's command.
const JailVerb = "grade-exec"

// Jail is how one student program is confined. The wrapper (stage 1,
// root, outside the limits) starts stage 2, which joins the submission's
// cgroup while still root (so no cgroup needs delegating to the student's
// user), becomes that user with no capabilities and no way to regain any,
// and execs the program: only the student's processes count against the
// limits, so a fork bomb or a memory hog cannot starve the wrapper that
// copies its output up to a cap and reports how it ended.
type Jail struct {
	Procs       []string // cgroup.procs files to join
	UID, GID    int
	OutputLimit int64  // bytes of stdout+stderr passed on; the rest is counted
	NoNet       bool   // a fresh network namespace with nothing in it (builds)
	StatsFile   string // where the wrapper writes what it counted (JSON)
	Argv        []string
	stage2      bool
}

// JailStats is what the wrapper counted for one program.
type JailStats struct {
	Passed    int64 `json:"passed"`
	Discarded int64 `json:"discarded"`
}

// args renders the jail as the wrapper's command line.
func (j Jail) args() []string {
	a := []string{JailVerb, "--uid", strconv.Itoa(j.UID), "--gid", strconv.Itoa(j.GID),
		"--output-limit", strconv.FormatInt(j.OutputLimit, 10)}
	for _, p := range j.Procs {
		a = append(a, "--cgroup", p)
	}
	if j.NoNet {
		a = append(a, "--no-net")
	}
	if j.stage2 {
		a = append(a, "--stage2")
	}
	if j.StatsFile != "" {
		a = append(a, "--stats", j.StatsFile)
	}
	return append(append(a, "--"), j.Argv...)
}

// ParseJail reads the wrapper's command line (after the verb).
func ParseJail(args []string) (Jail, error) {
	var j Jail
	for len(args) > 0 {
		a := args[0]
		args = args[1:]
		if a == "--" {
			j.Argv = args
			break
		}
		if a == "--no-net" || a == "--stage2" {
			j.NoNet = j.NoNet || a == "--no-net"
			j.stage2 = j.stage2 || a == "--stage2"
			continue
		}
		if len(args) == 0 {
			return j, fmt.Errorf("%s: %s needs a value", JailVerb, a)
		}
		v := args[0]
		args = args[1:]
		var err error
		switch a {
		case "--uid":
			j.UID, err = strconv.Atoi(v)
		case "--gid":
			j.GID, err = strconv.Atoi(v)
		case "--output-limit":
			j.OutputLimit, err = strconv.ParseInt(v, 10, 64)
		case "--cgroup":
			j.Procs = append(j.Procs, v)
		case "--stats":
			j.StatsFile = v
		default:
			return j, fmt.Errorf("%s: unknown flag %q", JailVerb, a)
		}
		if err != nil {
			return j, fmt.Errorf("%s: %s %q: %w", JailVerb, a, v, err)
		}
	}
	if len(j.Argv) == 0 {
		return j, fmt.Errorf("%s: no command after --", JailVerb)
	}
	if j.UID == 0 || j.GID == 0 {
		return j, fmt.Errorf("%s: refusing to run a submission as root", JailVerb)
	}
	return j, nil
}

// RunJail runs the program and returns its exit code; a program killed by
// a signal kills the wrapper with the same signal, so the supervisor sees
// what happened to the program itself.
func RunJail(j Jail, stdout, stderr io.Writer) (int, error) {
	if j.stage2 {
		return 0, enterJail(j)
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	inner := j
	inner.stage2 = true
	cmd := exec.Command(exe, inner.args()...)
	cmd.Stdin = os.Stdin
	outR, outW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	// Its own mount namespace (Go makes its mounts private): stage 2's
	// private /tmp is seen by the submission alone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Unshareflags: syscall.CLONE_NEWNS}
	if j.NoNet {
		cmd.SysProcAttr.Unshareflags |= syscall.CLONE_NEWNET
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		return 0, err
	}
	cp := &capper{left: j.OutputLimit}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); cp.copy(stdout, outR) }()
	go func() { defer wg.Done(); cp.copy(stderr, errR) }()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
wait:
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case werr = <-done:
			break wait
		}
	}
	// Children the program left behind may hold its output open: give the
	// copy a moment, then stop (the grader kills the cgroup).
	copied := make(chan struct{})
	go func() { wg.Wait(); close(copied) }()
	select {
	case <-copied:
	case <-time.After(time.Second):
	}
	if d := cp.discarded(); d > 0 {
		fmt.Fprintf(stderr, "\nlabctl: output limit of %d bytes reached: %d more bytes were discarded\n", j.OutputLimit, d)
	}
	if j.StatsFile != "" {
		b, _ := json.Marshal(JailStats{Passed: j.OutputLimit - cp.remaining(), Discarded: cp.discarded()})
		_ = os.WriteFile(j.StatsFile, b, 0o644)
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			dieBy(ws.Signal())
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if werr != nil {
		return 0, werr
	}
	return 0, nil
}

// capper passes on the first bytes of a program's output, shared between
// stdout and stderr, and counts the rest.
type capper struct {
	mu    sync.Mutex
	left  int64
	extra int64
}

func (c *capper) copy(w io.Writer, r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			c.mu.Lock()
			pass := int64(n)
			if pass > c.left {
				pass = c.left
			}
			c.left -= pass
			c.extra += int64(n) - pass
			c.mu.Unlock()
			if pass > 0 {
				_, _ = w.Write(buf[:pass])
			}
		}
		if err != nil {
			return
		}
	}
}

func (c *capper) discarded() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.extra
}

func (c *capper) remaining() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.left
}

// enterJail is stage 2: join the cgroup, drop to the submission's user
// for good, and become the program.
func enterJail(j Jail) error {
	// pdeathsig and no_new_privs belong to a thread: the one that execs.
	runtime.LockOSThread()
	for _, p := range j.Procs {
		if err := os.WriteFile(p, []byte("0"), 0); err != nil {
			return fmt.Errorf("join cgroup %q: %w", p, err)
		}
	}
	// No core files (a crash would write the whole heap into the copy).
	_ = unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	if err := privateTmp(); err != nil {
		return err
	}
	path := j.Argv[0]
	if !strings.Contains(path, "/") {
		lp, err := exec.LookPath(path)
		if err != nil {
			return err
		}
		path = lp
	}
	if err := unix.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := unix.Setresgid(j.GID, j.GID, j.GID); err != nil {
		return fmt.Errorf("setresgid %d: %w", j.GID, err)
	}
	if err := unix.Setresuid(j.UID, j.UID, j.UID); err != nil {
		return fmt.Errorf("setresuid %d: %w", j.UID, err)
	}
	// Changing credentials cleared the parent-death signal; so a program
	// whose wrapper is gone dies too. no_new_privs: setuid binaries cannot
	// hand it root back.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("pdeathsig: %w", err)
	}
	if os.Getppid() == 1 {
		return errors.New("the wrapper is gone")
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	return syscall.Exec(path, j.Argv, os.Environ())
}

// dieBy ends the wrapper by the signal that ended the program. The Go
// runtime keeps its own handlers for SIGSEGV and the like even after
// signal.Reset, so the default action is restored with rt_sigaction
// itself; no core file is written.
func dieBy(sig syscall.Signal) {
	signal.Reset()
	_ = unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	var dfl [4]uint64 // struct sigaction: handler SIG_DFL, no flags, no mask
	_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	runtime.LockOSThread()
	_ = unix.Tgkill(unix.Getpid(), unix.Gettid(), unix.Signal(sig))
	time.Sleep(100 * time.Millisecond) // the signal ends us
}

// tmpSize bounds each private temporary folder (its pages count against
// the submission's memory limit too).
const tmpSize = "64m"

// privateTmp gives the submission empty /tmp, /var/tmp and /dev/shm of its
// own, so submissions graded side by side cannot read or fill each
// other's (or the machine's) temporary files.
func privateTmp() error {
	for _, d := range []string{"/tmp", "/var/tmp", "/dev/shm"} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			continue
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777,size="+tmpSize); err != nil {
			return fmt.Errorf("private %s: %w", d, err)
		}
	}
	return nil
}
