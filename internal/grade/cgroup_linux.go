package grade

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Limits bound what one submission's processes may use together: every
// program of the submission (and its build) runs in one cgroup.
type Limits struct {
	Memory int64   `json:"memory"` // bytes, swap included where the kernel accounts it
	Pids   int     `json:"pids"`   // processes and threads: a fork bomb stops here
	CPU    float64 `json:"cpu"`    // CPUs
}

// DefaultLimits suit the course programs with a wide margin.
var DefaultLimits = Limits{Memory: 512 << 20, Pids: 256, CPU: 1}

// cgroupRoot is a grading's share of the cgroup tree: one folder per
// controller hierarchy (v1) or one folder (v2), holding one child per
// submission.
type cgroupRoot struct {
	version int      // 1 or 2
	dirs    []string // the grading's folder in each hierarchy
}

// Version says which cgroup interface the grading uses, for the report.
func (r *cgroupRoot) Version() string {
	if r.version == 2 {
		return "v2"
	}
	return "v1 (cpu, memory, pids)"
}

// cgroup is one submission's cgroup.
type cgroup struct {
	version int
	dirs    []string // v2: one; v1: cpu, memory, pids
}

// Stats is what the kernel counted for a submission.
type Stats struct {
	OOMKills    int   `json:"oom_kills"`
	PidsLimited int   `json:"pids_limited"` // forks refused at the pids limit
	MemoryPeak  int64 `json:"memory_peak"`
}

// mountsFile lists the mounts; a variable so tests can say so.
var mountsFile = "/proc/self/mounts"

// newCgroupRoot makes the grading's cgroup folder: cgroup v2 where it is
// mounted with the memory and pids controllers available, else v1's cpu,
// memory and pids hierarchies (nested under labctl's own cgroup there, so
// any limit around labctl still applies).
func newCgroupRoot(name string) (*cgroupRoot, error) {
	r, mount, err := findCgroupRoot(name)
	if err != nil {
		return nil, err
	}
	if r.version == 2 {
		return newCgroupRootV2(mount, name)
	}
	for _, d := range r.dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("cgroups: make %q: %w", d, err)
		}
	}
	return r, nil
}

// findCgroupRoot says where a grading's cgroups are (or would be), and
// the v2 mount point.
func findCgroupRoot(name string) (*cgroupRoot, string, error) {
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, "", err
	}
	if dir, ok := mounts["cgroup2"]; ok {
		if ctl, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers")); err == nil &&
			hasAll(strings.Fields(string(ctl)), "memory", "pids") {
			return &cgroupRoot{version: 2, dirs: []string{filepath.Join(dir, "labctl-grade", name)}}, dir, nil
		}
	}
	var dirs []string
	for _, c := range []string{"cpu", "memory", "pids"} {
		m, ok := mounts[c]
		if !ok {
			return nil, "", fmt.Errorf("cgroups: neither cgroup v2 with memory and pids controllers nor a v1 %q hierarchy is mounted", c)
		}
		own, err := ownCgroup(c)
		if err != nil {
			return nil, "", err
		}
		dirs = append(dirs, filepath.Join(m, own, "labctl-grade-"+name))
	}
	return &cgroupRoot{version: 1, dirs: dirs}, "", nil
}

// removeCgroups kills every process in a grading's cgroups and removes
// them (what a crashed labctl grade left).
func removeCgroups(name string) {
	r, _, err := findCgroupRoot(name)
	if err != nil {
		return
	}
	kids := map[string]bool{}
	for _, d := range r.dirs {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.IsDir() {
				kids[e.Name()] = true
			}
		}
	}
	for k := range kids {
		cg := &cgroup{version: r.version}
		for _, d := range r.dirs {
			cg.dirs = append(cg.dirs, filepath.Join(d, k))
		}
		cg.remove()
	}
	r.remove()
}

