package nodes

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/labctl/labctl/topo"
)

// LogLine is one line of a program's log.
type LogLine struct {
	Time   time.Time
	Stream string // out, err, in (typed into stdin), sys (labctl's account)
	Text   string
}

// ReadProgramLog reads a program's log.
func ReadProgramLog(lab, host, prog string) ([]LogLine, error) {
	f, err := os.Open(ProgramLog(lab, host, prog))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseLog(f)
}

func parseLog(r io.Reader) ([]LogLine, error) {
	var out []LogLine
	br := bufio.NewReaderSize(r, maxLine+128)
	for {
		s, err := br.ReadString('\n')
		if l, ok := parseLogLine(strings.TrimSuffix(s, "\n")); ok {
			out = append(out, l)
		}
		if err != nil {
			if err == io.EOF {
				return out, nil
			}
			return out, err
		}
	}
}

func parseLogLine(s string) (LogLine, bool) {
	ts, rest, ok := strings.Cut(s, " ")
	if !ok {
		return LogLine{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return LogLine{}, false
	}
	stream, text, _ := strings.Cut(rest, " ")
	return LogLine{Time: t, Stream: stream, Text: text}, true
}

func (r *Result) save(lab string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(ResultPath(lab), b, 0o644)
}

// evalCheck decides one check from the logs, the programs' fates and the
// files, and scores it.
func evalCheck(lab string, res *Result, checks []topo.Check, c topo.Check) CheckResult {
	cr := CheckResult{Title: c.Title(), Line: c.Line, Points: c.Points}
	if c.Kind() == "manual" {
		cr.Manual = true
		cr.Detail = "needs a person"
		return cr
	}
	err := checkErr(lab, res, checks, c)
	cr.Pass = err == nil
	if err != nil {
		cr.Detail = err.Error()
	} else {
		cr.Score = c.Points
	}
	return cr
}

func checkErr(lab string, res *Result, checks []topo.Check, c topo.Check) error {
	switch c.Kind() {
	case "output":
		err := programFate(lab, res, checks, c.Output)
		if err == nil {
			err = checkOutput(lab, c)
		}
		return guiHint(res, c.Output, err)
	case "exit":
		return checkExit(res, c)
	case "before":
		for _, r := range c.Before {
			if err := programFate(lab, res, checks, r.Output); err != nil {
				return err
			}
		}
		return checkBefore(lab, c)
	case "same_file":
		return checkSameFile(lab, c)
	case "all":
		for _, sub := range c.All {
			if err := checkErr(lab, res, checks, sub); err != nil {
				return fmt.Errorf("%s: %w", sub.Title(), err)
			}
		}
		return nil
	case "any":
		var whys []string
		for _, sub := range c.Any {
			err := checkErr(lab, res, checks, sub)
			if err == nil {
				return nil
			}
			whys = append(whys, fmt.Sprintf("%s: %v", sub.Title(), err))
		}
		return fmt.Errorf("none of %d holds: %s", len(c.Any), strings.Join(whys, "; "))
	case "distinct":
		for _, ref := range c.Distinct.Outputs {
			if err := programFate(lab, res, checks, ref); err != nil {
				return err
			}
		}
		return checkDistinct(lab, *c.Distinct)
	case "counters":
		return checkCounters(lab, *c.Counters)
	}
	return fmt.Errorf("unknown check")
}

// expectedStatus is the exit status the lab expects of a program: the one
// an exit check names, else 0.
func expectedStatus(checks []topo.Check, ref string) int {
	for _, c := range checks {
		if c.Exit == ref && c.Status != nil {
			return *c.Status
		}
		if c.Kind() == "all" || c.Kind() == "any" {
			if st := expectedStatus(append(append([]topo.Check{}, c.All...), c.Any...), ref); st != 0 {
				return st
			}
		}
	}
	return 0
}

// guiHint adds to a failed check about a program that drew on its
// virtual display where its screenshot is: typing may not drive it, and a
// person can judge it.
func guiHint(res *Result, ref string, err error) error {
	if err == nil {
		return nil
	}
	for _, p := range res.Programs {
		if p.Program == ref && p.Window && p.Screenshot != "" {
			return fmt.Errorf("%w; %s is a GUI program: a person can judge its screenshot %s", err, ref, p.Screenshot)
		}
	}
	return err
}

// anyStatus says some output check lets the program end with any status.
func anyStatus(checks []topo.Check, ref string) bool {
	for _, c := range checks {
		if (c.Output == ref && c.AnyStatus) || anyStatus(c.All, ref) || anyStatus(c.Any, ref) {
			return true
		}
	}
	return false
}

// programFate fails a check about a program's output when that output
// cannot be trusted: the program never started, crashed (ended with
// another status than the lab expects, or by a signal labctl did not
// send), or printed nothing at all. Then even an absent: check fails: it
// says the program ran and did not print something.
func programFate(lab string, res *Result, checks []topo.Check, ref string) error {
	var ps *ProgramStatus
	for i := range res.Programs {
		if res.Programs[i].Program == ref {
			ps = &res.Programs[i]
		}
	}
	if ps == nil {
		return fmt.Errorf("%s: no such program", ref)
	}
	host, prog, _ := strings.Cut(ref, "/")
	lines, _ := ReadProgramLog(lab, host, prog)
	var out, errs int
	var errTail []string
	for _, l := range lines {
		switch l.Stream {
		case "out", "log":
			out++
		case "err":
			errs++
			errTail = append(errTail, l.Text)
			if len(errTail) > stderrTail {
				errTail = errTail[1:]
			}
		}
	}
	tail := ""
	if len(errTail) > 0 {
		q := make([]string, len(errTail))
		for i, t := range errTail {
			q[i] = fmt.Sprintf("%q", clip(t, 200))
		}
		tail = "; the last of its stderr: " + strings.Join(q, " / ")
	}
	switch ps.State {
	case StateWaiting, StateSkipped, StateFailed:
		why := ps.Detail
		if why == "" {
			why = ps.State
		}
		return fmt.Errorf("%s never started (%s)", ref, why)
	case StateKilled:
		if !ps.LabSignal {
			return fmt.Errorf("%s crashed (%s)%s", ref, ps.Detail, tail)
		}
	case StateExited:
		if want := expectedStatus(checks, ref); ps.Status != nil && *ps.Status != want && !anyStatus(checks, ref) {
			return fmt.Errorf("%s crashed (%s)%s", ref, ps.Detail, tail)
		}
	}
	if out+errs == 0 {
		state := ps.Detail
		if state == "" {
			state = ps.State
		}
		return fmt.Errorf("%s printed nothing (%s)", ref, state)
	}
	return nil
}

// stderrTail is how many of a program's last stderr lines a failed check
// quotes.
const stderrTail = 3

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// programLines returns a program's lines of a stream: stdout (default),
// stderr or both. withLog adds, to stderr, the log records of labctl's own
// reference programs (stream "log"): evidence for contains and matches
// about a reference program, never matter for absent, which is about what
// the program itself printed.
func programLines(lab, ref, stream string, withLog bool) ([]string, error) {
	host, prog, _ := strings.Cut(ref, "/")
	lines, err := ReadProgramLog(lab, host, prog)
	if err != nil {
		return nil, fmt.Errorf("%s has no output: %v", ref, err)
	}
	errs := stream == "stderr" || stream == "both"
	var out []string
	for _, l := range lines {
		switch {
		case l.Stream == "out" && stream != "stderr",
			l.Stream == "err" && errs,
			l.Stream == "log" && errs && withLog:
			out = append(out, l.Text)
		}
	}
	return out, nil
}

func checkOutput(lab string, c topo.Check) error {
	lines, err := programLines(lab, c.Output, c.Stream, true)
	if err != nil {
		return err
	}
	own, _ := programLines(lab, c.Output, c.Stream, false)
	loosen := func(ls []string) []string {
		if !c.Loose {
			return ls
		}
		out := make([]string, len(ls))
		for i, l := range ls {
			out[i] = topo.LooseText(l)
		}
		return out
	}
	seen, ownSeen := loosen(lines), loosen(own)
	find := func(from int, ok func(string) bool) int {
		for i := from; i < len(seen); i++ {
			if ok(seen[i]) {
				return i
			}
		}
		return -1
	}
	count := func(ok func(string) bool) int {
		n := 0
		for _, l := range seen {
			if ok(l) {
				n++
			}
		}
		return n
	}
	type want struct {
		what string
		ok   func(string) bool
	}
	var wants []want
	for _, w := range c.Contains {
		w := w
		if c.Loose {
			lw := topo.LooseText(w)
			wants = append(wants, want{fmt.Sprintf("contains %q (loosely)", w), func(l string) bool { return strings.Contains(l, lw) }})
		} else {
			wants = append(wants, want{fmt.Sprintf("contains %q", w), func(l string) bool { return strings.Contains(l, w) }})
		}
	}
	for _, re := range c.Matches {
		rx := regexp.MustCompile(re)
		what := fmt.Sprintf("matches /%s/", re)
		if c.Loose {
			rx, _ = topo.LooseRegexp(re)
			what += " (loosely)"
		}
		wants = append(wants, want{what, rx.MatchString})
	}
	pos := 0
	for _, w := range wants {
		if c.AtLeast != nil || c.AtMost != nil {
			n := count(w.ok)
			what := strings.Replace(strings.Replace(w.what, "contains", "contain", 1), "matches", "match", 1)
			if c.AtLeast != nil && n < *c.AtLeast {
				return missing(lines, fmt.Sprintf("%d lines %s, want at least %d", n, what, *c.AtLeast), false)
			}
			if c.AtMost != nil && n > *c.AtMost {
				var dup []string
				for i, l := range seen {
					if w.ok(l) && len(dup) < 3 {
						dup = append(dup, fmt.Sprintf("%q", clip(lines[i], 200)))
					}
				}
				return fmt.Errorf("%d lines %s, want at most %d: %s", n, what, *c.AtMost, strings.Join(dup, ", "))
			}
			if n == 0 {
				continue
			}
		}
		if c.Count != nil {
			if n := count(w.ok); n != *c.Count {
				return fmt.Errorf("%d lines %s, want exactly %d (%d lines in all)", n, strings.Replace(strings.Replace(w.what, "contains", "contain", 1), "matches", "match", 1), *c.Count, len(lines))
			}
			if *c.Count == 0 {
				continue
			}
		}
		i := find(pos, w.ok)
		if i < 0 {
			return missing(lines, "no line "+w.what, c.InOrder && pos > 0)
		}
		if c.InOrder {
			pos = i + 1
		}
	}
	for _, bad := range c.Absent {
		b := bad
		if c.Loose {
			b = topo.LooseText(bad)
		}
		for i, l := range ownSeen {
			if strings.Contains(l, b) {
				return fmt.Errorf("line %d contains %q: %q", i+1, bad, own[i])
			}
		}
	}
	return nil
}

func missing(lines []string, what string, afterPrevious bool) error {
	if afterPrevious {
		what += " after the lines before it"
	}
	if len(lines) == 0 {
		return fmt.Errorf("%s: the program printed nothing", what)
	}
	return fmt.Errorf("%s (%d lines; the last: %q)", what, len(lines), lines[len(lines)-1])
}

func checkExit(res *Result, c topo.Check) error {
	want := 0
	if c.Status != nil {
		want = *c.Status
	}
	for _, p := range res.Programs {
		if p.Program != c.Exit {
			continue
		}
		switch {
		case p.Status != nil && *p.Status == want && p.State == StateExited:
			return nil
		case p.State == StateRunning || p.State == StateReady:
			return fmt.Errorf("still running")
		case p.Detail != "":
			return fmt.Errorf("%s", p.Detail)
		}
		return fmt.Errorf("%s", p.State)
	}
	return fmt.Errorf("no program %s", c.Exit)
}

func firstMatch(lab string, r topo.LineRef) (time.Time, error) {
	host, prog, _ := strings.Cut(r.Output, "/")
	lines, err := ReadProgramLog(lab, host, prog)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s has no output", r.Output)
	}
	rx := regexp.MustCompile(r.Matches)
	for _, l := range lines {
		if (l.Stream == "out" || l.Stream == "err" || l.Stream == "log") && rx.MatchString(l.Text) {
			return l.Time, nil
		}
	}
	return time.Time{}, fmt.Errorf("%s printed no line matching /%s/", r.Output, r.Matches)
}

