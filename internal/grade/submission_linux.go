package grade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/labctl/labctl/nodes"
	"github.com/labctl/labctl/topo"
)

// buildPath is the PATH builds get (the programs' own comes from the
// lab): the system's, and Go's usual home.
const buildPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/go/bin:/usr/lib/go/bin"

// resultPoll is how often the grader looks for a lab's result file.
const resultPoll = 50 * time.Millisecond

// labSlack is added to a lab's own deadline before the grader gives up.
const labSlack = 20 * time.Second

// grade grades one submission. ok is false when the grading was stopped
// before this submission finished (it gets no row).
func (g *grading) grade(ctx context.Context, slot int, s submission) (row Row, ok bool) {
	t0 := time.Now()
	row = Row{Submission: s.name, Lab: labName(g.o.Name, s.index)}
	for _, p := range checkPoints(g.lab0) {
		row.MaxPoints += p
	}
	if ctx.Err() != nil {
		return row, false
	}
	logDir := filepath.Join(g.o.Out, "logs", safeName(s.name))
	_ = os.RemoveAll(logDir)
	defer func() { row.Took = Duration(time.Since(t0).Round(time.Millisecond)) }()
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return row.end(NotGradable, "labctl: "+err.Error()), true
	}
	ents, err := os.ReadDir(s.dir)
	switch {
	case err != nil:
		return row.end(NotGradable, "cannot read the submission's folder: "+unwrapPath(err)), true
	case len(ents) == 0:
		return row.end(NotGradable, "the submission's folder is empty"), true
	}
	uid := g.o.UIDBase + slot
	work := filepath.Join(workRoot(g.o.Name), row.Lab)
	statsDir := work + ".stats"
	defer os.RemoveAll(work)
	defer os.RemoveAll(statsDir)
	if err := copyTree(s.dir, work, uid); err != nil {
		return row.end(NotGradable, "cannot copy the submission: "+err.Error()), true
	}
	if err := os.MkdirAll(statsDir, 0o755); err != nil {
		return row.end(NotGradable, "labctl: "+err.Error()), true
	}
	man, err := loadManifest(work, g.lab0, g.roles) // manifest.go
	if err != nil {
		return row.end(NotGradable, err.Error()), true
	}
	cg, err := g.cg.child(row.Lab, g.o.Limits)
	if err != nil {
		return row.end(NotGradable, "labctl: "+err.Error()), true
	}
	defer cg.remove()

	cmds := map[string]string{}
	var builds []build
	for _, r := range g.roles {
		// The program runs in its host's home, where the supervisor puts
		// a writable copy of the (built) submission.
		cmd, implied, langs, err := expandTemplate(man.template(r), work, nodes.HomeDir(row.Lab, r.host), s.name)
		if errors.Is(err, errAbsent) {
			row.Reference = append(row.Reference, r.key)
			continue
		}
		if err != nil {
			return row.end(NotGradable, fmt.Sprintf("%s: %v", r.key, err)), true
		}
		row.Roles = append(row.Roles, r.key)
		cmds[r.key] = cmd
		row.Languages = appendNew(row.Languages, langs...)
		for _, b := range implied {
			builds = appendBuild(builds, build{host: r.host, command: b})
		}
	}
	if len(row.Roles) == 0 {
		return row.end(NotGradable, "none of the programs the roles need is in the submission"), true
	}
	for _, b := range g.builds {
		builds = appendBuild(builds, b)
	}
	for i, b := range builds {
		step := g.runBuild(ctx, cg, uid, work, b, filepath.Join(logDir, fmt.Sprintf("build-%d-%s.log", i+1, b.host)))
		row.Builds = append(row.Builds, step)
		if ctx.Err() != nil {
			return row, false
		}
		if step.Status != 0 {
			row.Stats = cg.stats()
			why := step.Detail
			if row.Stats.OOMKills > 0 {
				why = fmt.Sprintf("it ran out of memory at the limit of %s (%s)", bytesWords(g.o.Limits.Memory), why)
			}
			return row.end(NotGradable, fmt.Sprintf("build failed (%s): %s", step.Command, why)), true
		}
	}
	cg.killAll()                                    // nothing a build left behind runs on
	_ = os.RemoveAll(filepath.Join(work, ".cache")) // Go's build cache: not the program's

	lab, err := g.o.Lab()
	if err != nil {
		return row.end(NotGradable, "labctl: "+err.Error()), true
	}
	stats := map[string]string{}
	for _, r := range g.roles {
		if !contains(row.Roles, r.key) {
			continue
		}
		p, err := overrideIn(lab, r.ref)
		if err != nil {
			return row.end(NotGradable, "labctl: "+err.Error()), true
		}
		stats[r.key] = filepath.Join(statsDir, strings.ReplaceAll(r.key, "/", "-")+".json")
		cmd, err := lab.Expand(cmds[r.key]) // ${host}: its address
		if err != nil {
			return row.end(NotGradable, fmt.Sprintf("--program %s: %v", r.ref, err)), true
		}
		j := Jail{Procs: cg.procsFiles(), UID: uid, GID: uid, OutputLimit: g.o.OutputLimit,
			StatsFile: stats[r.key], Argv: commandArgv(cmd)}
		p.Command = append([]string{"labctl"}, j.args()...)
		p.Root = true // the wrapper joins the cgroup as root, then drops to uid
		if lim := topo.Duration(g.o.TimeLimit); lim > 0 {
			p.TimeLimit = lim
		}
	}
	if man != nil {
		var mine []role
		for _, r := range g.roles {
			if contains(row.Roles, r.key) {
				mine = append(mine, r)
			}
		}
		if err := man.apply(lab, mine); err != nil {
			return row.end(NotGradable, ManifestName+": "+err.Error()), true
		}
	}
	// The limit bounds the whole lab: the reference programs waiting for
	// a hung submission stop with it.
	if lim := topo.Duration(g.o.TimeLimit); lim > 0 {
		for i := range lab.Nodes {
			for j := range lab.Nodes[i].Programs {
				if p := &lab.Nodes[i].Programs[j]; !p.Service && (p.TimeLimit == 0 || p.TimeLimit > lim) {
					p.TimeLimit = lim
				}
			}
		}
	}
	lab.Name = row.Lab
	if err := lab.Build(); err != nil {
		return row.end(NotGradable, "labctl: "+err.Error()), true
	}
	var res *nodes.Result
	var runErr error
	for attempt := 1; ; attempt++ {
		res, runErr = g.runLab(ctx, lab, s.name, work, uid, logDir, &row)
		if !errors.Is(runErr, errLinksDown) || attempt == labAttempts {
			break
		}
		// The machine's fault, not the submission's: a fresh lab.
		row.Retries++
		g.o.Log.Warn("a lab's links did not come up: building it again", "lab", lab.Name, "err", runErr)
	}
	row.Stats = cg.stats()
	if errors.Is(runErr, context.Canceled) {
		return row, false
	}
	for key, f := range stats {
		var js JailStats
		if b, err := os.ReadFile(f); err == nil && json.Unmarshal(b, &js) == nil && js.Discarded > 0 {
			if row.Discarded == nil {
				row.Discarded = map[string]int64{}
			}
			row.Discarded[key] = js.Discarded
		}
	}
	g.judge(&row, lab, res, runErr)
	return row, true
}

