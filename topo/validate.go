package topo

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strings"
)

var (
	labNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	nodeNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,31}$`)
	ifaceRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
)

// MaxIfaceName is the kernel's limit on interface names (IFNAMSIZ-1).
const MaxIfaceName = 15

// Build validates a lab and resolves it: interface names, addresses and
// routes are filled in where the lab leaves them out. It is what Parse and
// Generate call; call it again only on a lab built by hand.
func (lab *Lab) Build() error {
	if !labNameRE.MatchString(lab.Name) {
		return &FieldError{Path: "name", Err: fmt.Errorf("lab name %q: use 1-32 of a-z, 0-9 and '-', starting with a letter or digit", lab.Name)}
	}
	switch lab.Backend {
	case "", "auto", "kernel", "userspace":
	default:
		return &FieldError{Path: "backend", Err: fmt.Errorf("%q: want auto, kernel or userspace", lab.Backend)}
	}
	if err := lab.checkNodes(); err != nil {
		return err
	}
	if err := lab.checkLinks(); err != nil {
		return err
	}
	if err := lab.assignAddresses(); err != nil {
		return err
	}
	if err := lab.assignRoutes(); err != nil {
		return err
	}
	if err := lab.checkPrograms(); err != nil {
		return err
	}
	if err := lab.checkReach(); err != nil {
		return err
	}
	if err := lab.checkChecks(); err != nil {
		return err
	}
	if err := lab.checkRoles(); err != nil {
		return err
	}
	return lab.checkTimeline()
}

func nodeErr(n *Node, field string, err error) error {
	p := n.Kind.section() + "." + n.Name
	if field != "" {
		p += "." + field
	}
	return &FieldError{Line: n.Line, Path: p, Err: err}
}

func (lab *Lab) checkNodes() error {
	seen := map[string]*Node{}
	for _, n := range lab.Nodes {
		if !nodeNameRE.MatchString(n.Name) {
			return nodeErr(n, "", fmt.Errorf("node name %q: use 1-32 of letters, digits, '_' and '-', starting with a letter", n.Name))
		}
		if n.Kind == Switch && len(n.Name) > MaxIfaceName {
			return nodeErr(n, "", fmt.Errorf("switch name %q: at most %d bytes (it names the bridge)", n.Name, MaxIfaceName))
		}
		if old, ok := seen[n.Name]; ok {
			return nodeErr(n, "", fmt.Errorf("duplicate node name %q (first defined as a %s%s)", n.Name, old.Kind, lineSuffix(old.Line)))
		}
		seen[n.Name] = n
		if n.Kind == Switch && (len(n.Programs) > 0 || len(n.Routes) > 0) {
			return nodeErr(n, "", errors.New("a switch runs no programs and has no routes; use a host or router"))
		}
		for i, r := range n.Routes {
			if r.Dst != "default" {
				if _, err := netip.ParsePrefix(r.Dst); err != nil {
					return nodeErr(n, fmt.Sprintf("routes[%d]", i), fmt.Errorf("destination %q: want a CIDR such as 10.0.2.0/24, or default", r.Dst))
				}
			}
			if _, err := netip.ParseAddr(r.Via); err != nil {
				return nodeErr(n, fmt.Sprintf("routes[%d]", i), fmt.Errorf("next hop %q: want an address", r.Via))
			}
		}
	}
	return nil
}

func lineSuffix(line int) string {
	if line > 0 {
		return fmt.Sprintf(" on line %d", line)
	}
	return ""
}

func linkErr(l *Link, i int, field string, err error) error {
	p := fmt.Sprintf("links[%d]", i)
	if l.Name != "" {
		p = fmt.Sprintf("links[%d] (%s)", i, l.Name)
	}
	if field != "" {
		p += "." + field
	}
	return &FieldError{Line: l.Line, Path: p, Err: err}
}

func (lab *Lab) checkLinks() error {
	names := map[string]bool{}
	for _, n := range lab.Nodes {
		n.Ifaces = nil
	}
	for i, l := range lab.Links {
		for _, e := range []Endpoint{l.A, l.B} {
			if lab.Node(e.Node) == nil {
				return linkErr(l, i, "endpoints", fmt.Errorf("no node %q", e.Node))
			}
			if e.Iface != "" && (len(e.Iface) > MaxIfaceName || !ifaceRE.MatchString(e.Iface)) {
				return linkErr(l, i, "endpoints", fmt.Errorf("interface name %q: at most %d bytes of letters, digits, '_', '.', '-'", e.Iface, MaxIfaceName))
			}
			if e.Addr != "" {
				p, err := netip.ParsePrefix(e.Addr)
				if err != nil || !p.Addr().Is4() {
					return linkErr(l, i, "endpoints", fmt.Errorf("address %q: want an IPv4 CIDR such as 10.0.0.5/24", e.Addr))
				}
				if lab.Node(e.Node).Kind == Switch {
					return linkErr(l, i, "endpoints", fmt.Errorf("switch %q: a switch port has no address", e.Node))
				}
			}
		}
		if l.A.Node == l.B.Node {
			return linkErr(l, i, "endpoints", fmt.Errorf("node %q linked to itself", l.A.Node))
		}
		if l.Name == "" {
			l.Name = l.A.Node + "-" + l.B.Node
			for k := 2; names[l.Name]; k++ {
				l.Name = fmt.Sprintf("%s-%s-%d", l.A.Node, l.B.Node, k)
			}
		}
		if names[l.Name] {
			return linkErr(l, i, "name", fmt.Errorf("duplicate link name %q", l.Name))
		}
		names[l.Name] = true
		if l.MTU != 0 && (l.MTU < 68 || l.MTU > 65535) {
			return linkErr(l, i, "mtu", fmt.Errorf("%d: want 68-65535", l.MTU))
		}
		if err := l.Netem.Validate(); err != nil {
			return linkErr(l, i, "netem", oneLine(err))
		}
		for from, s := range l.Egress {
			if from != l.A.Node && from != l.B.Node {
				return linkErr(l, i, "egress."+from, fmt.Errorf("%q is not an endpoint of this link (%s, %s)", from, l.A.Node, l.B.Node))
			}
			if err := s.Validate(); err != nil {
				return linkErr(l, i, "egress."+from, oneLine(err))
			}
		}
		for k, f := range l.Faults {
			if err := f.Validate(l.Name, l.A.Node, l.B.Node); err != nil {
				return linkErr(l, i, fmt.Sprintf("faults[%d]", k), oneLine(err))
			}
		}
		if len(l.Faults) > 0 && lab.Backend == "kernel" {
			return linkErr(l, i, "faults", errors.New("scripted faults need the userspace backend (backend: userspace or auto)"))
		}
		a, b := lab.Node(l.A.Node), lab.Node(l.B.Node)
		if err := addIface(a, &l.A, l, b); err != nil {
			return linkErr(l, i, "endpoints", err)
		}
		if err := addIface(b, &l.B, l, a); err != nil {
			return linkErr(l, i, "endpoints", err)
		}
	}
	return nil
}

// oneLine joins a multi-error into one line.
func oneLine(err error) error {
	return errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
}

func addIface(n *Node, e *Endpoint, l *Link, peer *Node) error {
	if e.Iface == "" {
		for k := 0; ; k++ {
			name := fmt.Sprintf("eth%d", k)
			if n.iface(name) == nil {
				e.Iface = name
				break
			}
		}
	}
	if n.iface(e.Iface) != nil {
		return fmt.Errorf("node %q has two interfaces named %q", n.Name, e.Iface)
	}
	n.Ifaces = append(n.Ifaces, &Iface{Name: e.Iface, Addr: e.Addr, Link: l, Peer: peer})
	return nil
}

func (n *Node) iface(name string) *Iface {
	for _, i := range n.Ifaces {
		if i.Name == name {
			return i
		}
	}
	return nil
}

// progName is a program's name: given, or derived from its command.
func progName(p Program) string {
	if p.Name != "" {
		return p.Name
	}
	if len(p.Command) == 0 {
		return ""
	}
	if p.Command[0] == "labctl" && len(p.Command) >= 3 && p.Command[1] == "app" {
		return p.Command[2]
	}
	return path.Base(p.Command[0])
}

func (lab *Lab) checkPrograms() error {
	for _, n := range lab.Nodes {
		seen := map[string]bool{}
		for i := range n.Programs {
			p := &n.Programs[i]
			field := fmt.Sprintf("programs[%d]", i)
			if len(p.Command) == 0 || p.Command[0] == "" {
				return &FieldError{Line: p.Line, Path: nodePath(n, field+".command"), Err: errors.New("a program needs a command")}
			}
			p.Name = progName(*p)
			for _, a := range p.Command {
				if _, err := lab.Expand(a); err != nil {
					return &FieldError{Line: p.Line, Path: nodePath(n, field+".command"), Err: err}
				}
			}
			if err := lab.checkProgramExtras(n, field, p); err != nil {
				return err
			}
			if !nodeNameRE.MatchString(p.Name) {
				return &FieldError{Line: p.Line, Path: nodePath(n, field+".name"), Err: fmt.Errorf("program name %q: use letters, digits, '_' and '-'", p.Name)}
			}
			if seen[p.Name] {
				return &FieldError{Line: p.Line, Path: nodePath(n, field+".name"), Err: fmt.Errorf("two programs named %q on %s: give one a name", p.Name, n.Name)}
			}
			seen[p.Name] = true
			switch p.Restart {
			case "", RestartNo, RestartOnFailure, RestartAlways:
			default:
				return &FieldError{Line: p.Line, Path: nodePath(n, field+".restart"), Err: fmt.Errorf("%q: want no, on-failure or always", p.Restart)}
			}
			if r := p.Ready; r != nil {
				if err := checkReady(r); err != nil {
					return &FieldError{Line: p.Line, Path: nodePath(n, field+".ready"), Err: err}
				}
			}
		}
	}
	for _, n := range lab.Nodes {
		for i, f := range n.Files {
			field := fmt.Sprintf("files[%d]", i)
			if n.Kind == Switch {
				return nodeErr(n, field, errors.New("a switch has no files"))
			}
			if !localPath(f.Path) {
				return &FieldError{Line: f.Line, Path: nodePath(n, field+".path"), Err: fmt.Errorf("%q: want a relative path inside the host's home folder", f.Path)}
			}
			if f.Content != "" && f.Size > 0 {
				return &FieldError{Line: f.Line, Path: nodePath(n, field), Err: errors.New("give content or size, not both")}
			}
		}
	}
	// Dependencies exist and have no cycle.
	for _, n := range lab.Nodes {
		for i, p := range n.Programs {
			for _, dep := range p.After {
				if _, _, err := lab.ResolveProgram(n.Name, dep); err != nil {
					return &FieldError{Line: p.Line, Path: nodePath(n, fmt.Sprintf("programs[%d].after", i)), Err: err}
				}
			}
		}
	}
	return lab.checkCycles()
}

// ParsePort returns the port of "PORT" or "ADDRESS:PORT", or 0.
func ParsePort(s string) int {
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		s = s[i+1:]
	}
	var p int
	if _, err := fmt.Sscanf(s, "%d", &p); err != nil || p < 1 || p > 65535 || fmt.Sprint(p) != s {
		return 0
	}
	return p
}

func nodePath(n *Node, field string) string { return n.Kind.section() + "." + n.Name + "." + field }

// section is the lab file's key for nodes of this kind.
func (k Kind) section() string {
	if k == Switch {
		return "switches"
	}
	return string(k) + "s"
}

// ResolveProgram finds "prog" (on host from) or "host/prog".
func (lab *Lab) ResolveProgram(from, ref string) (*Node, *Program, error) {
	host, prog, ok := strings.Cut(ref, "/")
	if !ok {
		host, prog = from, ref
	}
	n := lab.Node(host)
	if n == nil {
		return nil, nil, fmt.Errorf("%q: no node %q", ref, host)
	}
	for i := range n.Programs {
		if n.Programs[i].Name == prog {
			return n, &n.Programs[i], nil
		}
	}
	return nil, nil, fmt.Errorf("%q: no program %q on %s", ref, prog, host)
}

func (lab *Lab) checkCycles() error {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var visit func(n *Node, p *Program, trail []string) error
	visit = func(n *Node, p *Program, trail []string) error {
		key := n.Name + "/" + p.Name
		switch color[key] {
		case grey:
			return &FieldError{Line: p.Line, Path: nodePath(n, "programs"), Err: fmt.Errorf("start order has a cycle: %s", strings.Join(append(trail, key), " -> "))}
		case black:
			return nil
		}
		color[key] = grey
		for _, dep := range p.After {
			dn, dp, _ := lab.ResolveProgram(n.Name, dep)
			if err := visit(dn, dp, append(trail, key)); err != nil {
				return err
			}
		}
		color[key] = black
		return nil
	}
	for _, n := range lab.Nodes {
		for i := range n.Programs {
			if err := visit(n, &n.Programs[i], nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func (lab *Lab) checkChecks() error {
	for i, c := range lab.Checks {
		if err := lab.checkOne(c, fmt.Sprintf("checks[%d]", i), true); err != nil {
			return err
		}
	}
	return nil
}

// checkOne validates one check; top is false inside all:, where checks
// carry no points of their own.
func (lab *Lab) checkOne(c Check, path string, top bool) error {
	fe := func(field string, err error) error {
		return &FieldError{Line: c.Line, Path: path + field, Err: err}
	}
	kinds := 0
	for _, set := range []bool{c.Output != "", c.Exit != "", len(c.Before) > 0, len(c.SameFile) > 0, len(c.All) > 0,
		len(c.Any) > 0, c.Distinct != nil, c.Counters != nil, c.Manual != ""} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return fe("", errors.New("give exactly one of output, exit, before, same_file, all, any, distinct, counters, manual"))
	}
	if c.AnyStatus && c.Output == "" {
		return fe(".any_status", errors.New("any_status goes with an output check"))
	}
	if c.Points < 0 {
		return fe(".points", errors.New("want 0 or more points"))
	}
	if !top && c.Points != 0 {
		return fe(".points", errors.New("points go on the all: check, not on its parts"))
	}
	if c.Count != nil && (*c.Count < 0 || c.Output == "" || len(c.Contains)+len(c.Matches) == 0) {
		return fe(".count", errors.New("count (0 or more) goes with an output check's contains or matches"))
	}
	for _, b := range []struct {
		name string
		n    *int
	}{{"at_least", c.AtLeast}, {"at_most", c.AtMost}} {
		if b.n != nil && (*b.n < 0 || c.Count != nil || c.Output == "" || len(c.Contains)+len(c.Matches) == 0) {
			return fe("."+b.name, fmt.Errorf("%s (0 or more, without count) goes with an output check's contains or matches", b.name))
		}
	}
	if c.AtLeast != nil && c.AtMost != nil && *c.AtLeast > *c.AtMost {
		return fe(".at_least", fmt.Errorf("at_least %d is more than at_most %d", *c.AtLeast, *c.AtMost))
	}
	for j, sub := range c.All {
		if err := lab.checkOne(sub, fmt.Sprintf("%s.all[%d]", path, j), false); err != nil {
			return err
		}
	}
	for j, sub := range c.Any {
		if err := lab.checkOne(sub, fmt.Sprintf("%s.any[%d]", path, j), false); err != nil {
			return err
		}
	}
	if d := c.Distinct; d != nil {
		if len(d.Outputs) < 2 {
			return fe(".distinct.outputs", errors.New("want two or more programs (host/program)"))
		}
		for _, ref := range d.Outputs {
			if _, _, err := lab.ResolveProgram("", ref); err != nil || !strings.Contains(ref, "/") {
				return fe(".distinct.outputs", fmt.Errorf("%q: name an existing program as host/program", ref))
			}
		}
		if _, err := regexp.Compile(d.Matches); err != nil || d.Matches == "" {
			return fe(".distinct.matches", fmt.Errorf("bad regular expression %q", d.Matches))
		}
		if _, err := LooseRegexp(d.Matches); d.Loose && err != nil {
			return fe(".distinct.matches", fmt.Errorf("regular expression %q with loose: %v", d.Matches, err))
		}
		switch d.Stream {
		case "", "stdout", "stderr", "both":
		default:
			return fe(".distinct.stream", fmt.Errorf("%q: want stdout, stderr or both", d.Stream))
		}
	}
	if k := c.Counters; k != nil {
		var l *Link
		for _, x := range lab.Links {
			if x.Name == k.Link {
				l = x
			}
		}
		if l == nil {
			return fe(".counters.link", fmt.Errorf("no link %q", k.Link))
		}
		if k.From != "" && l.A.Node != k.From && l.B.Node != k.From {
			return fe(".counters.from", fmt.Errorf("%q is not an end of link %q", k.From, k.Link))
		}
		if k.Packets == 0 && k.Bytes == 0 {
			return fe(".counters", errors.New("want packets or bytes (at least how many)"))
		}
	}
	for _, ref := range []string{c.Output, c.Exit} {
		if ref == "" {
			continue
		}
		if !strings.Contains(ref, "/") {
			return fe("", fmt.Errorf("%q: name the program as host/program", ref))
		}
		if _, _, err := lab.ResolveProgram("", ref); err != nil {
			return fe("", err)
		}
	}
	if c.Output != "" && len(c.Contains)+len(c.Matches)+len(c.Absent) == 0 {
		return fe("", errors.New("an output check needs contains, matches or absent"))
	}
	switch c.Stream {
	case "", "stdout", "stderr", "both":
	default:
		return fe(".stream", fmt.Errorf("%q: want stdout, stderr or both", c.Stream))
	}
	for _, re := range c.Matches {
		if _, err := regexp.Compile(re); err != nil {
			return fe(".matches", fmt.Errorf("bad regular expression %q: %v", re, err))
		}
		if _, err := LooseRegexp(re); c.Loose && err != nil {
			return fe(".matches", fmt.Errorf("regular expression %q with loose: %v", re, err))
		}
	}
	if len(c.Before) > 0 {
		if len(c.Before) != 2 {
			return fe(".before", errors.New("want two lines: [{output, matches}, {output, matches}]"))
		}
		for _, r := range c.Before {
			if _, _, err := lab.ResolveProgram("", r.Output); err != nil || !strings.Contains(r.Output, "/") {
				return fe(".before", fmt.Errorf("%q: name an existing program as host/program", r.Output))
			}
			if _, err := regexp.Compile(r.Matches); err != nil || r.Matches == "" {
				return fe(".before", fmt.Errorf("bad regular expression %q", r.Matches))
			}
		}
	}
	if len(c.SameFile) == 1 {
		return fe(".same_file", errors.New("want at least two paths"))
	}
	if len(c.SameFile) > 0 && IsFileGlob(c.SameFile[0]) {
		return fe(".same_file", errors.New("the first path is the original: give it exactly, patterns go after it"))
	}
	for _, p := range c.SameFile {
		if err := lab.checkHostPath(p); err != nil {
			return fe(".same_file", err)
		}
	}
	return nil
}

func (lab *Lab) checkTimeline() error {
	for i, e := range lab.Timeline {
		fe := func(err error) error {
			return &FieldError{Line: e.Line, Path: fmt.Sprintf("timeline[%d]", i), Err: err}
		}
		kinds := 0
		for _, set := range []bool{e.Netem != nil, e.Kill != "", e.Restart != "", e.LinkDown != "", e.LinkUp != ""} {
			if set {
				kinds++
			}
		}
		if kinds != 1 {
			return fe(errors.New("give exactly one of netem, kill, restart, link_down, link_up"))
		}
		switch {
		case e.Netem != nil:
			l := lab.Link(e.Netem.Link)
			if l == nil {
				return fe(fmt.Errorf("netem: no link %q", e.Netem.Link))
			}
			if e.Netem.From != "" && e.Netem.From != l.A.Node && e.Netem.From != l.B.Node {
				return fe(fmt.Errorf("netem.from: %q is not an endpoint of link %q", e.Netem.From, l.Name))
			}
			if err := e.Netem.Set.Validate(); err != nil {
				return fe(oneLine(err))
			}
		case e.Kill != "" || e.Restart != "":
			ref := e.Kill + e.Restart
			if _, _, err := lab.ResolveProgram("", ref); err != nil || !strings.Contains(ref, "/") {
				return fe(fmt.Errorf("%q: name an existing program as host/program", ref))
			}
			switch strings.TrimPrefix(strings.ToUpper(e.Signal), "SIG") {
			case "", "KILL", "TERM", "INT", "HUP", "STOP", "CONT":
			default:
				return fe(fmt.Errorf("signal %q: want KILL, TERM, INT, HUP, STOP or CONT", e.Signal))
			}
		default:
			if lab.Link(e.LinkDown+e.LinkUp) == nil {
				return fe(fmt.Errorf("no link %q", e.LinkDown+e.LinkUp))
			}
		}
	}
	return nil
}

// localPath reports whether p is a relative path that stays below its base.
func localPath(p string) bool {
	if p == "" || path.IsAbs(p) {
		return false
	}
	c := path.Clean(p)
	return c != ".." && !strings.HasPrefix(c, "../")
}

// checkHostPath checks "node:path" (path inside that host's home folder) or
// an absolute path.
func (lab *Lab) checkHostPath(p string) error {
	if path.IsAbs(p) {
		return nil
	}
	node, rel, ok := strings.Cut(p, ":")
	if !ok {
		return fmt.Errorf("%q: want HOST:PATH (inside the host's home folder) or an absolute path", p)
	}
	if n := lab.Node(node); n == nil || n.Kind == Switch {
		return fmt.Errorf("%q: no host %q", p, node)
	}
	if !localPath(rel) {
		return fmt.Errorf("%q: the path must stay inside the host's home folder", p)
	}
	if IsFileGlob(p) {
		if _, err := path.Match(strings.TrimPrefix(rel, "**/"), "x"); err != nil {
			return fmt.Errorf("%q: bad pattern: %v", p, err)
		}
	}
	return nil
}

// IsFileGlob says a same_file path is a pattern: HOST:**/NAME (NAME at any
// depth of the host's home) or a path.Match pattern.
func IsFileGlob(p string) bool {
	return !path.IsAbs(p) && strings.ContainsAny(p, "*?[")
}

// MatchFileGlob matches a path relative to a host's home (slashes) with a
// same_file pattern: "**/" first matches at any depth.
func MatchFileGlob(pat, rel string) bool {
	if rest, ok := strings.CutPrefix(pat, "**/"); ok {
		if strings.Contains(rest, "/") {
			for i := 0; ; {
				if m, _ := path.Match(rest, rel[i:]); m {
					return true
				}
				j := strings.IndexByte(rel[i:], '/')
				if j < 0 {
					return false
				}
				i += j + 1
			}
		}
		m, _ := path.Match(rest, path.Base(rel))
		return m
	}
	m, _ := path.Match(pat, rel)
	return m
}

// checkRoles validates roles: each names programs that exist, and no role
// is a node's name (HOST in --program would be ambiguous).
func (lab *Lab) checkRoles() error {
	for role, refs := range lab.Roles {
		fe := func(err error) error { return &FieldError{Path: "roles." + role, Err: err} }
		if lab.Node(role) != nil {
			return fe(fmt.Errorf("%q is a node's name: name the role otherwise", role))
		}
		if strings.ContainsAny(role, "/=,") || role == "" {
			return fe(fmt.Errorf("%q: a role's name has no '/', '=' or ','", role))
		}
		if len(refs) == 0 {
			return fe(errors.New("want at least one HOST or HOST/PROGRAM"))
		}
		for _, ref := range refs {
			if _, err := lab.programRef("roles."+role, ref, ref); err != nil {
				return fe(err)
			}
		}
	}
	return nil
}
