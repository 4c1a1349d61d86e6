// Package grade grades a folder of submissions: each submission runs in its
// own lab instance (its programs in place of the lab's reference programs),
// N at a time, each confined to a cgroup with CPU, memory and pids limits,
// its output capped and its files in a writable copy; the lab's checks
// decide, and the reports (CSV, JSON, HTML, Gradescope) say per
// submission each check, its points, the outcome and why.
package grade

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labctl/labctl/nodes"
	"github.com/labctl/labctl/topo"
)

// Outcomes: every submission gets exactly one.
const (
	Pass        = "pass"
	Fail        = "fail"
	Timeout     = "timeout"
	Crashed     = "crashed"
	OOM         = "out-of-memory"
	NotGradable = "not-gradable"
)

// ErrInterrupted says the grading was stopped (Ctrl-C); the report holds
// the submissions that finished.
var ErrInterrupted = errors.New("grading interrupted")

// UsageError is bad input found before anything ran: a flag, the lab, the
// submissions folder.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *UsageError) Unwrap() error { return e.Err }

// Options is one grading run.
type Options struct {
	// Lab returns a fresh copy of the lab for each submission.
	Lab         func() (*topo.Lab, error)
	Submissions string   // one subfolder per submission
	Programs    []string // HOST=TEMPLATE or HOST/PROGRAM=TEMPLATE
	Builds      []string // HOST=COMMAND: run in the copy before the lab, no network
	Jobs        int      // submissions at a time; default: the cores
	Out         string   // report folder
	Name        string   // prefixes every lab; default a fresh id
	Formats     []string // csv, json, html, gradescope
	Shard       Shard
	TimeLimit   time.Duration // each student program; 0: the lab's
	BuildLimit  time.Duration // each build step
	Limits      Limits
	OutputLimit int64 // bytes per program
	UIDBase     int   // submissions run as UIDBase+slot (a user no one else is)
	Backend     string
	Log         *slog.Logger
	Progress    io.Writer // a line per submission as it finishes
}

