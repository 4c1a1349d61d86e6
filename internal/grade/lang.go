package grade

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// A template is the command a role runs for every submission, with
// placeholders:
//
//	{dir}         the program's working folder: a writable copy of the
//	              submission (built), in its host's home
//	{name}        the submission's folder name
//	{run:STEM}    run the program whose source is STEM.py, STEM.c,
//	              STEM.java or STEM.go (any case): `python3 STEM.py`,
//	              `./STEM.bin`, `java -cp . Stem`; its build step is implied
//	{run?:STEM}   the same, but a submission without STEM keeps the lab's
//	              reference program in this role (the report says so)
var runRE = regexp.MustCompile(`\{run(\??):([A-Za-z0-9_.-]+)\}`)

// source is a program found in a submission by its stem.
type source struct {
	lang  string // python, c, java
	file  string // relative to the submission
	build string // shell command, run in the copy
	run   string
}

// findSource looks for STEM's source in dir (case-insensitive stem, in
// the folder itself).
func findSource(dir, stem string) (source, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return source{}, err
	}
	var found []source
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		ext := filepath.Ext(e.Name())
		base := strings.TrimSuffix(e.Name(), ext)
		if !strings.EqualFold(base, stem) {
			continue
		}
		q := shellQuote(e.Name())
		switch ext {
		case ".py":
			found = append(found, source{"python", e.Name(), "python3 -m py_compile " + q, "python3 " + q})
		case ".c":
			bin := shellQuote(base + ".bin")
			found = append(found, source{"c", e.Name(), "cc -O2 -o " + bin + " " + q + " -lm", "./" + bin})
		case ".java":
			found = append(found, source{"java", e.Name(), "javac -d . " + q, "java -cp . " + shellQuote(base)})
		case ".go":
			bin := shellQuote(base + ".bin")
			found = append(found, source{"go", e.Name(), "go build -o " + bin + " " + q, "./" + bin})
		}
	}
	switch len(found) {
	case 0:
		return source{}, fmt.Errorf("no %s.py, %s.c, %s.java or %s.go: %w", stem, stem, stem, stem, errAbsent)
	case 1:
		return found[0], nil
	}
	return source{}, fmt.Errorf("%d sources for %q (%s, %s): which one?", len(found), stem, found[0].file, found[1].file)
}

// errAbsent says an optional program is not in the submission.
var errAbsent = errors.New("not in the submission")

// expandTemplate fills a template's placeholders for one submission. It
// returns the command and the build commands {run:...} implies, or
// errAbsent when an optional program is missing.
func expandTemplate(tmpl, src, dir, name string) (cmd string, builds []string, langs []string, err error) {
	cmd = runRE.ReplaceAllStringFunc(tmpl, func(m string) string {
		if err != nil {
			return m
		}
		sm := runRE.FindStringSubmatch(m)
		found, e := findSource(src, sm[2])
		if e != nil {
			err = e
			if sm[1] == "?" && errors.Is(e, errAbsent) {
				err = errAbsent
			}
			return m
		}
		builds = append(builds, found.build)
		langs = append(langs, found.lang)
		return found.run
	})
	r := strings.NewReplacer("{dir}", shellQuote(dir), "{name}", shellQuote(name))
	return r.Replace(cmd), builds, langs, err
}

// shellQuote quotes s for sh when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-+=:,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
