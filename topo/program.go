package topo

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Program is a process a lab runs inside a host.
type Program struct {
	// Name is unique on its host; by default the command's first word.
	Name string `yaml:"name"`
	// Command is a string (split like a shell does, quotes honoured) or a
	// list. A first word "labctl" means this labctl binary, so
	// "labctl app xy-server" needs no PATH.
	Command Command           `yaml:"command"`
	Env     map[string]string `yaml:"env"`
	Dir     string            `yaml:"dir"`
	// After names programs ("prog" on the same host, or "host/prog") that
	// must be ready before this one starts.
	After []string `yaml:"after"`
	// StartDelay waits this long after the dependencies are ready.
	StartDelay Duration `yaml:"start_delay"`
	// Ready says when the program counts as started. Without it, a program
	// is ready once it has been started.
	Ready *Ready `yaml:"ready"`
	// Stdin lines are typed into the program, each after its delay; stdin
	// is then closed unless KeepStdin.
	Stdin     []StdinLine `yaml:"stdin"`
	KeepStdin bool        `yaml:"keep_stdin"`
	// Restart: "no" (default), "on-failure" or "always".
	Restart string `yaml:"restart"`
	// TimeLimit kills the program after this long (default 60s for tasks;
	// none for services).
	TimeLimit Duration `yaml:"time_limit"`
	// Service programs (servers) run until the lab is taken down; a lab's
	// checks wait only for the other programs (tasks) to end.
	Service bool `yaml:"service"`
	// Root runs the program as root with all capabilities; otherwise it runs
	// as the user who invoked sudo, or as nobody, with none.
	Root bool `yaml:"root"`
	// Path lists folders put first on the program's PATH (after the lab's
	// and before the system's), e.g. an interpreter's bin folder.
	Path []string `yaml:"path"`
	// TTY gives the program a pseudo-terminal for stdin, stdout and stderr
	// (stderr is then read with stdout).
	TTY bool `yaml:"tty"`
	// Display runs the program under a virtual X display of its own
	// (Xvfb), DISPLAY set; the last frame it drew is kept as a screenshot.
	Display bool `yaml:"display"`
	// Student replaces these fields when the program's command is replaced
	// (--program): a student's program may need other typing, readiness or
	// time than the reference one.
	Student *Variant `yaml:"student"`
	// Overridden is set by OverrideProgram: the command came from the
	// command line, so relative paths in it are the invoking user's.
	Overridden bool `yaml:"-"`
	// StrictReady: the readiness was named for this program (--ready, a
	// submission's labctl.yaml), so a replaced server is ready only on
	// that port, not on any port it listens on.
	StrictReady bool `yaml:"-"`
	// LabReady is the lab's readiness before --ready replaced it: the
	// lab's port a replaced server's own port stands for.
	LabReady *Ready `yaml:"-"`
	Line     int    `yaml:"-"`
}

// Ready is a readiness condition, always with a deadline.
type Ready struct {
	TCP     string   `yaml:"tcp"`  // "PORT" or "ADDR:PORT": a listening TCP socket in the host
	UDP     string   `yaml:"udp"`  // a bound UDP socket in the host
	Line    string   `yaml:"line"` // a regular expression matched against each output line
	Timeout Duration `yaml:"timeout"`
}

// Restart policies.
const (
	RestartNo        = "no"
	RestartOnFailure = "on-failure"
	RestartAlways    = "always"
)

// Variant is what a role's student: section may replace.
type Variant struct {
	Stdin     []StdinLine       `yaml:"stdin"`
	KeepStdin *bool             `yaml:"keep_stdin"`
	Ready     *Ready            `yaml:"ready"`
	TimeLimit Duration          `yaml:"time_limit"`
	Env       map[string]string `yaml:"env"`
	Path      []string          `yaml:"path"`
	TTY       *bool             `yaml:"tty"`
	Display   *bool             `yaml:"display"`
}

// StdinLine is one line typed into a program.
type StdinLine struct {
	Text string `yaml:"line"`
	// After is a regular expression: the line is typed once the program's
	// output since the previous line (or its start) matches it, as a
	// person answers a prompt. It may match part of a line, and a prompt
	// printed without a newline.
	After string   `yaml:"after"`
	Delay Duration `yaml:"delay"` // wait this long before typing it (after After, if both)
	// Idle types the line once the program has printed nothing for this
	// long (it waits at a prompt).
	Idle Duration `yaml:"idle"`
	// Timeout bounds the wait for After or Idle (default 10s); then the
	// line is typed anyway and the log says so.
	Timeout Duration `yaml:"timeout"`
}

