package grade

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labctl/labctl/nodes"
)

// Duration marshals as a Go duration string ("1.5s").
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes "1.5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "1.5s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// Report is a grading's result; report.json is this, as JSON.
type Report struct {
	Out         string         `json:"-"` // the folder it is written to
	Grading     string         `json:"grading"`
	Lab         string         `json:"lab"`
	Started     time.Time      `json:"started"`
	Took        Duration       `json:"took"`
	Jobs        int            `json:"jobs"`
	Shard       string         `json:"shard,omitempty"` // "K/N"; merged reports list theirs in Shards
	Shards      []string       `json:"shards,omitempty"`
	Cgroup      string         `json:"cgroup"` // which cgroup interface confined the submissions
	Limits      Limits         `json:"limits"`
	OutputLimit int64          `json:"output_limit"`
	Submissions int            `json:"submissions"` // in this shard
	Interrupted bool           `json:"interrupted,omitempty"`
	Checks      []CheckInfo    `json:"checks"`
	Rows        []Row          `json:"rows"`
	Counts      map[string]int `json:"counts"`
	Summary     string         `json:"summary"`
}

// CheckInfo is one of the lab's checks: a column of the report.
type CheckInfo struct {
	Title  string  `json:"title"`
	Points float64 `json:"points"`
}

// Row is one submission.
type Row struct {
	Submission string                `json:"submission"`
	Outcome    string                `json:"outcome"`
	Reason     string                `json:"reason,omitempty"`
	Points     float64               `json:"points"`
	MaxPoints  float64               `json:"max_points"`
	Checks     []RowCheck            `json:"checks,omitempty"`
	Languages  []string              `json:"languages,omitempty"`
	Roles      []string              `json:"roles,omitempty"`     // programs the submission replaced
	Reference  []string              `json:"reference,omitempty"` // optional roles it lacked: the lab's program ran
	Builds     []BuildStep           `json:"builds,omitempty"`
	Programs   []nodes.ProgramStatus `json:"programs,omitempty"`
	Stats      Stats                 `json:"stats"`
	Discarded  map[string]int64      `json:"output_discarded,omitempty"` // per program, bytes past the cap
	Logs       []string              `json:"logs,omitempty"`             // under logs/SUBMISSION/
	Lab        string                `json:"lab"`
	Retries    int                   `json:"retries,omitempty"` // labs built again because their links did not come up
	Took       Duration              `json:"took"`
}

// RowCheck is one check's verdict for one submission.
type RowCheck struct {
	Title  string  `json:"title"`
	Pass   bool    `json:"pass"`
	Manual bool    `json:"manual,omitempty"` // a person decides: neither passed nor failed
	Points float64 `json:"points"`
	Max    float64 `json:"max"`
	Detail string  `json:"detail,omitempty"`
}

// BuildStep is one build command's run.
type BuildStep struct {
	Host    string   `json:"host"`
	Command string   `json:"command"`
	Status  int      `json:"status"`
	Detail  string   `json:"detail,omitempty"`
	Log     string   `json:"log"`
	Took    Duration `json:"took"`
}

func (r Row) end(outcome, reason string) Row {
	r.Outcome, r.Reason = outcome, strings.TrimSpace(reason)
	return r
}

var outcomes = []string{Pass, Fail, Timeout, Crashed, OOM, NotGradable}

// finish sorts the rows and writes the counts and the summary line.
func (r *Report) finish(interrupted bool) {
	r.Interrupted = interrupted
	if r.Took == 0 && !r.Started.IsZero() {
		r.Took = Duration(time.Since(r.Started).Round(time.Millisecond))
	}
	sort.Slice(r.Rows, func(i, j int) bool { return r.Rows[i].Submission < r.Rows[j].Submission })
	r.Counts = map[string]int{}
	var pts, max float64
	for _, row := range r.Rows {
		r.Counts[row.Outcome]++
		pts += row.Points
	}
	for _, c := range r.Checks {
		max += c.Points
	}
	var parts []string
	for _, o := range outcomes {
		parts = append(parts, fmt.Sprintf("%d %s", r.Counts[o], o))
	}
	mean := 0.0
	if len(r.Rows) > 0 {
		mean = pts / float64(len(r.Rows))
	}
	s := fmt.Sprintf("grading %s (lab %s): %d of %d submissions graded: %s; mean %s/%s points (%s, jobs %d, cgroup %s)",
		r.Grading, r.Lab, len(r.Rows), r.Submissions, strings.Join(parts, ", "), fmtPoints(mean), fmtPoints(max),
		r.Took, r.Jobs, r.Cgroup)
	if interrupted {
		s += "; INTERRUPTED: the others were not graded"
	}
	r.Summary = s
}

