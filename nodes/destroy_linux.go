package nodes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/netem"
	"github.com/vishvananda/netlink"
)

// Destroy takes a lab down: its daemons and every process inside its
// namespaces are killed, the namespaces (and with them every link, TAP and
// bridge) deleted, the state folder removed. It is idempotent: it finishes
// the work of a Destroy or Deploy that was interrupted. A lab whose state
// file is missing, empty or unreadable is taken down by what carries its
// mark: namespaces whose loopback has the alias labctl:LAB:ID, interfaces
// with that alias, daemons with LABCTL_TAG=labctl:LAB:ID in their
// environment and processes inside those namespaces; what could not be
// read is logged. It returns ErrNoLab (wrapped) when nothing of the lab
// exists.
func Destroy(ctx context.Context, lab string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("lab", lab)
	unlock, err := lockLab(ctx, lab)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := Load(lab)
	if err == nil {
		return destroyLocked(ctx, st, log)
	}
	if !errors.Is(err, ErrNoLab) {
		log.Warn("cannot read the lab's state; taking it down by its ownership tags", "err", err)
	}
	found, derr := destroyByTags(ctx, lab, log)
	if derr != nil {
		return derr
	}
	if !found && errors.Is(err, ErrNoLab) {
		return err
	}
	return nil
}

// destroyByTags takes down what is marked as the lab's when its state
// cannot tell: namespaces named lab-LAB-* whose loopback carries a tag of
// this lab, interfaces in this namespace with such a tag, processes inside
// those namespaces or carrying such a tag, and the lab's folders. It says
// whether it found anything. A namespace with the lab's prefix but no tag
// of this lab is left alone (it may be another lab's whose name shares the
// prefix, or not labctl's at all).
func destroyByTags(ctx context.Context, lab string, log *slog.Logger) (bool, error) {
	found := false
	ours := func(tag string) bool { return strings.HasPrefix(tag, TagPrefix) && labOfTag(tag) == lab }
	var nss []string
	inodes := map[uint64]bool{}
	ents, _ := os.ReadDir(nsdo.RunDir)
	for _, e := range ents {
		ns := e.Name()
		if !strings.HasPrefix(ns, NSPrefix+lab+"-") {
			continue
		}
		switch tag := nsTag(ns); {
		case ours(tag):
		case strings.HasPrefix(tag, TagPrefix):
			continue // lab "a-b"'s node "c" for lab "a": lab-a-b-c
		default:
			log.Warn("namespace has the lab's prefix but no labctl tag; left alone", "netns", ns)
			continue
		}
		nss = append(nss, ns)
		if ino, ok := nsInode(ns); ok {
			inodes[ino] = true
		}
	}
	killed, err := killProcesses(ctx, func(p procInfo) bool { return inodes[p.netns] || ours(p.tag) })
	if err != nil {
		return true, err
	}
	if killed > 0 {
		found = true
		log.Debug("processes killed", "n", killed)
	}
	var errs []error
	for _, ns := range nss {
		found = true
		if err := nsdo.DeleteNamed(ns); err != nil {
			errs = append(errs, err)
		}
	}
	if links, err := netlink.LinkList(); err == nil {
		for _, l := range links {
			if ours(l.Attrs().Alias) {
				found = true
				if err := netlink.LinkDel(l); err != nil {
					errs = append(errs, fmt.Errorf("interface %q: %w", l.Attrs().Name, err))
				}
			}
		}
	}
	if len(errs) > 0 {
		return true, errors.Join(errs...)
	}
	if err := removeNetnsEtc(lab); err != nil {
		return true, fmt.Errorf("lab %q: remove its /etc/netns files: %w", lab, err)
	}
	for _, dir := range []string{BinDir(lab), Dir(lab)} {
		if _, err := os.Lstat(dir); err != nil {
			continue
		}
		found = true
		if err := os.RemoveAll(dir); err != nil {
			return true, fmt.Errorf("lab %q: remove %s: %w", lab, dir, err)
		}
	}
	if found {
		log.Debug("taken down by its tags", "namespaces", len(nss))
	}
	return found, nil
}

