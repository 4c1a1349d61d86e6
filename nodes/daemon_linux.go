package nodes

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StartDaemon starts a daemon for a lab that is up (see State.StartDaemon)
// and records it, as one UpdateState: a `down` at the same time either
// comes first (then nothing starts and the error wraps ErrNoLab) or finds
// the daemon recorded. On success st is refreshed from the state written.
// Inside Deploy, which holds the lab's lock already, use st.StartDaemon.
func StartDaemon(st *State, role string, args []string) (*Daemon, error) {
	if st.Phase == PhaseDeploying {
		return nil, fmt.Errorf("lab %q: StartDaemon during Deploy, which holds the lab's lock: call st.StartDaemon and save", st.Lab)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var d *Daemon
	err := UpdateState(ctx, st.Lab, func(cur *State) error {
		if st.ID != "" && cur.ID != st.ID {
			return fmt.Errorf("lab %q was taken down and up again meanwhile: %w", st.Lab, ErrNoLab)
		}
		var err error
		d, err = cur.StartDaemon(role, args)
		if err == nil {
			*st = *cur
		}
		return err
	})
	return d, err
}

// StartDaemon starts this labctl binary with args as a detached daemon
// serving the lab (its own session, stdio to DIR/ROLE.log), marked with
// the lab's tag in its environment, and records it in st. Call it on the
// state that UpdateState (or Deploy) holds under the lab's lock, which
// then writes the record: no `down` can run between the start and it.
// Even so the tag lets `down` find a daemon whose record never reached
// the disk.
func (st *State) StartDaemon(role string, args []string) (*Daemon, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("lab %q: find labctl binary: %w", st.Lab, err)
	}
	logf, err := os.OpenFile(filepath.Join(Dir(st.Lab), role+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab %q: %s log: %w", st.Lab, role, err)
	}
	defer logf.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), TagEnv+"="+st.Tag)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab %q: start %s: %w", st.Lab, role, err)
	}
	d := Daemon{Role: role, PID: cmd.Process.Pid, StartTime: procStartTime(cmd.Process.Pid)}
	_ = cmd.Process.Release()
	st.Daemons = append(st.Daemons, d)
	return &d, nil
}

// Alive reports whether the daemon still runs (same PID, same start time).
func (d Daemon) Alive() bool {
	return alive(d.PID) && procStartTime(d.PID) == d.StartTime
}

// procStartTime is field 22 of /proc/PID/stat, which with the PID
// identifies a process for good.
func procStartTime(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}
