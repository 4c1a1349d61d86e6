package nodes

import (
	"bufio"
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
// files.
func evalCheck(lab string, res *Result, c topo.Check) CheckResult {
	cr := CheckResult{Title: c.Title(), Line: c.Line}
	var err error
	switch c.Kind() {
	case "output":
		err = checkOutput(lab, c)
	case "exit":
		err = checkExit(res, c)
	case "before":
		err = checkBefore(lab, c)
	case "same_file":
		err = checkSameFile(lab, c)
	default:
		err = fmt.Errorf("unknown check")
	}
	cr.Pass = err == nil
	if err != nil {
		cr.Detail = err.Error()
	}
	return cr
}

func programLines(lab, ref, stream string) ([]string, error) {
	host, prog, _ := strings.Cut(ref, "/")
	lines, err := ReadProgramLog(lab, host, prog)
	if err != nil {
		return nil, fmt.Errorf("%s has no output: %v", ref, err)
	}
	var out []string
	for _, l := range lines {
		switch {
		case l.Stream == "out" && stream != "stderr",
			l.Stream == "err" && (stream == "stderr" || stream == "both"):
			out = append(out, l.Text)
		}
	}
	return out, nil
}

func checkOutput(lab string, c topo.Check) error {
	lines, err := programLines(lab, c.Output, c.Stream)
	if err != nil {
		return err
	}
	find := func(from int, ok func(string) bool) int {
		for i := from; i < len(lines); i++ {
			if ok(lines[i]) {
				return i
			}
		}
		return -1
	}
	pos := 0
	for _, want := range c.Contains {
		i := find(pos, func(l string) bool { return strings.Contains(l, want) })
		if i < 0 {
			return missing(lines, fmt.Sprintf("no line contains %q", want), c.InOrder && pos > 0)
		}
		if c.InOrder {
			pos = i + 1
		}
	}
	pos = 0
	for _, re := range c.Matches {
		rx := regexp.MustCompile(re)
		i := find(pos, rx.MatchString)
		if i < 0 {
			return missing(lines, fmt.Sprintf("no line matches /%s/", re), c.InOrder && pos > 0)
		}
		if c.InOrder {
			pos = i + 1
		}
	}
	for _, bad := range c.Absent {
		if i := find(0, func(l string) bool { return strings.Contains(l, bad) }); i >= 0 {
			return fmt.Errorf("line %d contains %q: %q", i+1, bad, lines[i])
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
		if (l.Stream == "out" || l.Stream == "err") && rx.MatchString(l.Text) {
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
	for _, p := range c.SameFile {
		f, err := os.Open(HostPath(lab, p))
		if err != nil {
			return fmt.Errorf("%s: %v", p, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %v", p, err)
		}
		sum := hex.EncodeToString(h.Sum(nil))
		sums = append(sums, fmt.Sprintf("%s: %d bytes, sha256 %s", p, n, sum[:12]))
		if first == "" {
			first = sum
		} else if sum != first {
			return fmt.Errorf("they differ: %s", strings.Join(sums, "; "))
		}
	}
	return nil
}