// Defaults for the options left zero.
const (
	DefaultBuildLimit  = 60 * time.Second
	DefaultOutputLimit = 1 << 20
	// DefaultUIDBase is far above any real account (and below 2^31).
	DefaultUIDBase = 1879048192
	// maxSubmissions bounds a grading (and the report's size).
	maxSubmissions = 10000
	// maxCopy bounds one submission's files (as the supervisor's own copy
	// for overridden programs does).
	maxCopy = 64 << 20
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,23}$`)

// role is one replaced program.
type role struct {
	key      string // host/program
	host     string
	ref      string // as given: HOST or HOST/PROGRAM
	template string
}

type build struct {
	host    string
	command string
}

// grading is one run's shared state.
type grading struct {
	o      Options
	roles  []role
	builds []build
	cg     *cgroupRoot
	self   string
	lab0   *topo.Lab
}

// NewName returns a fresh grading id.
func NewName() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "g" + hex.EncodeToString(b)
}

// Run grades every submission in o.Submissions (its shard) and writes the
// reports. It returns the report even when interrupted (with
// ErrInterrupted); other errors mean nothing was graded.
func Run(ctx context.Context, o Options) (*Report, error) {
	g, err := prepare(o)
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	o = g.o
	subs, err := listSubmissions(o.Submissions, o.Out)
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	mine := o.Shard.pick(subs)
	if err := os.MkdirAll(filepath.Join(o.Out, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("--out %q: %w", o.Out, err)
	}
	if n, err := Down(ctx, o.Name, true, o.Log); err != nil {
		return nil, err
	} else if n > 0 {
		o.Log.Warn("took down labs a previous grading with this name left", "grading", o.Name, "labs", n)
	}
	g.cg, err = newCgroupRoot(o.Name)
	if err != nil {
		return nil, err
	}
	defer g.cg.remove()
	defer os.RemoveAll(workRoot(o.Name))

	rep := &Report{Out: o.Out, Grading: o.Name, Lab: g.lab0.Name, Started: time.Now().UTC(), Jobs: o.Jobs,
		Shard: o.Shard.String(), Cgroup: g.cg.Version(), Limits: o.Limits, OutputLimit: o.OutputLimit,
		Submissions: len(mine)}
	for i, c := range g.lab0.Checks {
		rep.Checks = append(rep.Checks, CheckInfo{Title: c.Title(), Points: checkPoints(g.lab0)[i]})
	}
	if o.Progress != nil {
		shard := ""
		if o.Shard.N > 1 {
			shard = fmt.Sprintf(" (shard %s of %d in the class)", o.Shard, len(subs))
		}
		fmt.Fprintf(o.Progress, "*** grading %s: %d submissions%s, %d at a time, cgroup %s; reports in %s\n",
			o.Name, len(mine), shard, o.Jobs, g.cg.Version(), o.Out)
	}
	jobs := make(chan submission)
	rows := make(chan Row)
	var wg sync.WaitGroup
	for slot := 0; slot < o.Jobs; slot++ {
		wg.Add(1)
		go func(slot int) {
			defer wg.Done()
			for s := range jobs {
				row, ok := g.grade(ctx, slot, s)
				if ok {
					rows <- row
				}
			}
		}(slot)
	}
	go func() {
		defer close(jobs)
		for _, s := range mine {
			select {
			case jobs <- s:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(rows) }()
	done := 0
	for r := range rows {
		done++
		rep.Rows = append(rep.Rows, r)
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "  [%d/%d] %-24s %-13s %s/%s  %s\n", done, len(mine), r.Submission, r.Outcome,
				fmtPoints(r.Points), fmtPoints(r.MaxPoints), r.Reason)
		}
	}
	interrupted := ctx.Err() != nil && len(rep.Rows) < len(mine)
	rep.finish(interrupted)
	if err := rep.Write(o.Out, o.Formats); err != nil {
		return rep, err
	}
	if interrupted {
		return rep, ErrInterrupted
	}
	return rep, nil
}

// prepare checks everything that can be checked before any lab is made.
func prepare(o Options) (*grading, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}
	if o.Name == "" {
		o.Name = NewName()
	}
	if !nameRE.MatchString(o.Name) {
		return nil, fmt.Errorf("--name %q: want a-z, 0-9 and '-', at most 24 characters", o.Name)
	}
	if o.Out == "" {
		o.Out = "grade-" + o.Name
	}
	if len(o.Formats) == 0 {
		o.Formats = []string{"csv", "json", "html"}
	}
	for _, f := range o.Formats {
		switch f {
		case "csv", "json", "html", "gradescope":
		default:
			return nil, fmt.Errorf("--format %q: want csv, json, html or gradescope", f)
		}
	}
	if o.BuildLimit == 0 {
		o.BuildLimit = DefaultBuildLimit
	}
	if o.OutputLimit == 0 {
		o.OutputLimit = DefaultOutputLimit
	}
	if o.Limits == (Limits{}) {
		o.Limits = DefaultLimits
	}
	if o.UIDBase == 0 {
		o.UIDBase = DefaultUIDBase
	}
	if o.Shard.N == 0 {
		o.Shard = Shard{K: 0, N: 1}
	}
	if o.Submissions == "" {
		return nil, errors.New("--submissions: name the folder that holds one subfolder per submission")
	}
	if len(o.Programs) == 0 {
		return nil, errors.New("--program: say which program a submission replaces, e.g. --program x='python3 client.py ${server}'")
	}
	lab, err := o.Lab()
	if err != nil {
		return nil, err
	}
	g := &grading{o: o, lab0: lab}
	var specs []string
	for _, spec := range o.Programs {
		// server,client1,client2=TEMPLATE, or a role of the lab's roles:
		// one submission fills several hosts.
		e, err := lab.ExpandSpec("--program", spec)
		if err != nil {
			return nil, err
		}
		specs = append(specs, e...)
	}
	for _, spec := range specs {
		ref, tmpl, ok := strings.Cut(spec, "=")
		if !ok || ref == "" || strings.TrimSpace(tmpl) == "" {
			return nil, fmt.Errorf("--program %q: want HOST=TEMPLATE or HOST/PROGRAM=TEMPLATE", spec)
		}
		p, err := overrideIn(lab, ref)
		if err != nil {
			return nil, err
		}
		host, _, _ := strings.Cut(ref, "/")
		for _, r := range g.roles {
			if r.key == host+"/"+p.Name {
				return nil, fmt.Errorf("--program %q: %s is already replaced", spec, r.key)
			}
		}
		g.roles = append(g.roles, role{key: host + "/" + p.Name, host: host, ref: ref, template: tmpl})
	}
	for _, spec := range o.Builds {
		host, cmd, ok := strings.Cut(spec, "=")
		if !ok || host == "" || strings.TrimSpace(cmd) == "" {
			return nil, fmt.Errorf("--build %q: want HOST=COMMAND", spec)
		}
		if lab.Node(host) == nil {
			return nil, fmt.Errorf("--build %q: the lab %q has no host %q", spec, lab.Name, host)
		}
		g.builds = append(g.builds, build{host: host, command: cmd})
	}
	if g.self, err = os.Executable(); err != nil {
		return nil, fmt.Errorf("find labctl binary: %w", err)
	}
	return g, nil
}

// overrideIn replaces the program ref names ("HOST" or "HOST/PROGRAM") in
// lab and returns it: an unknown host or program is an error.
func overrideIn(lab *topo.Lab, ref string) (*topo.Program, error) {
	if err := lab.OverrideProgram(ref + "=true"); err != nil {
		if lab.Node(strings.SplitN(ref, "/", 2)[0]) == nil {
			return nil, fmt.Errorf("--program %q: the lab %q has no host %q", ref, lab.Name, strings.SplitN(ref, "/", 2)[0])
		}
		return nil, err
	}
	host, prog, hasProg := strings.Cut(ref, "/")
	n := lab.Node(host)
	for i := range n.Programs {
		if (hasProg && n.Programs[i].Name == prog) || (!hasProg && len(n.Programs) == 1) {
			return &n.Programs[i], nil
		}
	}
	return nil, fmt.Errorf("--program %q: no such program", ref)
}

// submission is one folder to grade.
type submission struct {
	name  string
	dir   string
	index int // in the whole class, sorted: the lab's number
}

// listSubmissions lists the subfolders (symlinks to folders included),
// sorted by name, but not the reports' folder.
func listSubmissions(dir, reports string) ([]submission, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("--submissions %q: %w", dir, err)
	}
	absReports, _ := filepath.Abs(reports)
	var out []submission
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if abs, _ := filepath.Abs(p); abs == absReports {
			continue // the reports' own folder, put among the submissions
		}
		// Files beside the folders are not submissions; a link that leads
		// nowhere is one (it gets a row saying so).
		if fi, err := os.Stat(p); (err == nil && !fi.IsDir()) || (err != nil && e.Type()&os.ModeSymlink == 0 && !e.IsDir()) {
			continue
		}
		out = append(out, submission{name: e.Name(), dir: p})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--submissions %q: no subfolders (each submission is one folder)", dir)
	}
	if len(out) > maxSubmissions {
		return nil, fmt.Errorf("--submissions %q: %d folders, more than %d", dir, len(out), maxSubmissions)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	for i := range out {
		out[i].index = i
	}
	return out, nil
}

// Shard is a deterministic share of a class: submission names hashed
// (FNV-1a) modulo N; shard K (0 <= K < N) takes those equal to K. A
// name's shard does not depend on the other names, so adding a student
// moves no one.
type Shard struct{ K, N int }

// ParseShard reads "K/N".
func ParseShard(s string) (Shard, error) {
	k, n, ok := strings.Cut(s, "/")
	ki, err1 := strconv.Atoi(k)
	ni, err2 := strconv.Atoi(n)
	if !ok || err1 != nil || err2 != nil || ni < 1 || ki < 0 || ki >= ni {
		return Shard{}, fmt.Errorf("--shard %q: want K/N with 0 <= K < N (e.g. $JOB_COMPLETION_INDEX/4)", s)
	}
	return Shard{K: ki, N: ni}, nil
}

func (s Shard) String() string {
	if s.N <= 1 {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.K, s.N)
}

// Of says which shard a submission belongs to.
func (s Shard) Of(name string) int {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int(h.Sum32() % uint32(s.N))
}

func (s Shard) pick(all []submission) []submission {
	if s.N <= 1 {
		return all
	}
	var out []submission
	for _, x := range all {
		if s.Of(x.name) == s.K {
			out = append(out, x)
		}
	}
	return out
}

// labName is the lab of the grading's index-th submission.
func labName(grading string, index int) string { return fmt.Sprintf("%s-%03d", grading, index) }

// WorkRoot holds each grading's copies of its submissions (readable by the
// submissions' users, unlike a home folder the teacher's files may sit in).
// Not under nodes.BinRoot, whose folders that are not labs `labctl clean`
// removes.
var WorkRoot = "/var/lib/labctl-grade"

func workRoot(grading string) string { return filepath.Join(WorkRoot, grading) }

// Labs lists the labs of a grading on this machine.
func Labs(grading string) ([]string, error) {
	all, err := nodes.List()
	if err != nil {
		return nil, err
	}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(grading) + `-[0-9]{3,}$`)
	var out []string
	for _, l := range all {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return out, nil
}

// Down takes down the labs of a grading, and nothing else: all of them,
// or (orphansOnly) those whose labctl grade process is gone, as a crash
// leaves them. It returns how many it took down.
func Down(ctx context.Context, grading string, orphansOnly bool, log *slog.Logger) (int, error) {
	if !nameRE.MatchString(grading) {
		return 0, fmt.Errorf("grading %q: want a-z, 0-9 and '-', at most 24 characters", grading)
	}
	labs, err := Labs(grading)
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, l := range labs {
		if m, ok := nodes.GradingOf(l); orphansOnly && ok && !m.Orphaned() {
			continue
		}
		n++
		if err := nodes.Destroy(ctx, l, log); err != nil {
			errs = append(errs, fmt.Errorf("lab %q: %w", l, err))
		}
	}
	if !orphansOnly {
		// The grading's processes, cgroups and copies go too.
		removeCgroups(grading)
		if err := os.RemoveAll(workRoot(grading)); err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}