// runLab deploys the submission's lab, runs it to its result and takes it
// down again, whatever happens; the logs are copied to logDir first.
func (g *grading) runLab(ctx context.Context, lab *topo.Lab, sub, work string, uid int, logDir string, row *Row) (*nodes.Result, error) {
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		labOps.Lock()
		defer labOps.Unlock()
		if err := nodes.Destroy(dctx, lab.Name, g.o.Log); err != nil && !errors.Is(err, nodes.ErrNoLab) {
			g.o.Log.Error("cannot take a submission's lab down", "lab", lab.Name, "err", err)
		}
	}()
	labOps.Lock()
	st, err := nodes.Deploy(ctx, lab, nodes.Options{Backend: g.o.Backend, Log: g.o.Log})
	labOps.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Canceled
		}
		return nil, fmt.Errorf("the lab could not be built: %w", err)
	}
	if err := waitLinksUp(ctx, st); err != nil {
		if ctx.Err() != nil {
			return nil, context.Canceled
		}
		_ = copyFile(filepath.Join(nodes.Dir(st.Lab), "engine.log"), filepath.Join(logDir, "labctl-engine.log"), maxLogCopy)
		return nil, fmt.Errorf("%w: %v", errLinksDown, err)
	}
	if err := nodes.MarkGrading(st.Lab, g.o.Name, sub); err != nil {
		return nil, err
	}
	plan, err := nodes.BuildPlan(lab, st, work)
	if err != nil {
		return nil, err
	}
	plan.UID, plan.GID, plan.User = uid, uid, fmt.Sprintf("grade%d", uid)
	if err := plan.Save(); err != nil {
		return nil, err
	}
	sup, err := nodes.StartDaemon(st, "supervisor", []string{"supervise", st.Lab})
	if err != nil {
		return nil, err
	}
	defer copyLogs(st.Lab, logDir, row)
	deadline := time.NewTimer(plan.Deadline + labSlack)
	defer deadline.Stop()
	tick := time.NewTicker(resultPoll)
	defer tick.Stop()
	for {
		if res, err := nodes.LoadResult(st.Lab); err == nil {
			return res, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if !sup.Alive() {
			return nil, fmt.Errorf("the lab's supervisor stopped before the checks")
		}
		select {
		case <-ctx.Done():
			return nil, context.Canceled
		case <-deadline.C:
			return nil, errLabDeadline
		case <-tick.C:
		}
	}
}

var errLabDeadline = errors.New("the lab ran past its deadline")

// errLinksDown: a fresh lab's links did not come up; it is built again, at
// most labAttempts times in all.
var errLinksDown = errors.New("the lab's links did not come up")

const labAttempts = 3

// maxLogCopy bounds each log copied into the report (student programs'
// output is already capped by their wrapper).
const maxLogCopy = 8 << 20

