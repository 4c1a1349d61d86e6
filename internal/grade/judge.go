package grade

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/labctl/labctl/nodes"
	"github.com/labctl/labctl/topo"
)

// checkPoints is what each of a lab's checks is worth: its points: where
// any check carries points (0 then means "not graded"), else 1 each.
func checkPoints(lab *topo.Lab) []float64 {
	out := make([]float64, len(lab.Checks))
	any := false
	for _, c := range lab.Checks {
		any = any || c.Points > 0
	}
	for i, c := range lab.Checks {
		switch {
		case any:
			out[i] = float64(c.Points)
		default:
			out[i] = 1
		}
	}
	return out
}

// touches lists the programs ("host/prog") a check looks at; a same_file
// check looks at a host's files, so at every program of that host.
func touches(lab *topo.Lab, c topo.Check) []string {
	var out []string
	switch c.Kind() {
	case "output":
		out = append(out, c.Output)
	case "exit":
		out = append(out, c.Exit)
	case "before":
		for _, r := range c.Before {
			out = append(out, r.Output)
		}
	case "same_file":
		for _, f := range c.SameFile {
			host, _, ok := strings.Cut(f, ":")
			if n := lab.Node(host); ok && n != nil {
				for _, p := range n.Programs {
					out = append(out, host+"/"+p.Name)
				}
			}
		}
	case "all":
		for _, d := range c.All {
			out = append(out, touches(lab, d)...)
		}
	case "any":
		for _, d := range c.Any {
			out = append(out, touches(lab, d)...)
		}
	case "distinct":
		out = append(out, c.Distinct.Outputs...)
	case "counters":
		// A link's traffic is its ends' programs' doing.
		for _, l := range lab.Links {
			if l.Name != c.Counters.Link {
				continue
			}
			for _, end := range []string{l.A.Node, l.B.Node} {
				if n := lab.Node(end); n != nil && (c.Counters.From == "" || c.Counters.From == end) {
					for _, p := range n.Programs {
						out = append(out, end+"/"+p.Name)
					}
				}
			}
		}
	}
	return out
}

// exitOnly says a check looks at nothing but exit statuses.
func exitOnly(c topo.Check) bool {
	switch c.Kind() {
	case "exit":
		return true
	case "all", "any":
		for _, d := range append(append([]topo.Check{}, c.All...), c.Any...) {
			if !exitOnly(d) {
				return false
			}
		}
		return true
	}
	return false
}

