package topo

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
)

// checkProgramExtras validates a program's stdin lines, path and student
// variant.
func (lab *Lab) checkProgramExtras(n *Node, field string, p *Program) error {
	fe := func(f string, err error) error {
		return &FieldError{Line: p.Line, Path: nodePath(n, field+f), Err: err}
	}
	if err := lab.checkStdin(p.Stdin); err != nil {
		return fe(".stdin", err)
	}
	for _, d := range p.Path {
		if !filepath.IsAbs(d) {
			return fe(".path", fmt.Errorf("%q: want an absolute folder", d))
		}
	}
	if v := p.Student; v != nil {
		if err := lab.checkStdin(v.Stdin); err != nil {
			return fe(".student.stdin", err)
		}
		for _, d := range v.Path {
			if !filepath.IsAbs(d) {
				return fe(".student.path", fmt.Errorf("%q: want an absolute folder", d))
			}
		}
		if v.Ready != nil {
			q := *p
			q.Ready, q.Student = v.Ready, nil
			if err := checkReady(q.Ready); err != nil {
				return fe(".student.ready", err)
			}
		}
	}
	return nil
}

// CheckStdin validates stdin lines: their after: regexps and ${host}s.
func (lab *Lab) CheckStdin(lines []StdinLine) error { return lab.checkStdin(lines) }

func (lab *Lab) checkStdin(lines []StdinLine) error {
	for i, l := range lines {
		if l.After != "" {
			if _, err := regexp.Compile(l.After); err != nil {
				return fmt.Errorf("[%d].after: bad regular expression %q: %v", i, l.After, err)
			}
		}
		if _, err := lab.Expand(l.Text); err != nil {
			return fmt.Errorf("[%d]: %w", i, err)
		}
	}
	return nil
}

func checkReady(r *Ready) error {
	set := 0
	for _, s := range []string{r.TCP, r.UDP, r.Line} {
		if s != "" {
			set++
		}
	}
	if set != 1 {
		return errors.New("give exactly one of tcp, udp, line")
	}
	if r.Line != "" {
		if _, err := regexp.Compile(r.Line); err != nil {
			return fmt.Errorf("bad regular expression: %v", err)
		}
	}
	for _, a := range []string{r.TCP, r.UDP} {
		if a != "" && ParsePort(a) == 0 {
			return fmt.Errorf("%q: want PORT or ADDRESS:PORT", a)
		}
	}
	return nil
}

// LooseText is a line as a loose check sees it: lower case, every run of
// spaces and punctuation one space, none at the ends. "From Server:  X:
// Alice!" is "from server x alice".
func LooseText(s string) string {
	var b strings.Builder
	gap := false
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' {
			if gap && b.Len() > 0 {
				b.WriteByte(' ')
			}
			gap = false
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		gap = true
	}
	return b.String()
}

// LooseRegexp compiles a check's regexp for loose matching against
// LooseText lines: case is ignored, and every run of literal spaces and
// punctuation in it matches one optional space. '^X: \w+ received$'
// matches "x alice received".
func LooseRegexp(re string) (*regexp.Regexp, error) {
	t, err := syntax.Parse(re, syntax.Perl)
	if err != nil {
		return nil, err
	}
	t = loosen(t)
	return regexp.Compile("(?i)" + t.String())
}

func loosen(t *syntax.Regexp) *syntax.Regexp {
	for i, s := range t.Sub {
		t.Sub[i] = loosen(s)
	}
	if t.Op != syntax.OpLiteral {
		return t
	}
	var parts []*syntax.Regexp
	var word []rune
	gap := false
	flush := func() {
		if len(word) > 0 {
			parts = append(parts, &syntax.Regexp{Op: syntax.OpLiteral, Rune: word, Flags: t.Flags | syntax.FoldCase})
			word = nil
		}
	}
	for _, r := range t.Rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' {
			if gap {
				flush()
				parts = append(parts, optionalSpace())
				gap = false
			}
			word = append(word, r)
			continue
		}
		gap = true
	}
	if gap {
		flush()
		parts = append(parts, optionalSpace())
	}
	flush()
	switch len(parts) {
	case 0:
		return &syntax.Regexp{Op: syntax.OpEmptyMatch}
	case 1:
		return parts[0]
	}
	return &syntax.Regexp{Op: syntax.OpConcat, Sub: parts}
}

func optionalSpace() *syntax.Regexp {
	return &syntax.Regexp{Op: syntax.OpQuest, Sub: []*syntax.Regexp{{Op: syntax.OpLiteral, Rune: []rune{' '}}}}
}
