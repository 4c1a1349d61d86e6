package topo

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// Generate builds one of Mininet's topologies from a spec such as
// "single,3", "linear,4", "tree,2,3" or "minimal" (h1 and h2 on s1), named
// and numbered as Mininet does.
func Generate(spec string) (*Lab, error) {
	parts := strings.Split(strings.TrimSpace(spec), ",")
	args := make([]int, 0, len(parts)-1)
	for _, p := range parts[1:] {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("topology %q: %q is not a positive whole number", spec, p)
		}
		args = append(args, v)
	}
	want := func(n int, usage string) error {
		if len(args) != n {
			return fmt.Errorf("topology %q: want %s", spec, usage)
		}
		return nil
	}
	lab := &Lab{Source: "topo:" + spec}
	switch parts[0] {
	case "minimal":
		if err := want(0, "minimal"); err != nil {
			return nil, err
		}
		lab.single(2)
	case "single":
		if err := want(1, "single,N"); err != nil {
			return nil, err
		}
		lab.single(args[0])
	case "linear":
		if err := want(1, "linear,N"); err != nil {
			return nil, err
		}
		lab.linear(args[0])
	case "tree":
		if err := want(2, "tree,DEPTH,FANOUT"); err != nil {
			return nil, err
		}
		if hosts := pow(args[1], args[0]); hosts > 4096 || hosts < 0 {
			return nil, fmt.Errorf("topology %q: %d hosts is more than 4096", spec, hosts)
		}
		lab.tree(args[0], args[1])
	default:
		return nil, fmt.Errorf("topology %q: want minimal, single,N, linear,N or tree,DEPTH,FANOUT", spec)
	}
	if n := len(lab.Nodes); n > 5000 {
		return nil, fmt.Errorf("topology %q: %d nodes is more than 5000", spec, n)
	}
	lab.Name = strings.ReplaceAll(strings.TrimSuffix(spec, ","), ",", "-")
	if err := lab.Build(); err != nil {
		return nil, err
	}
	return lab, nil
}

func pow(b, e int) int {
	r := 1
	for i := 0; i < e; i++ {
		r *= b
		if r > 1<<20 {
			return -1
		}
	}
	return r
}

func (lab *Lab) add(kind Kind, name string) *Node {
	n := &Node{Name: name, Kind: kind}
	lab.Nodes = append(lab.Nodes, n)
	return n
}

func (lab *Lab) link(a, b string) {
	lab.Links = append(lab.Links, &Link{A: Endpoint{Node: a}, B: Endpoint{Node: b}})
}

// single: one switch s1 with hosts h1..hN.
func (lab *Lab) single(n int) {
	var hosts []string
	for i := 1; i <= n; i++ {
		hosts = append(hosts, lab.add(Host, fmt.Sprintf("h%d", i)).Name)
	}
	lab.add(Switch, "s1")
	for _, h := range hosts {
		lab.link(h, "s1")
	}
}

// linear: switches s1..sN in a chain, host hI on switch sI.
func (lab *Lab) linear(n int) {
	for i := 1; i <= n; i++ {
		lab.add(Host, fmt.Sprintf("h%d", i))
	}
	for i := 1; i <= n; i++ {
		lab.add(Switch, fmt.Sprintf("s%d", i))
	}
	for i := 1; i <= n; i++ {
		lab.link(fmt.Sprintf("h%d", i), fmt.Sprintf("s%d", i))
	}
	for i := 2; i <= n; i++ {
		lab.link(fmt.Sprintf("s%d", i-1), fmt.Sprintf("s%d", i))
	}
}

// tree: Mininet's TreeTopo: switches numbered depth-first from the root,
// hosts h1.. at the leaves, each switch linked to its children.
func (lab *Lab) tree(depth, fanout int) {
	sw, host := 1, 1
	var hosts, switches []*Node
	var links [][2]string
	var add func(d int) string
	add = func(d int) string {
		if d == 0 {
			n := &Node{Name: fmt.Sprintf("h%d", host), Kind: Host}
			host++
			hosts = append(hosts, n)
			return n.Name
		}
		n := &Node{Name: fmt.Sprintf("s%d", sw), Kind: Switch}
		sw++
		switches = append(switches, n)
		for i := 0; i < fanout; i++ {
			links = append(links, [2]string{n.Name, add(d - 1)})
		}
		return n.Name
	}
	add(depth)
	lab.Nodes = append(append(lab.Nodes, hosts...), switches...)
	for _, l := range links {
		lab.link(l[1], l[0]) // host or lower switch first, so hosts' ends are eth0
	}
}

//go:embed labs/*.yaml
var builtinFS embed.FS

// DefaultLab is what `labctl up` runs with no argument.
const DefaultLab = "course"

// Builtin returns a lab embedded in the binary.
func Builtin(name string) (*Lab, error) {
	b, err := builtinFS.ReadFile("labs/" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("no built-in lab %q (built-in: %s)", name, strings.Join(BuiltinNames(), ", "))
	}
	lab, err := Parse("builtin:"+name, b)
	if err != nil {
		return nil, err
	}
	lab.Source = "builtin:" + name
	return lab, nil
}

// BuiltinSource returns a built-in lab's YAML, for `labctl show`.
func BuiltinSource(name string) ([]byte, error) {
	return builtinFS.ReadFile("labs/" + name + ".yaml")
}

// BuiltinNames lists the embedded labs.
func BuiltinNames() []string {
	ents, _ := fs.ReadDir(builtinFS, "labs")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}