func touchesAny(lab *topo.Lab, c topo.Check, keys []string) bool {
	for _, k := range touches(lab, c) {
		if contains(keys, k) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// judge fills in a row's checks, points and outcome from the lab's result.
func (g *grading) judge(row *Row, lab *topo.Lab, res *nodes.Result, runErr error) {
	roleKeys := row.Roles
	if res != nil {
		row.Programs = res.Programs
	}
	points := checkPoints(lab)
	for i, c := range lab.Checks {
		rc := RowCheck{Title: c.Title(), Max: points[i], Manual: c.Kind() == "manual"}
		switch {
		case rc.Manual:
			rc.Detail = "needs a person: " + c.Manual
		case res != nil && i < len(res.Checks):
			rc.Pass, rc.Detail = res.Checks[i].Pass, res.Checks[i].Detail
		default:
			rc.Detail = "not evaluated"
		}
		row.Checks = append(row.Checks, rc)
	}
	// An exit status alone never makes a role pass: a check of exit
	// statuses counts only when the checks of what those programs did
	// pass too.
	for i, c := range lab.Checks {
		if !exitOnly(c) || !row.Checks[i].Pass {
			continue
		}
		for _, key := range touches(lab, c) {
			if !contains(roleKeys, key) {
				continue
			}
			var evidence, failed []string
			for j, d := range lab.Checks {
				if exitOnly(d) || d.Kind() == "manual" || !contains(touches(lab, d), key) {
					continue
				}
				evidence = append(evidence, d.Title())
				if !row.Checks[j].Pass {
					failed = append(failed, d.Title())
				}
			}
			switch {
			case len(evidence) == 0:
				row.Checks[i].Pass = false
				row.Checks[i].Detail = fmt.Sprintf("%s exited 0, but no check of this lab shows what it did", key)
			case len(failed) > 0:
				row.Checks[i].Pass = false
				row.Checks[i].Detail = fmt.Sprintf("%s exited 0 without doing: %s", key, strings.Join(failed, "; "))
			}
			if !row.Checks[i].Pass {
				break
			}
		}
	}
	row.Points, row.MaxPoints = 0, 0
	for i := range row.Checks {
		row.MaxPoints += row.Checks[i].Max
		if row.Checks[i].Pass {
			row.Checks[i].Points = row.Checks[i].Max
			row.Points += row.Checks[i].Max
		}
	}
	outcome, reason := g.outcome(row, res, runErr)
	*row = row.end(outcome, reason)
}

// outcome decides the one word for a submission, most telling first.
func (g *grading) outcome(row *Row, res *nodes.Result, runErr error) (string, string) {
	var notes []string
	if row.Stats.PidsLimited > 0 {
		notes = append(notes, fmt.Sprintf("the pids limit (%d) refused %d forks", g.o.Limits.Pids, row.Stats.PidsLimited))
	}
	for k, n := range row.Discarded {
		notes = append(notes, fmt.Sprintf("%s: output capped at %s, %d more bytes discarded", k, bytesWords(g.o.OutputLimit), n))
	}
	with := func(s string) string {
		if len(notes) > 0 {
			return s + " (" + strings.Join(notes, "; ") + ")"
		}
		return s
	}
	if row.Stats.OOMKills > 0 {
		return OOM, with(fmt.Sprintf("the kernel killed %d process(es) at the memory limit of %s", row.Stats.OOMKills, bytesWords(g.o.Limits.Memory)))
	}
	switch {
	case errors.Is(runErr, errLabDeadline):
		return Timeout, with(runErr.Error())
	case runErr != nil:
		return NotGradable, "labctl: " + runErr.Error()
	}
	status := map[string]nodes.ProgramStatus{}
	for _, p := range res.Programs {
		status[p.Program] = p
	}
	// A GUI program (it drew on its virtual display) whose checks did not
	// pass cannot be driven by typing: a person must judge it, from its
	// screenshot, not fail it. Waiting for a click until its time limit is
	// no timeout either.
	for _, key := range row.Roles {
		p := status[key]
		if !p.Window {
			continue
		}
		var unjudged []string
		for i, c := range row.Checks {
			if !c.Pass && !c.Manual && contains(touches(g.lab0, g.lab0.Checks[i]), key) {
				unjudged = append(unjudged, c.Title)
			}
		}
		if len(unjudged) == 0 {
			continue
		}
		shot := ""
		if p.Screenshot != "" {
			shot = fmt.Sprintf("; its screenshot: logs/%s/%s.png", safeName(row.Submission), key)
		}
		return NotGradable, with(fmt.Sprintf("needs a person: %s is a GUI program that typing cannot drive (%d checks about it not shown: %s)%s",
			key, len(unjudged), strings.Join(unjudged, "; "), shot))
	}
	for _, key := range row.Roles {
		if p := status[key]; p.State == nodes.StateTimedOut {
			return Timeout, with(fmt.Sprintf("%s ran past its time limit", key))
		}
	}
	for _, key := range row.Roles {
		p := status[key]
		switch {
		case p.State == nodes.StateKilled:
			return Crashed, with(fmt.Sprintf("%s was killed by signal %s%s", key, p.Signal, g.stderrTail(row, key)))
		case p.State == nodes.StateExited && p.Status != nil && *p.Status != 0:
			return Crashed, with(fmt.Sprintf("%s exited with status %d%s", key, *p.Status, g.stderrTail(row, key)))
		}
	}
	// The reason: the first failed check about the submission's own
	// programs, else the first failed check.
	failed := -1
	var manual int
	var manualPts float64
	for i, c := range row.Checks {
		if c.Manual {
			manual++
			manualPts += c.Max
			continue
		}
		if c.Pass {
			continue
		}
		if failed < 0 {
			failed = i
		}
		if touchesAny(g.lab0, g.lab0.Checks[i], row.Roles) {
			failed = i
			break
		}
	}
	if manual > 0 {
		notes = append(notes, fmt.Sprintf("%d checks (%s points) need a person", manual, fmtPoints(manualPts)))
	}
	if failed >= 0 {
		c := row.Checks[failed]
		return Fail, with(fmt.Sprintf("%s: %s", c.Title, c.Detail))
	}
	return Pass, with("")
}

// stderrTail is ": " and the last line the program wrote to stderr, or
// ", printing nothing" when it printed nothing at all.
func (g *grading) stderrTail(row *Row, key string) string {
	b, err := os.ReadFile(filepath.Join(g.o.Out, "logs", safeName(row.Submission), key+".log"))
	if err != nil {
		return ""
	}
	lines := parseLog(string(b))
	last, printed := "", false
	for _, l := range lines {
		if l.Stream == "out" || l.Stream == "err" {
			printed = printed || strings.TrimSpace(l.Text) != ""
		}
		if l.Stream == "err" && strings.TrimSpace(l.Text) != "" && !strings.HasPrefix(l.Text, "labctl: output limit") {
			last = l.Text
		}
	}
	switch {
	case last != "":
		return ": " + clip(strings.TrimSpace(last), 200)
	case !printed:
		return ", printing nothing"
	}
	return ""
}

func bytesWords(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// logLine is one line of a program's log: "TIME STREAM TEXT".
type logLine struct{ Stream, Text string }

func parseLog(s string) []logLine {
	var out []logLine
	for _, l := range strings.Split(s, "\n") {
		f := strings.SplitN(l, " ", 3)
		if len(f) < 2 {
			continue
		}
		ll := logLine{Stream: f[1]}
		if len(f) == 3 {
			ll.Text = f[2]
		}
		out = append(out, ll)
	}
	return out
}