func newCgroupRootV2(mount, name string) (*cgroupRoot, error) {
	// The root of the hierarchy: its children may have controllers (a
	// cgroup with processes of its own may not, so labctl's cannot).
	top := filepath.Join(mount, "labctl-grade")
	d := filepath.Join(top, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, fmt.Errorf("cgroups: make %q: %w", d, err)
	}
	want := []string{"+memory", "+pids"}
	if ctl, _ := os.ReadFile(filepath.Join(mount, "cgroup.controllers")); hasAll(strings.Fields(string(ctl)), "cpu") {
		want = append(want, "+cpu")
	}
	for _, dir := range []string{mount, top, d} {
		for _, w := range want {
			// One at a time: a controller already on is no error.
			err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(w), 0)
			if errors.Is(err, syscall.EBUSY) && dir == mount {
				// A container's cgroup root holds its processes, and a
				// cgroup with processes may not hand controllers down:
				// move them into a child first, as docker-in-docker does.
				if err := evacuate(mount); err != nil {
					return nil, err
				}
				_ = os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(w), 0)
			}
		}
	}
	on, err := os.ReadFile(filepath.Join(d, "cgroup.subtree_control"))
	if err != nil || !hasAll(strings.Fields(string(on)), "memory", "pids") {
		return nil, fmt.Errorf("cgroups: cannot enable the memory and pids controllers in %q (%q)", d, strings.TrimSpace(string(on)))
	}
	return &cgroupRoot{version: 2, dirs: []string{d}}, nil
}

// evacuate moves every process of a (namespaced) cgroup v2 root into its
// child "init".
func evacuate(mount string) error {
	init := filepath.Join(mount, "init")
	if err := os.MkdirAll(init, 0o755); err != nil {
		return fmt.Errorf("cgroups: make %q: %w", init, err)
	}
	b, err := os.ReadFile(filepath.Join(mount, "cgroup.procs"))
	if err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	for _, pid := range strings.Fields(string(b)) {
		// A process that is gone, or a kernel thread, stays: no error.
		_ = os.WriteFile(filepath.Join(init, "cgroup.procs"), []byte(pid), 0)
	}
	return nil
}

func hasAll(have []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}

// cgroupMounts maps "cgroup2" and each v1 controller to its mount point.
func cgroupMounts() (map[string]string, error) {
	f, err := os.Open(mountsFile)
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 4 {
			continue
		}
		switch fl[2] {
		case "cgroup2":
			if _, ok := out["cgroup2"]; !ok {
				out["cgroup2"] = fl[1]
			}
		case "cgroup":
			for _, o := range strings.Split(fl[3], ",") {
				if o == "cpu" || o == "memory" || o == "pids" {
					out[o] = fl[1]
				}
			}
		}
	}
	return out, sc.Err()
}

// ownCgroup is this process's cgroup in a v1 controller's hierarchy.
func ownCgroup(controller string) (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("cgroups: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == controller {
				return f[2], nil
			}
		}
	}
	return "/", nil
}

// child makes one submission's cgroup with its limits.
func (r *cgroupRoot) child(name string, lim Limits) (*cgroup, error) {
	cg := &cgroup{version: r.version}
	for _, d := range r.dirs {
		c := filepath.Join(d, name)
		if err := os.Mkdir(c, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			cg.remove()
			return nil, fmt.Errorf("cgroups: make %q: %w", c, err)
		}
		cg.dirs = append(cg.dirs, c)
	}
	cg.killAll() // a crashed run's leftovers in a cgroup of the same name
	if err := cg.limit(lim); err != nil {
		cg.remove()
		return nil, err
	}
	return cg, nil
}