// copyLogs copies a lab's logs into the report's folder.
func copyLogs(lab, logDir string, row *Row) {
	src := nodes.LogDir(lab)
	_ = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		if copyFile(p, filepath.Join(logDir, rel), maxLogCopy) == nil {
			row.Logs = append(row.Logs, rel)
		}
		return nil
	})
	if copyFile(nodes.OutputLog(lab), filepath.Join(logDir, "output.log"), maxLogCopy) == nil {
		row.Logs = append(row.Logs, "output.log")
	}
}

func copyFile(src, dst string, limit int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, io.LimitReader(in, limit))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// runBuild runs one build step in the copy, confined like the programs
// and with no network at all, bounded by the build limit.
func (g *grading) runBuild(ctx context.Context, cg *cgroup, uid int, work string, b build, logPath string) BuildStep {
	step := BuildStep{Host: b.host, Command: b.command, Log: filepath.Base(logPath)}
	t0 := time.Now()
	defer func() { step.Took = Duration(time.Since(t0).Round(time.Millisecond)) }()
	logf, err := os.Create(logPath)
	if err != nil {
		step.Status, step.Detail = -1, "labctl: "+err.Error()
		return step
	}
	defer logf.Close()
	j := Jail{Procs: cg.procsFiles(), UID: uid, GID: uid, OutputLimit: g.o.OutputLimit, NoNet: true,
		Argv: commandArgv(b.command)}
	bctx, cancel := context.WithTimeout(ctx, g.o.BuildLimit)
	defer cancel()
	cmd := exec.CommandContext(bctx, g.self, j.args()...)
	cmd.Dir = work
	// Go builds a lone file outside any module, offline, with its cache in
	// the copy.
	cmd.Env = []string{"PATH=" + buildPath, "HOME=" + work, "LANG=C.UTF-8",
		"GOCACHE=" + filepath.Join(work, ".cache", "go-build"), "GOPATH=" + filepath.Join(work, ".cache", "go"),
		"GOFLAGS=-mod=mod", "GOPROXY=off", "GOTOOLCHAIN=local", "GO111MODULE=auto", "CGO_ENABLED=0"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Run()
	if bctx.Err() == context.DeadlineExceeded {
		cg.killAll()
		step.Status, step.Detail = -1, fmt.Sprintf("took longer than %s", g.o.BuildLimit)
		return step
	}
	if err != nil {
		step.Status = -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			step.Status = ee.ExitCode()
		}
		step.Detail = fmt.Sprintf("exit status %d: %s", step.Status, lastLine(logPath))
	}
	return step
}

// lastLine is the last non-empty line of a file (bounded read).
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const tail = 4096
	if fi, err := f.Stat(); err == nil && fi.Size() > tail {
		_, _ = f.Seek(-tail, io.SeekEnd)
	}
	b, _ := io.ReadAll(io.LimitReader(f, tail))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return clip(l, 200)
		}
	}
	return "(no output)"
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// copyTree copies a submission into its writable copy, owned by the
// submission's user: regular files and folders only (a symlink could
// point anywhere), at most maxCopy bytes.
func copyTree(src, dst string, uid int) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	_ = os.RemoveAll(dst)
	var total int64
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", relOr(src, p), unwrapErr(err))
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			if err := os.Mkdir(to, 0o755); err != nil {
				return err
			}
			return os.Lchown(to, uid, uid)
		case !d.Type().IsRegular():
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if total += fi.Size(); total > maxCopy {
			return fmt.Errorf("more than %d MiB of files", maxCopy>>20)
		}
		if err := copyFile(p, to, maxCopy); err != nil {
			return fmt.Errorf("%s: %w", rel, unwrapErr(err))
		}
		if err := os.Chmod(to, fi.Mode().Perm()|0o600); err != nil {
			return err
		}
		return os.Lchown(to, uid, uid)
	})
}

func relOr(base, p string) string {
	if r, err := filepath.Rel(base, p); err == nil {
		return r
	}
	return p
}

func unwrapErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func unwrapPath(err error) string { return unwrapErr(err).Error() }

func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] == '.' {
		return "_" + string(b)
	}
	return string(b)
}

func appendNew(list []string, xs ...string) []string {
	for _, x := range xs {
		found := false
		for _, y := range list {
			found = found || x == y
		}
		if !found {
			list = append(list, x)
		}
	}
	return list
}

func appendBuild(list []build, b build) []build {
	for _, x := range list {
		if x.command == b.command {
			return list
		}
	}
	return append(list, b)
}

// commandArgv runs a simple command directly, so the program's own fate
// (a signal, say) is what the supervisor sees, not a shell's account of
// it; anything with shell syntax runs under sh -c.
func commandArgv(cmd string) []string {
	if !strings.ContainsAny(cmd, "|&;<>()$`\\\n*?[~#") {
		if argv, err := topo.SplitCommand(cmd); err == nil && len(argv) > 0 && !strings.Contains(argv[0], "=") {
			return argv
		}
	}
	return []string{"sh", "-c", cmd}
}