func (s *StdinLine) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		s.Text = n.Value
		return nil
	}
	type plain StdinLine
	return decodeStrict(n, (*plain)(s))
}

// Command is an argv written as a string or as a list.
type Command []string

func (c *Command) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		args, err := SplitCommand(n.Value)
		if err != nil {
			return err
		}
		*c = args
		return nil
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*c = l
		return nil
	}
	return fmt.Errorf("want a command string or a list of arguments")
}

func (c Command) String() string {
	q := make([]string, len(c))
	for i, a := range c {
		if a == "" || strings.ContainsAny(a, " \t'\"\\$|&;<>()*?`~#") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// SplitCommand splits a command line like a POSIX shell would, honouring
// single and double quotes and backslashes, with no expansion.
func SplitCommand(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("command %q: unterminated single quote", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inArg = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("command %q: unterminated double quote", s)
			}
			inArg = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inArg = true
		case c == ' ' || c == '\t' || c == '\n':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}

// Check is an assertion about a finished run. Exactly one of Output, Exit,
// Before and SameFile is set.
type Check struct {
	Name string `yaml:"name"`

	// Output ("host/prog") must contain every Contains line (substring
	// match), match every Matches regexp, contain none of Absent; with
	// InOrder, the Contains/Matches lines appear in the order given.
	Output   string     `yaml:"output"`
	Stream   string     `yaml:"stream"` // stdout (default), stderr, both
	Contains StringList `yaml:"contains"`
	Matches  StringList `yaml:"matches"`
	Absent   StringList `yaml:"absent"`
	InOrder  bool       `yaml:"in_order"`
	// Loose compares ignoring case, spacing and punctuation: "x: ALICE
	// received  before y: bob." matches "X: Alice received before Y: Bob".
	Loose bool `yaml:"loose"`
	// Count: each Contains and Matches is found on exactly this many lines.
	Count *int `yaml:"count"`
	// AtLeast and AtMost bound, instead, how many lines each Contains and
	// Matches is found on: at_most: 1 is "never twice".
	AtLeast *int `yaml:"at_least"`
	AtMost  *int `yaml:"at_most"`

	// AnyStatus: the program may end with any status (a refused client
	// may exit 1 or 0): its output is evidence either way.
	AnyStatus bool `yaml:"any_status"`

	// Exit ("host/prog") ended with Status (default 0).
	Exit   string `yaml:"exit"`
	Status *int   `yaml:"status"`

	// Before: the first output line matching Before[0] was printed before
	// the first matching Before[1] (each may be on another host).
	Before []LineRef `yaml:"before"`

	// SameFile: these files have the same SHA-256.
	SameFile []string `yaml:"same_file"`

	// All passes when every one of these checks passes: one criterion
	// judged from several programs.
	All []Check `yaml:"all"`
	// Any passes when one of these checks passes: the same evidence in
	// several forms (a refusal printed by the client, or logged by the
	// server).
	Any []Check `yaml:"any"`

	// Distinct: each program prints a line matching the pattern, and what
	// it matches (its first group, if it has one) differs between them:
	// every client is given a name of its own.
	Distinct *Distinct `yaml:"distinct"`

	// Counters: the engine's counters of a link show traffic.
	Counters *CountersCheck `yaml:"counters"`

	// Manual is a criterion only a person can judge (say, "the code is
	// readable"): it is listed with its points, never passed or failed.
	Manual string `yaml:"manual"`

	// Points the check is worth (for grading); 0: not graded.
	Points int `yaml:"points"`

	Line int `yaml:"-"`
}

// Distinct is a check that programs got different answers.
type Distinct struct {
	Outputs []string `yaml:"outputs"` // host/program, two or more
	Matches string   `yaml:"matches"` // a regexp; its first group, if any, is what must differ
	Stream  string   `yaml:"stream"`  // stdout (default), stderr, both
	Loose   bool     `yaml:"loose"`   // letters in either case, spacing and punctuation optional
}

// CountersCheck asks a link's counters (netem.Counts, from the start of
// the lab) for at least so much traffic.
type CountersCheck struct {
	Link    string `yaml:"link"`    // the link's name, e.g. client4-s1
	From    string `yaml:"from"`    // only what this end sent; default: both directions
	Packets uint64 `yaml:"packets"` // at least this many packets offered
	Bytes   uint64 `yaml:"bytes"`   // at least this many bytes
}

// LineRef names an output line of a program by regular expression.
type LineRef struct {
	Output  string `yaml:"output"`
	Matches string `yaml:"matches"`
}

// StringList is one string or a list of them.
type StringList []string

func (s *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = []string{n.Value}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return fmt.Errorf("want a string or a list of strings")
	}
	*s = l
	return nil
}

// Kind says which assertion the check makes.
func (c Check) Kind() string {
	switch {
	case c.Output != "":
		return "output"
	case c.Exit != "":
		return "exit"
	case len(c.Before) > 0:
		return "before"
	case len(c.SameFile) > 0:
		return "same_file"
	case len(c.All) > 0:
		return "all"
	case len(c.Any) > 0:
		return "any"
	case c.Distinct != nil:
		return "distinct"
	case c.Counters != nil:
		return "counters"
	case c.Manual != "":
		return "manual"
	}
	return ""
}

// Title is the check's name, or a description made from what it asserts.
func (c Check) Title() string {
	if c.Name != "" {
		return c.Name
	}
	switch c.Kind() {
	case "output":
		var parts []string
		for _, s := range c.Contains {
			parts = append(parts, fmt.Sprintf("%q", s))
		}
		for _, s := range c.Matches {
			parts = append(parts, "/"+s+"/")
		}
		for _, s := range c.Absent {
			parts = append(parts, fmt.Sprintf("no %q", s))
		}
		return c.Output + " prints " + strings.Join(parts, ", ")
	case "exit":
		st := 0
		if c.Status != nil {
			st = *c.Status
		}
		return fmt.Sprintf("%s exits with status %d", c.Exit, st)
	case "before":
		return fmt.Sprintf("%s /%s/ before %s /%s/", c.Before[0].Output, c.Before[0].Matches, c.Before[1].Output, c.Before[1].Matches)
	case "same_file":
		return "same SHA-256: " + strings.Join(c.SameFile, ", ")
	case "all":
		var parts []string
		for _, s := range c.All {
			parts = append(parts, s.Title())
		}
		return strings.Join(parts, "; and ")
	case "any":
		var parts []string
		for _, s := range c.Any {
			parts = append(parts, s.Title())
		}
		return strings.Join(parts, "; or ")
	case "distinct":
		return fmt.Sprintf("%s each print /%s/, each a different one", strings.Join(c.Distinct.Outputs, ", "), c.Distinct.Matches)
	case "counters":
		t := "link " + c.Counters.Link
		if c.Counters.From != "" {
			t += " from " + c.Counters.From
		}
		var want []string
		if c.Counters.Packets > 0 {
			want = append(want, fmt.Sprintf("%d packets", c.Counters.Packets))
		}
		if c.Counters.Bytes > 0 {
			want = append(want, fmt.Sprintf("%d bytes", c.Counters.Bytes))
		}
		return t + " carries at least " + strings.Join(want, " and ")
	case "manual":
		return c.Manual
	}
	return "check"
}

// Event is one timed action of a lab's timeline, counted from the start of
// the programs. Exactly one action is set.
type Event struct {
	At       Duration     `yaml:"at"`
	Netem    *NetemAction `yaml:"netem"`
	Kill     string       `yaml:"kill"`    // "host/prog"
	Signal   string       `yaml:"signal"`  // with Kill: TERM, INT, KILL (default KILL)
	Restart  string       `yaml:"restart"` // "host/prog"
	LinkDown string       `yaml:"link_down"`
	LinkUp   string       `yaml:"link_up"`
	Line     int          `yaml:"-"`
}

// NetemAction changes a link's impairment during a run.
type NetemAction struct {
	Link  string     `yaml:"link"`
	From  string     `yaml:"from"` // only the packets this endpoint sends; both directions by default
	Set   Impairment `yaml:"set"`
	Reset bool       `yaml:"reset"`
}

// Kind says which action the event takes.
func (e Event) Kind() string {
	switch {
	case e.Netem != nil:
		return "netem"
	case e.Kill != "":
		return "kill"
	case e.Restart != "":
		return "restart"
	case e.LinkDown != "":
		return "link_down"
	case e.LinkUp != "":
		return "link_up"
	}
	return ""
}

var varRE = regexp.MustCompile(`\$\{([A-Za-z][A-Za-z0-9_-]*)\}`)

// Expand replaces ${NODE} with that node's first address, so lab files need
// not spell out automatic addresses: "--server ${server}:12000".
func (lab *Lab) Expand(s string) (string, error) {
	var err error
	out := varRE.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		n := lab.Node(name)
		if n == nil || n.Addr() == "" {
			if err == nil {
				err = fmt.Errorf("%s: no host %q with an address", m, name)
			}
			return m
		}
		return n.Addr()
	})
	return out, err
}