func (cg *cgroup) limit(lim Limits) error {
	period := 100000
	quota := int(lim.CPU * float64(period))
	var writes [][2]string
	if cg.version == 2 {
		d := cg.dirs[0]
		writes = [][2]string{
			{filepath.Join(d, "memory.max"), strconv.FormatInt(lim.Memory, 10)},
			{filepath.Join(d, "memory.swap.max"), "0"},
			{filepath.Join(d, "pids.max"), strconv.Itoa(lim.Pids)},
			{filepath.Join(d, "cpu.max"), fmt.Sprintf("%d %d", quota, period)},
		}
	} else {
		cpu, mem, pids := cg.dirs[0], cg.dirs[1], cg.dirs[2]
		writes = [][2]string{
			{filepath.Join(cpu, "cpu.cfs_period_us"), strconv.Itoa(period)},
			{filepath.Join(cpu, "cpu.cfs_quota_us"), strconv.Itoa(quota)},
			{filepath.Join(mem, "memory.limit_in_bytes"), strconv.FormatInt(lim.Memory, 10)},
			{filepath.Join(mem, "memory.memsw.limit_in_bytes"), strconv.FormatInt(lim.Memory, 10)},
			{filepath.Join(pids, "pids.max"), strconv.Itoa(lim.Pids)},
		}
	}
	for _, w := range writes {
		err := os.WriteFile(w[0], []byte(w[1]), 0)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrNotExist) && (strings.HasSuffix(w[0], "swap.max") || strings.Contains(w[0], "memsw") || strings.HasPrefix(filepath.Base(w[0]), "cpu.")):
			// No swap accounting, or no cpu controller: memory and pids still hold.
		default:
			return fmt.Errorf("cgroups: set %q to %s: %w", w[0], w[1], err)
		}
	}
	return nil
}

// procsFiles are the files a process writes its PID to, to join.
func (cg *cgroup) procsFiles() []string {
	var out []string
	for _, d := range cg.dirs {
		out = append(out, filepath.Join(d, "cgroup.procs"))
	}
	return out
}

// pids lists the processes in the cgroup.
func (cg *cgroup) pids() []int {
	b, err := os.ReadFile(filepath.Join(cg.dirs[len(cg.dirs)-1], "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// killAll ends every process in the cgroup, forks racing the kill
// included (the pids limit bounds them), within a few seconds.
func (cg *cgroup) killAll() {
	if cg.version == 2 {
		_ = os.WriteFile(filepath.Join(cg.dirs[0], "cgroup.kill"), []byte("1"), 0)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ps := cg.pids()
		if len(ps) == 0 {
			return
		}
		for _, p := range ps {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stats reads what the kernel counted.
func (cg *cgroup) stats() Stats {
	var s Stats
	if cg.version == 2 {
		d := cg.dirs[0]
		s.OOMKills = keyed(filepath.Join(d, "memory.events"), "oom_kill")
		s.PidsLimited = keyed(filepath.Join(d, "pids.events"), "max")
		s.MemoryPeak = readInt(filepath.Join(d, "memory.peak"))
		return s
	}
	s.OOMKills = keyed(filepath.Join(cg.dirs[1], "memory.oom_control"), "oom_kill")
	s.MemoryPeak = readInt(filepath.Join(cg.dirs[1], "memory.max_usage_in_bytes"))
	s.PidsLimited = keyed(filepath.Join(cg.dirs[2], "pids.events"), "max")
	return s
}

func keyed(path, key string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == key {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

func readInt(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// remove kills what is left and removes the cgroup.
func (cg *cgroup) remove() {
	cg.killAll()
	for _, d := range cg.dirs {
		rmdirRetry(d)
	}
}

// remove removes the grading's folders (once its submissions' are gone).
func (r *cgroupRoot) remove() {
	for _, d := range r.dirs {
		rmdirRetry(d)
	}
	if r.version == 2 {
		_ = syscall.Rmdir(filepath.Dir(r.dirs[0])) // the shared top, if no other grading uses it
	}
}

// rmdirRetry removes a cgroup folder; the kernel refuses while the last
// killed process is still exiting, so it retries for a moment.
func rmdirRetry(d string) {
	for i := 0; i < 50; i++ {
		err := syscall.Rmdir(d)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
