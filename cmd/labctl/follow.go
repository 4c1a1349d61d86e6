package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strings"
	"time"

	"github.com/labctl/labctl/internal/termsafe"
	"github.com/labctl/labctl/nodes"
	"golang.org/x/term"
)

// outputLine is one line of a lab's combined output log.
type outputLine struct {
	time   time.Time
	key    string // host/program, or "labctl"
	stream string // out, err, in, sys
	text   string
}

func parseOutputLine(s string) (outputLine, bool) {
	f := strings.SplitN(s, " ", 4)
	if len(f) < 3 {
		return outputLine{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, f[0])
	if err != nil {
		return outputLine{}, false
	}
	l := outputLine{time: t, key: f[1], stream: f[2]}
	if len(f) == 4 {
		l.text = f[3]
	}
	return l, true
}

// printer formats output lines like `docker compose up`: the program's name,
// coloured on a terminal, then the line.
type printer struct {
	w     io.Writer
	color bool
	width int
}

func newPrinter(w io.Writer) *printer {
	f, ok := w.(*os.File)
	return &printer{w: w, color: ok && term.IsTerminal(int(f.Fd())) && os.Getenv("NO_COLOR") == "", width: 16}
}

// fitPlan sizes the name column for the lab's longest host/program, so
// the output lines up from the first line on.
func (p *printer) fitPlan(lab string) {
	plan, err := nodes.LoadPlan(lab)
	if err != nil {
		return
	}
	for _, h := range plan.Hosts {
		for _, prog := range h.Programs {
			if n := len(h.Name) + 1 + len(prog.Name); n > p.width {
				p.width = n
			}
		}
	}
}

var palette = []string{"36", "33", "32", "35", "34", "91", "92", "93", "94", "95", "96"}

func (p *printer) print(l outputLine) {
	name := l.key
	if len(name) > p.width {
		p.width = len(name)
	}
	mark := map[string]string{"out": "|", "err": "!", "in": ">", "sys": "*", "log": "~"}[l.stream]
	pad := fmt.Sprintf("%-*s", p.width, name)
	if p.color {
		h := fnv.New32a()
		h.Write([]byte(name))
		c := palette[int(h.Sum32())%len(palette)]
		if l.key == "labctl" {
			c = "1"
		}
		pad = "\x1b[" + c + "m" + pad + "\x1b[0m"
	}
	// A program's bytes never drive the viewer's terminal (colour aside).
	fmt.Fprintf(p.w, "%s %s %s\n", pad, mark, termsafe.Display(l.text))
}

// follow prints the lab's output as it is written, until the supervisor
// reports the checks (then it returns the result) or stops.
func follow(ctx context.Context, out io.Writer, lab string, sup *nodes.Daemon) (*nodes.Result, error) {
	pr := newPrinter(out)
	pr.fitPlan(lab)
	var f *os.File
	var rd *bufio.Reader
	var partial string
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if f == nil {
			if g, err := os.Open(nodes.OutputLog(lab)); err == nil {
				f, rd = g, bufio.NewReader(g)
				defer f.Close()
			}
		}
		drained := f == nil
		for rd != nil {
			s, err := rd.ReadString('\n')
			if err != nil {
				partial += s
				drained = true
				break
			}
			if l, ok := parseOutputLine(strings.TrimSuffix(partial+s, "\n")); ok {
				pr.print(l)
			}
			partial = ""
		}
		if drained {
			if res, err := nodes.LoadResult(lab); err == nil {
				return res, nil
			} else if !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
			if sup != nil && !sup.Alive() {
				return nil, fmt.Errorf("lab %s: the supervisor stopped before the checks (see %s)", lab, nodes.Dir(lab)+"/supervisor.log")
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// printResult prints the PASS/FAIL summary and says whether all passed.
func printResult(out io.Writer, lab string, res *nodes.Result) bool {
	fmt.Fprintf(out, "*** programs\n")
	for _, p := range res.Programs {
		fmt.Fprintf(out, "  %-24s %s\n", p.Program, programWords(p))
	}
	if len(res.Checks) == 0 {
		fmt.Fprintf(out, "*** lab %s has no checks\n", lab)
		return true
	}
	fmt.Fprintf(out, "*** checks\n")
	for _, c := range res.Checks {
		verdict := "PASS"
		switch {
		case c.Manual:
			verdict = "TODO"
		case !c.Pass:
			verdict = "FAIL"
		}
		pts := ""
		if c.Points > 0 {
			pts = fmt.Sprintf(" [%d/%d]", c.Score, c.Points)
		}
		fmt.Fprintf(out, "  %s  %s%s\n", verdict, termsafe.Display(c.Title), pts)
		if !c.Pass {
			fmt.Fprintf(out, "        %s\n", termsafe.Display(c.Detail))
		}
	}
	extra := ""
	if res.Manual > 0 {
		extra += fmt.Sprintf(", %d for a person", res.Manual)
	}
	if res.MaxScore > 0 {
		extra += fmt.Sprintf(", score %d/%d", res.Score, res.MaxScore)
	}
	fmt.Fprintf(out, "*** lab %s: %d passed, %d failed%s (%s)\n", lab, res.Passed, res.Failed, extra, res.Took.Round(time.Millisecond))
	return res.Failed == 0
}

func programWords(p nodes.ProgramStatus) string {
	s := p.State
	if p.Detail != "" && p.State != nodes.StateRunning && p.State != nodes.StateReady {
		s = p.Detail
	}
	if p.Restarts > 0 {
		s += fmt.Sprintf(" (restarted %d times)", p.Restarts)
	}
	return s
}