// programRef finds the program a command-line flag names: "HOST" when the
// host runs one program, "HOST/PROGRAM" otherwise.
func (lab *Lab) programRef(flag, spec, ref string) (*Program, error) {
	host, prog, hasProg := strings.Cut(ref, "/")
	n := lab.Node(host)
	if n == nil {
		return nil, fmt.Errorf("%s %q: no node %q", flag, spec, host)
	}
	var p *Program
	switch {
	case hasProg:
		for i := range n.Programs {
			if n.Programs[i].Name == prog {
				p = &n.Programs[i]
			}
		}
	case len(n.Programs) == 1:
		p = &n.Programs[0]
	case len(n.Programs) > 1:
		var names []string
		for _, q := range n.Programs {
			names = append(names, q.Name)
		}
		return nil, fmt.Errorf("%s %q: %s runs %s: say which one, as %s/PROGRAM", flag, spec, host, strings.Join(names, ", "), host)
	}
	if p == nil {
		return nil, fmt.Errorf("%s %q: no program %q on %s", flag, spec, prog, host)
	}
	return p, nil
}

// maxTargets bounds how many programs one --program may name.
const maxTargets = 64

// ProgramTargets splits the left side of a --program (or --stdin, ...)
// spec into the programs it names: "HOST", "HOST/PROGRAM", a comma list of
// them ("server,client1,client2"), or a role of the lab's roles: map, each
// expanded to its members. Duplicates are an error, and so are more than
// 64 targets.
func (lab *Lab) ProgramTargets(flag, spec, refs string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, ref := range strings.Split(refs, ",") {
		ref = strings.TrimSpace(ref)
		if ref == "" {
			return nil, fmt.Errorf("%s %q: an empty name in the list of hosts", flag, spec)
		}
		members := []string{ref}
		if m, ok := lab.Roles[ref]; ok && lab.Node(ref) == nil {
			members = m
		}
		for _, m := range members {
			if seen[m] {
				return nil, fmt.Errorf("%s %q: %s is named twice", flag, spec, m)
			}
			seen[m] = true
			out = append(out, m)
		}
	}
	if len(out) > maxTargets {
		return nil, fmt.Errorf("%s %q: %d programs, at most %d", flag, spec, len(out), maxTargets)
	}
	return out, nil
}

