// Package nsdo owns every switch of network namespace in labctl.
//
// setns(2) changes one OS thread, and goroutines move between threads, so a
// switch is only safe on a thread locked for the whole time it is away from
// home. Do runs a closure on a fresh goroutine that locks its thread before
// it reads the current namespace, and unlocks only if switching back worked;
// if it did not, the thread stays locked and the Go runtime discards it when
// the goroutine ends. Everything else in labctl uses handles bound to a
// namespace (netlink.NewHandleAt) and never switches.
package nsdo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RunDir is where named namespaces are bind-mounted, as iproute2 does, so
// that `ip netns exec NAME` works on them.
const RunDir = "/run/netns"

// Path returns the bind-mount path of a named namespace.
func Path(name string) string { return filepath.Join(RunDir, name) }

// Do runs fn on an OS thread that is inside ns for the duration of fn.
// Processes started by fn (exec.Cmd.Start) are born in ns.
func Do(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- doLocked(ns, fn)
	}()
	return <-errc
}

// doLocked runs on a locked thread; it unlocks it only when the thread is
// back in the namespace it started in.
func doLocked(ns netns.NsHandle, fn func() error) error {
	home, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("read current netns: %w", err)
	}
	defer home.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns: %w", err)
	}
	ferr := fn()
	if err := netns.Set(home); err != nil {
		// Leave the thread locked: the runtime throws it away.
		return errors.Join(ferr, fmt.Errorf("return to home netns: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// DoNamed is Do for a namespace under RunDir.
func DoNamed(name string, fn func() error) error {
	ns, err := netns.GetFromPath(Path(name))
	if err != nil {
		return fmt.Errorf("netns %q: %w", name, err)
	}
	defer ns.Close()
	return Do(ns, fn)
}

// NewNamed creates a network namespace bind-mounted at RunDir/name, without
// moving the caller into it. It fails if the name exists.
func NewNamed(name string) error {
	if err := ensureRunDir(); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("read current netns: %w", err)
			return
		}
		defer home.Close()
		h, nerr := netns.NewNamed(name) // moves this thread into the new namespace
		if nerr == nil {
			h.Close()
		}
		if err := netns.Set(home); err != nil {
			errc <- errors.Join(nerr, fmt.Errorf("return to home netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		if nerr != nil {
			errc <- fmt.Errorf("create netns %q: %w", name, nerr)
			return
		}
		errc <- nil
	}()
	return <-errc
}

// DeleteNamed unmounts and removes a named namespace. A missing one is not
// an error: deletion is idempotent.
func DeleteNamed(name string) error {
	p := Path(name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("netns %q: unmount: %w", name, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("netns %q: %w", name, err)
	}
	return nil
}

// Exists reports whether a named namespace's mount point exists.
func Exists(name string) bool {
	_, err := os.Stat(Path(name))
	return err == nil
}

// ensureRunDir makes RunDir a shared mount point, as `ip netns add` does, so
// namespaces created by labctl are seen from other mount namespaces too.
func ensureRunDir() error {
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return err
	}
	made := false
	for {
		err := unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || made {
			return fmt.Errorf("make %s a shared mount: %w", RunDir, err)
		}
		if err := unix.Mount(RunDir, RunDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s: %w", RunDir, err)
		}
		made = true
	}
}