func fmtPoints(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) }

// Write writes the report in each format into dir.
func (r *Report) Write(dir string, formats []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var errs []error
	for _, f := range formats {
		switch f {
		case "csv":
			errs = append(errs, r.writeCSV(filepath.Join(dir, "report.csv")))
		case "json":
			errs = append(errs, writeJSON(filepath.Join(dir, "report.json"), r))
		case "html":
			errs = append(errs, r.writeHTML(filepath.Join(dir, "report.html")))
		case "gradescope":
			errs = append(errs, r.writeGradescope(dir))
		}
	}
	return errors.Join(errs...)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// CSV: one row per submission, one column per check (points earned).
func (r *Report) writeCSV(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	head := []string{"submission", "outcome", "points", "max_points"}
	for _, c := range r.Checks {
		head = append(head, fmt.Sprintf("%s (%s)", c.Title, fmtPoints(c.Points)))
	}
	head = append(head, "reason", "logs")
	_ = w.Write(head)
	for _, row := range r.Rows {
		rec := []string{row.Submission, row.Outcome, fmtPoints(row.Points), fmtPoints(row.MaxPoints)}
		for i := range r.Checks {
			v := "" // a check a person grades stays empty, to be filled in
			if i < len(row.Checks) && !row.Checks[i].Manual {
				v = fmtPoints(row.Checks[i].Points)
			}
			rec = append(rec, v)
		}
		rec = append(rec, row.Reason, "logs/"+safeName(row.Submission)+"/")
		_ = w.Write(rec)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"pts":  fmtPoints,
	"safe": safeName,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>labctl grade {{.Grading}}: {{.Lab}}</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}
th{background:#f4f4f4;font-weight:600;max-width:14em}
.pass{background:#e6f6e6}.fail{background:#fbe4e4}.timeout,.crashed,.out-of-memory{background:#fdf0d5}.not-gradable{background:#e8e8f8}
.manual{background:#f0f0f0}.detail{color:#555;font-size:12px}
</style></head><body>
<h1>Grading {{.Grading}}: lab {{.Lab}}</h1>
<p>{{.Summary}}</p>
<p>Limits per submission: {{.Limits.CPU}} CPU, {{.Limits.Memory}} bytes of memory, {{.Limits.Pids}} processes; output capped at {{.OutputLimit}} bytes per program; cgroup {{.Cgroup}}.</p>
<table><tr><th>submission</th><th>outcome</th><th>points</th>{{range .Checks}}<th>{{.Title}} ({{pts .Points}})</th>{{end}}<th>why</th><th>logs</th></tr>
{{range .Rows}}{{$sub := .Submission}}<tr class="{{.Outcome}}"><td>{{.Submission}}</td><td>{{.Outcome}}</td><td>{{pts .Points}}/{{pts .MaxPoints}}</td>
{{range .Checks}}{{if .Manual}}<td class="manual">?<div class="detail">{{.Detail}}</div></td>{{else}}<td class="{{if .Pass}}pass{{else}}fail{{end}}">{{pts .Points}}{{if not .Pass}}<div class="detail">{{.Detail}}</div>{{end}}</td>{{end}}{{end}}
<td class="detail">{{.Reason}}</td><td>{{range .Builds}}<a href="logs/{{safe $sub}}/{{.Log}}">build ({{.Host}})</a><br>{{end}}{{range .Logs}}<a href="logs/{{safe $sub}}/{{.}}">{{.}}</a><br>{{end}}</td></tr>
{{end}}</table></body></html>
`))

func (r *Report) writeHTML(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := htmlTmpl.Execute(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// gradescope is Gradescope's results.json.
type gradescope struct {
	Score         float64          `json:"score"`
	ExecutionTime float64          `json:"execution_time"`
	Output        string           `json:"output"`
	Tests         []gradescopeTest `json:"tests"`
}

type gradescopeTest struct {
	Name       string  `json:"name"`
	Score      float64 `json:"score"`
	MaxScore   float64 `json:"max_score"`
	Status     string  `json:"status"` // passed or failed
	Output     string  `json:"output,omitempty"`
	Visibility string  `json:"visibility"`
}

func gradescopeOf(row Row) gradescope {
	gs := gradescope{Score: row.Points, ExecutionTime: time.Duration(row.Took).Seconds(),
		Output: fmt.Sprintf("%s: %s", row.Outcome, row.Reason)}
	for _, c := range row.Checks {
		if c.Manual {
			continue // graded by hand in Gradescope
		}
		t := gradescopeTest{Name: c.Title, Score: c.Points, MaxScore: c.Max, Status: "failed", Output: c.Detail, Visibility: "visible"}
		if c.Pass {
			t.Status = "passed"
		}
		gs.Tests = append(gs.Tests, t)
	}
	if len(gs.Tests) == 0 {
		gs.Tests = []gradescopeTest{}
	}
	return gs
}

// writeGradescope writes results.json for the one submission Gradescope
// grades (in dir), or one per submission in dir/gradescope/NAME/.
func (r *Report) writeGradescope(dir string) error {
	if len(r.Rows) == 1 {
		return writeJSON(filepath.Join(dir, "results.json"), gradescopeOf(r.Rows[0]))
	}
	for _, row := range r.Rows {
		d := filepath.Join(dir, "gradescope", safeName(row.Submission))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := writeJSON(filepath.Join(d, "results.json"), gradescopeOf(row)); err != nil {
			return err
		}
	}
	return nil
}

// Load reads a report.json.
func Load(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%q: %w", path, err)
	}
	return &r, nil
}

// Merge joins the reports of a class's shards into one. They must grade
// the same lab with the same checks, and no submission may appear twice.
func Merge(reps []*Report) (*Report, error) {
	if len(reps) == 0 {
		return nil, errors.New("merge: no reports")
	}
	out := &Report{Grading: reps[0].Grading, Lab: reps[0].Lab, Started: reps[0].Started, Cgroup: reps[0].Cgroup,
		Limits: reps[0].Limits, OutputLimit: reps[0].OutputLimit, Checks: reps[0].Checks}
	seen := map[string]string{}
	for i, r := range reps {
		if r.Lab != out.Lab || !sameChecks(r.Checks, out.Checks) {
			return nil, fmt.Errorf("merge: report %d grades lab %q with other checks than report 1 (lab %q)", i+1, r.Lab, out.Lab)
		}
		name := r.Shard
		if name == "" {
			name = r.Grading
		}
		for _, row := range r.Rows {
			if prev, dup := seen[row.Submission]; dup {
				return nil, fmt.Errorf("merge: submission %q is in two reports (%s and %s)", row.Submission, prev, name)
			}
			seen[row.Submission] = name
			out.Rows = append(out.Rows, row)
		}
		if r.Started.Before(out.Started) {
			out.Started = r.Started
		}
		if r.Took > out.Took {
			out.Took = r.Took
		}
		out.Jobs += r.Jobs
		out.Submissions += r.Submissions
		out.Interrupted = out.Interrupted || r.Interrupted
		if r.Cgroup != out.Cgroup {
			out.Cgroup = "mixed"
		}
		if r.Shard != "" {
			out.Shards = append(out.Shards, r.Shard)
		}
		out.Shards = append(out.Shards, r.Shards...)
	}
	out.finish(out.Interrupted)
	return out, nil
}

func sameChecks(a, b []CheckInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// MergeDirs merges the reports in dirs (each a grading's --out) into out:
// the reports, and the logs they link to.
func MergeDirs(out string, dirs []string, formats []string) (*Report, error) {
	var reps []*Report
	for _, d := range dirs {
		r, err := Load(filepath.Join(d, "report.json"))
		if err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
		reps = append(reps, r)
	}
	m, err := Merge(reps)
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if filepath.Clean(d) == filepath.Clean(out) {
			continue
		}
		if err := copyDir(filepath.Join(d, "logs"), filepath.Join(out, "logs")); err != nil {
			return nil, fmt.Errorf("merge: logs of %q: %w", d, err)
		}
	}
	if len(formats) == 0 {
		formats = []string{"csv", "json", "html"}
	}
	return m, m.Write(out, formats)
}

func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == src {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(p, filepath.Join(dst, rel), maxLogCopy)
	})
}