// ExpandSpec turns one "TARGETS=VALUE" spec into one "REF=VALUE" per
// program ProgramTargets finds: `--program server,client1='python3 x.py'`
// is two --program flags. A spec without '=' is returned as it is, for the
// caller's own error.
func (lab *Lab) ExpandSpec(flag, spec string) ([]string, error) {
	refs, val, ok := strings.Cut(spec, "=")
	if !ok || refs == "" {
		return []string{spec}, nil
	}
	targets, err := lab.ProgramTargets(flag, spec, refs)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(targets))
	for i, t := range targets {
		out[i] = t + "=" + val
	}
	return out, nil
}

// OverrideProgram replaces the command of a program, as in
// `--program x='python3 client.py'`: "HOST=COMMAND" when the host runs one
// program, "HOST/PROGRAM=COMMAND" otherwise. The program keeps its name, so
// checks about it still apply: that is how a submission is graded against
// the reference programs. The program's student: variant, if any, replaces
// its stdin, readiness, time limit, environment, path and tty.
func (lab *Lab) OverrideProgram(spec string) error {
	ref, command, ok := strings.Cut(spec, "=")
	if !ok || ref == "" || strings.TrimSpace(command) == "" {
		return fmt.Errorf("--program %q: want HOST=COMMAND or HOST/PROGRAM=COMMAND", spec)
	}
	p, err := lab.programRef("--program", spec, ref)
	if err != nil {
		return err
	}
	args, err := SplitCommand(command)
	if err != nil {
		return fmt.Errorf("--program %q: %w", spec, err)
	}
	p.Command = args
	if !p.Overridden && p.Student != nil {
		p.applyVariant(*p.Student)
	}
	p.Overridden = true
	return nil
}