func checkBefore(lab string, c topo.Check) error {
	t0, err := firstMatch(lab, c.Before[0])
	if err != nil {
		return err
	}
	t1, err := firstMatch(lab, c.Before[1])
	if err != nil {
		return err
	}
	if !t0.Before(t1) {
		return fmt.Errorf("it came %s after", t0.Sub(t1))
	}
	return nil
}

// HostPath resolves "host:path" (inside the host's home folder) or an
// absolute path.
func HostPath(lab, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	host, rel, _ := strings.Cut(p, ":")
	return filepath.Join(HomeDir(lab, host), filepath.Clean("/"+rel))
}

func checkSameFile(lab string, c topo.Check) error {
	var first string
	var sums []string
	for i, p := range c.SameFile {
		if i > 0 && topo.IsFileGlob(p) {
			if err := globSame(lab, p, first, sums[0]); err != nil {
				return err
			}
			continue
		}
		n, sum, err := fileSum(HostPath(lab, p))
		if err != nil {
			return fmt.Errorf("%s: %v", p, err)
		}
		sums = append(sums, fmt.Sprintf("%s: %d bytes, sha256 %s", p, n, sum[:12]))
		if first == "" {
			first = sum
		} else if sum != first {
			return fmt.Errorf("they differ: %s", strings.Join(sums, "; "))
		}
	}
	return nil
}