func destroyLocked(ctx context.Context, st *State, log *slog.Logger) error {
	st.Phase = PhaseDestroying
	if err := st.save(); err != nil {
		log.Warn("cannot record the destroying phase", "err", err)
	}
	stopBackend(ctx, st, log)
	inodes := map[uint64]string{}
	for _, ns := range st.Namespaces {
		if ino, ok := nsInode(ns); ok {
			inodes[ino] = ns
		}
	}
	killed, err := killProcesses(ctx, func(p procInfo) bool {
		_, inLab := inodes[p.netns]
		return inLab || p.tag == st.Tag
	})
	if err != nil {
		return err
	}
	if killed > 0 {
		log.Debug("processes killed", "n", killed)
	}
	var errs []error
	for _, ns := range st.Namespaces {
		if !nsdo.Exists(ns) {
			continue
		}
		if tag := nsTag(ns); tag != "" && tag != st.Tag {
			log.Warn("namespace belongs to another deployment; left alone", "netns", ns, "tag", tag)
			continue
		}
		if err := nsdo.DeleteNamed(ns); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := removeNetnsEtc(st.Lab); err != nil {
		return fmt.Errorf("lab %q: remove its /etc/netns files: %w", st.Lab, err)
	}
	if err := os.RemoveAll(BinDir(st.Lab)); err != nil {
		return fmt.Errorf("lab %q: remove its labctl copy: %w", st.Lab, err)
	}
	if err := os.RemoveAll(Dir(st.Lab)); err != nil {
		return fmt.Errorf("lab %q: remove state: %w", st.Lab, err)
	}
	return nil
}

// nsInode returns the inode of a named namespace, which /proc/PID/ns/net
// links name as net:[INODE].
func nsInode(ns string) (uint64, bool) {
	var s syscall.Stat_t
	if err := syscall.Stat(nsdo.Path(ns), &s); err != nil {
		return 0, false
	}
	return s.Ino, true
}

// nsTag reads the ownership mark of a namespace: its loopback's alias.
func nsTag(ns string) string {
	var tag string
	_ = netem.WithHandle(ns, func(h *netlink.Handle) error {
		lo, err := h.LinkByName("lo")
		if err == nil {
			tag = lo.Attrs().Alias
		}
		return nil
	})
	return tag
}

type procInfo struct {
	pid   int
	netns uint64
	tag   string // LABCTL_TAG from its environment: labctl's own daemons
}

// TagEnv marks labctl's daemons with the deployment they serve, so that a
// daemon whose PID never reached the state file is still found.
const TagEnv = "LABCTL_TAG"

func listProcs() []procInfo {
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var out []procInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid == 1 {
			continue
		}
		p := procInfo{pid: pid}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil {
			s := strings.TrimSuffix(strings.TrimPrefix(l, "net:["), "]")
			p.netns, _ = strconv.ParseUint(s, 10, 64)
		}
		if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil {
			for _, kv := range bytes.Split(env, []byte{0}) {
				if v, ok := bytes.CutPrefix(kv, []byte(TagEnv+"=")); ok {
					p.tag = string(v)
				}
			}
		}
		out = append(out, p)
	}
	return out
}

// killProcesses SIGKILLs every process that match selects and waits,
// bounded by ctx, until they are gone. It repeats the sweep so that
// children forked during the kill are caught too.
func killProcesses(ctx context.Context, match func(procInfo) bool) (int, error) {
	killed := 0
	for round := 0; round < 20; round++ {
		var pids []int
		for _, p := range listProcs() {
			if match(p) {
				pids = append(pids, p.pid)
			}
		}
		if len(pids) == 0 {
			return killed, nil
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
				killed++
			}
		}
		deadline := time.Now().Add(2 * time.Second)
		for _, pid := range pids {
			for alive(pid) && time.Now().Before(deadline) {
				select {
				case <-ctx.Done():
					return killed, ctx.Err()
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
	}
	return killed, errors.New("processes keep appearing in the lab's namespaces")
}

// alive reports whether a process exists and is not a zombie (a zombie has
// released its namespaces already).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// Clean removes every labctl-owned leftover on this machine: every lab
// with state, then namespaces marked as labctl's that no state lists,
// interfaces tagged as labctl's in the root namespace, and orphaned
// daemons. What is not marked as labctl's is never touched. It returns a
// line per thing it removed.
func Clean(ctx context.Context, log *slog.Logger) ([]string, error) {
	if log == nil {
		log = slog.Default()
	}
	var done []string
	var errs []error
	labs, err := List()
	if err != nil {
		return nil, err
	}
	for _, lab := range labs {
		if err := Destroy(ctx, lab, log); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, "lab "+lab)
	}
	if dirs, _ := os.ReadDir(StateRoot); len(dirs) > 0 {
		for _, d := range dirs {
			// A folder with no state file: an up killed before it wrote one,
			// or a state removed by hand; Destroy goes by the lab's tags.
			if _, err := Load(d.Name()); d.IsDir() && errors.Is(err, ErrNoLab) {
				if err := Destroy(ctx, d.Name(), log); err != nil && !errors.Is(err, ErrNoLab) {
					errs = append(errs, err)
					continue
				}
				done = append(done, "stateless folder of lab "+d.Name())
			}
		}
	}
	ents, _ := os.ReadDir(nsdo.RunDir)
	for _, e := range ents {
		ns := e.Name()
		if !strings.HasPrefix(ns, NSPrefix) {
			continue
		}
		tag := nsTag(ns)
		if !strings.HasPrefix(tag, TagPrefix) {
			continue
		}
		ino, _ := nsInode(ns)
		if _, err := killProcesses(ctx, func(p procInfo) bool { return p.netns == ino }); err != nil {
			errs = append(errs, err)
		}
		if err := nsdo.DeleteNamed(ns); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, "netns "+ns)
	}
	if links, err := netlink.LinkList(); err == nil {
		for _, l := range links {
			if strings.HasPrefix(l.Attrs().Alias, TagPrefix) {
				if err := netlink.LinkDel(l); err != nil {
					errs = append(errs, fmt.Errorf("interface %q: %w", l.Attrs().Name, err))
					continue
				}
				done = append(done, "interface "+l.Attrs().Name)
			}
		}
	}
	n, err := killProcesses(ctx, func(p procInfo) bool {
		if !strings.HasPrefix(p.tag, TagPrefix) {
			return false
		}
		_, lerr := Load(labOfTag(p.tag))
		return lerr != nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	if n > 0 {
		done = append(done, fmt.Sprintf("%d orphaned labctl daemons", n))
	}
	if bins, _ := os.ReadDir(BinRoot); len(bins) > 0 {
		for _, b := range bins {
			if _, err := Load(b.Name()); err != nil {
				if err := os.RemoveAll(filepath.Join(BinRoot, b.Name())); err == nil {
					done = append(done, "labctl copy of lab "+b.Name())
				}
			}
		}
	}
	return done, errors.Join(errs...)
}