func (p *Program) applyVariant(v Variant) {
	if v.Stdin != nil {
		p.Stdin = v.Stdin
	}
	if v.KeepStdin != nil {
		p.KeepStdin = *v.KeepStdin
	}
	if v.Ready != nil {
		p.Ready = v.Ready
	}
	if v.TimeLimit != 0 {
		p.TimeLimit = v.TimeLimit
	}
	if v.Env != nil {
		p.Env = v.Env
	}
	if v.Path != nil {
		p.Path = v.Path
	}
	if v.TTY != nil {
		p.TTY = *v.TTY
	}
	if v.Display != nil {
		p.Display = *v.Display
	}
}

// StdinFileIdle is how long a program is quiet before the next line of a
// plain-text --stdin file is typed.
const StdinFileIdle = 300 * time.Millisecond

// OverrideStdin replaces a program's stdin lines: --stdin HOST=FILE. data
// is the file's content: YAML (a list of stdin lines, as in a lab file)
// when yamlFile, else plain text, one line typed per line, each once the
// program has been quiet for StdinFileIdle (it has printed its prompt).
func (lab *Lab) OverrideStdin(spec string, data []byte, yamlFile bool) error {
	ref, _, _ := strings.Cut(spec, "=")
	p, err := lab.programRef("--stdin", spec, ref)
	if err != nil {
		return err
	}
	var lines []StdinLine
	if yamlFile {
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("--stdin %q: %w", spec, err)
		}
		if len(doc.Content) > 0 {
			if err := decodeStrict(doc.Content[0], &lines); err != nil {
				return fmt.Errorf("--stdin %q: %w", spec, err)
			}
		}
	} else {
		text := strings.TrimSuffix(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
		if text != "" {
			for _, l := range strings.Split(text, "\n") {
				lines = append(lines, StdinLine{Text: l, Idle: Duration(StdinFileIdle)})
			}
		}
	}
	p.Stdin = lines
	if lines == nil {
		p.Stdin = []StdinLine{}
	}
	return nil
}

// OverrideReady replaces a program's readiness: --ready HOST=tcp:PORT,
// udp:PORT, line:REGEXP or none (ready once started).
func (lab *Lab) OverrideReady(spec string) error {
	ref, cond, ok := strings.Cut(spec, "=")
	if !ok {
		return fmt.Errorf("--ready %q: want HOST=tcp:PORT, udp:PORT, line:REGEXP or none", spec)
	}
	p, err := lab.programRef("--ready", spec, ref)
	if err != nil {
		return err
	}
	if cond == "none" {
		p.Ready = nil
		return nil
	}
	kind, val, _ := strings.Cut(cond, ":")
	r := &Ready{}
	if p.Ready != nil {
		r.Timeout = p.Ready.Timeout
	}
	switch kind {
	case "tcp":
		r.TCP = val
	case "udp":
		r.UDP = val
	case "line":
		r.Line = val
	default:
		return fmt.Errorf("--ready %q: want HOST=tcp:PORT, udp:PORT, line:REGEXP or none", spec)
	}
	if !p.StrictReady {
		p.LabReady = p.Ready
	}
	p.Ready, p.StrictReady = r, true
	return nil
}

// OverrideTimeLimit replaces a program's time limit: --time-limit HOST=DURATION.
func (lab *Lab) OverrideTimeLimit(spec string) error {
	ref, val, ok := strings.Cut(spec, "=")
	if !ok {
		return fmt.Errorf("--time-limit %q: want HOST=DURATION (e.g. x=90s)", spec)
	}
	p, err := lab.programRef("--time-limit", spec, ref)
	if err != nil {
		return err
	}
	d, err := time.ParseDuration(val)
	if err != nil || d <= 0 {
		return fmt.Errorf("--time-limit %q: want a positive duration such as 90s", spec)
	}
	p.TimeLimit = Duration(d)
	return nil
}