func fileSum(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// maxGlobWalk bounds the entries a same_file glob looks at, and
// maxGlobQuote the candidates a failure names.
const (
	maxGlobWalk  = 10000
	maxGlobQuote = 5
)

// globSame passes when some regular file the glob matches (HOST:**/NAME at
// any depth of the host's home, or a path.Match pattern) has the SHA-256
// want: a student's client stores a download where it likes.
func globSame(lab, p, want, ref string) error {
	host, pat, _ := strings.Cut(p, ":")
	home := HomeDir(lab, host)
	var cands []string
	seen := 0
	_ = filepath.WalkDir(home, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if seen++; seen > maxGlobWalk {
			return filepath.SkipAll
		}
		rel, _ := filepath.Rel(home, path)
		if d.Type().IsRegular() && topo.MatchFileGlob(pat, filepath.ToSlash(rel)) {
			cands = append(cands, path)
		}
		return nil
	})
	var found []string
	for _, c := range cands {
		n, sum, err := fileSum(c)
		if err != nil {
			continue
		}
		if sum == want {
			return nil
		}
		if len(found) < maxGlobQuote {
			rel, _ := filepath.Rel(home, c)
			found = append(found, fmt.Sprintf("%s:%s: %d bytes, sha256 %s", host, rel, n, sum[:12]))
		}
	}
	if len(cands) == 0 {
		return fmt.Errorf("no file matching %s was stored (want a copy of %s)", p, ref)
	}
	return fmt.Errorf("no file matching %s has the same bytes as %s; found %s", p, ref, strings.Join(found, "; "))
}

