package nodes

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// hostSetup is what the hostexec wrapper does before it becomes a
// program. The supervisor starts the wrapper (the lab's labctl) inside the
// host's network namespace and in fresh UTS and mount namespaces; the
// wrapper names the host, shows it the lab's hosts file, opens the way to
// the folders the program needs, drops root and execs the program, which
// keeps the wrapper's pid, process group and pipes. This is what `ip netns
// exec` does for /etc/netns/NAME, plus the hostname.
type hostSetup struct {
	Hostname string `json:"hostname"`
	// Hosts is bind-mounted over /etc/hosts.
	Hosts string `json:"hosts,omitempty"`
	// Reveal lists folders the program's user must reach; where a folder
	// above one is closed to that user (/root is 0700), the program's
	// mount namespace gets an open tmpfs there holding only the way in.
	Reveal []string `json:"reveal,omitempty"`
	UID    int      `json:"uid"` // -1: stay root
	GID    int      `json:"gid"`
	Dir    string   `json:"dir"`
	PPID   int      `json:"ppid"`
	// Unshare: make the UTS and mount namespaces here, for this thread
	// (which then execs), when the wrapper was not started in fresh ones
	// (`labctl exec` replaces itself with it).
	Unshare bool   `json:"unshare,omitempty"`
	Path    string `json:"path"` // the executable; argv follows
}

// HostExec is the `labctl hostexec SETUP ARGV...` wrapper. It returns only
// on failure.
func HostExec(args []string) error {
	if len(args) < 2 {
		return errors.New("hostexec: want a setup and a command")
	}
	var hs hostSetup
	if err := json.Unmarshal([]byte(args[0]), &hs); err != nil {
		return fmt.Errorf("hostexec: setup: %w", err)
	}
	// pdeathsig and execve belong to one thread: keep this one.
	runtime.LockOSThread()
	if err := hs.enter(); err != nil {
		return fmt.Errorf("cannot start the program in host %q: %w", hs.Hostname, err)
	}
	env := os.Environ()
	err := syscall.Exec(hs.Path, args[1:], env)
	return fmt.Errorf("exec %q: %w", hs.Path, err)
}

func (hs hostSetup) enter() error {
	if hs.Unshare {
		if err := unix.Unshare(unix.CLONE_NEWUTS | unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
	}
	if err := unix.Sethostname([]byte(hs.Hostname)); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	// Our mounts stay ours; the machine's still reach us.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("private mounts: %w", err)
	}
	// A machine without /etc/hosts (a bare container) has nothing to
	// cover: its programs go without names rather than not at all.
	if _, err := os.Stat("/etc/hosts"); hs.Hosts != "" && err == nil {
		if err := unix.Mount(hs.Hosts, "/etc/hosts", "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s on /etc/hosts: %w", hs.Hosts, err)
		}
	}
	if hs.UID >= 0 {
		if err := reveal(hs.Reveal, hs.UID, hs.GID); err != nil {
			return err
		}
		if err := syscall.Setgroups([]int{}); err != nil {
			return fmt.Errorf("setgroups: %w", err)
		}
		if err := syscall.Setgid(hs.GID); err != nil {
			return fmt.Errorf("setgid %d: %w", hs.GID, err)
		}
		if err := syscall.Setuid(hs.UID); err != nil {
			return fmt.Errorf("setuid %d: %w", hs.UID, err)
		}
		// A change of user clears the parent-death signal: set it again,
		// then make sure the supervisor did not die in between.
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
			return fmt.Errorf("pdeathsig: %w", err)
		}
		if hs.PPID != 0 && os.Getppid() != hs.PPID {
			return errors.New("the supervisor is gone")
		}
	}
	if err := os.Chdir(hs.Dir); err != nil {
		return fmt.Errorf("folder %q: %w", hs.Dir, err)
	}
	return nil
}

// reveal makes each folder reachable by uid/gid inside this mount
// namespace: for the highest folder on its way that uid cannot search
// (say /root), a tmpfs is mounted over it holding only the entries on the
// ways to the folders (/root/.pyenv, bind-mounted from the original).
// Nested closed folders take another round; at most revealRounds.
func reveal(dirs []string, uid, gid int) error {
	for round := 0; round < revealRounds; round++ {
		blocked := map[string]map[string]bool{}
		for _, d := range dirs {
			if a, kid, ok := firstClosed(filepath.Clean(d), uid, gid); ok {
				if blocked[a] == nil {
					blocked[a] = map[string]bool{}
				}
				blocked[a][kid] = true
			}
		}
		if len(blocked) == 0 {
			return nil
		}
		for a, kids := range blocked {
			if err := overmount(a, kids); err != nil {
				return fmt.Errorf("open the way through %q: %w", a, err)
			}
		}
	}
	return nil
}

const revealRounds = 8

// firstClosed returns the first folder on the way to d that uid cannot
// search, and the entry below it on the way.
func firstClosed(d string, uid, gid int) (string, string, bool) {
	cur := "/"
	for _, part := range strings.Split(strings.TrimPrefix(d, "/"), "/") {
		if part == "" {
			continue
		}
		if !canSearch(cur, uid, gid) {
			return cur, part, true
		}
		cur = filepath.Join(cur, part)
	}
	return "", "", false
}

func canSearch(dir string, uid, gid int) bool {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return true // nothing to open: the program will say what is missing
	}
	switch {
	case int(st.Uid) == uid:
		return st.Mode&0o100 != 0
	case int(st.Gid) == gid:
		return st.Mode&0o010 != 0
	}
	return st.Mode&0o001 != 0
}

func overmount(a string, kids map[string]bool) error {
	names := make([]string, 0, len(kids))
	for k := range kids {
		names = append(names, k)
	}
	sort.Strings(names)
	fds := map[string]int{}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, k := range names {
		fd, err := unix.Open(filepath.Join(a, k), unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // missing: nothing to show
		}
		fds[k] = fd
	}
	if err := unix.Mount("tmpfs", a, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=64k"); err != nil {
		return err
	}
	for k, fd := range fds {
		dst := filepath.Join(a, k)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := os.Mkdir(dst, 0o755); err != nil {
				return err
			}
		} else if err := os.WriteFile(dst, nil, 0o644); err != nil {
			return err
		}
		if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", fd), dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %q: %w", dst, err)
		}
	}
	return nil
}