// checkDistinct: each program printed a line matching d.Matches, and the
// matched text (its first group, if the pattern has one) differs between
// every two of them.
func checkDistinct(lab string, d topo.Distinct) error {
	rx := regexp.MustCompile(d.Matches)
	if d.Loose {
		rx, _ = topo.LooseRegexp(d.Matches)
	}
	type answer struct{ ref, line string }
	got := map[string]answer{} // the answer -> the program that got it, and its line
	for _, ref := range d.Outputs {
		lines, err := programLines(lab, ref, d.Stream, false)
		if err != nil {
			return err
		}
		ans, line := "", ""
		for _, l := range lines {
			seen := l
			if d.Loose {
				seen = topo.LooseText(l)
			}
			if m := rx.FindStringSubmatch(seen); m != nil {
				ans, line = m[0], l
				if len(m) > 1 {
					ans = m[1]
				}
				break
			}
		}
		if line == "" {
			return missing(lines, fmt.Sprintf("%s printed no line matching /%s/", ref, d.Matches), false)
		}
		if other, ok := got[ans]; ok {
			return fmt.Errorf("%s and %s were both given %q (%q and %q)", other.ref, ref, ans, clip(other.line, 200), clip(line, 200))
		}
		got[ans] = answer{ref, line}
	}
	return nil
}

// countersTimeout bounds reading a link's counters.
const countersTimeout = 5 * time.Second

// checkCounters reads a link's counters from the lab's backend: traffic
// labctl saw itself, whatever the programs printed.
func checkCounters(lab string, k topo.CountersCheck) error {
	ctx, cancel := context.WithTimeout(context.Background(), countersTimeout)
	defer cancel()
	st, err := Load(lab)
	if err != nil {
		return fmt.Errorf("read link %q's counters: %w", k.Link, err)
	}
	all, err := Counters(ctx, lab)
	if err != nil {
		return fmt.Errorf("read link %q's counters: %w", k.Link, err)
	}
	dirs, ok := all[k.Link]
	if !ok {
		return fmt.Errorf("link %q: its backend keeps no counters for it", k.Link)
	}
	var pk, by uint64
	for _, l := range st.Links {
		if l.ID != k.Link {
			continue
		}
		for i, end := range []string{l.A.Node, l.B.Node} {
			if k.From == "" || k.From == end {
				pk += dirs[i].Packets
				by += dirs[i].Bytes
			}
		}
	}
	what := "link " + k.Link
	if k.From != "" {
		what += " from " + k.From
	}
	if pk < k.Packets || by < k.Bytes {
		return fmt.Errorf("%s carried %d packets (%d bytes), want at least %d packets and %d bytes: no evidence of that traffic", what, pk, by, k.Packets, k.Bytes)
	}
	return nil
}
