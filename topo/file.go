package topo

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// fileLab is the top level of a lab file.
type fileLab struct {
	Name        string              `yaml:"name"`
	Description string              `yaml:"description"`
	Backend     string              `yaml:"backend"`
	Seed        int64               `yaml:"seed"`
	Hosts       yaml.Node           `yaml:"hosts"`
	Switches    yaml.Node           `yaml:"switches"`
	Routers     yaml.Node           `yaml:"routers"`
	Links       []fileLink          `yaml:"links"`
	Checks      []Check             `yaml:"checks"`
	Timeline    []Event             `yaml:"timeline"`
	Line        int                 `yaml:"-"`
	Topo        string              `yaml:"topo"`
	Path        []string            `yaml:"path"`
	Roles       map[string][]string `yaml:"roles"`
}

type fileNode struct {
	Routes   []string          `yaml:"routes"`
	Programs []Program         `yaml:"programs"`
	Sysctls  map[string]string `yaml:"sysctls"`
	Files    []File            `yaml:"files"`
	// Localhost maps a loopback port to "NODE" or "NODE:PORT", or is
	// "auto" (see localhostField).
	Localhost localhostField `yaml:"localhost"`
	Expose    []int          `yaml:"expose"`
	Line      int            `yaml:"-"`
}

type fileLink struct {
	Name      string                `yaml:"name"`
	Endpoints []Endpoint            `yaml:"endpoints"`
	Netem     Impairment            `yaml:"netem"`
	Egress    map[string]Impairment `yaml:"egress"`
	Faults    []Fault               `yaml:"faults"`
	MTU       int                   `yaml:"mtu"`
	Line      int                   `yaml:"-"`
}

// UnmarshalYAML reads "node", "node:iface" or {node, iface, ip}.
func (e *Endpoint) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		node, iface, _ := strings.Cut(n.Value, ":")
		*e = Endpoint{Node: node, Iface: iface}
		return nil
	}
	var m struct {
		Node  string `yaml:"node"`
		Iface string `yaml:"iface"`
		IP    string `yaml:"ip"`
	}
	if err := decodeStrict(n, &m); err != nil {
		return err
	}
	*e = Endpoint{Node: m.Node, Iface: m.Iface, Addr: m.IP}
	return nil
}

// LoadFile reads and validates a lab file.
func LoadFile(path string) (*Lab, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lab file: %w", err)
	}
	return Parse(path, b)
}

// Parse reads a lab file's bytes; name is used in errors and to name a lab
// that does not name itself. Every error names the file, line and field.
func Parse(name string, data []byte) (*Lab, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(name, err)
	}
	if len(doc.Content) == 0 {
		return nil, &FieldError{File: name, Err: errors.New("empty lab file")}
	}
	var f fileLab
	if err := decodeStrict(doc.Content[0], &f); err != nil {
		return nil, inFile(name, err)
	}
	lab, err := f.lab(name)
	if err != nil {
		return nil, inFile(name, err)
	}
	if err := lab.Build(); err != nil {
		return nil, inFile(name, err)
	}
	return lab, nil
}

func inFile(name string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		fe.File = name
		return fe
	}
	return &FieldError{File: name, Err: err}
}

func (f *fileLab) lab(file string) (*Lab, error) {
	lab := &Lab{
		Name: f.Name, Description: f.Description, Backend: f.Backend, Seed: f.Seed,
		Checks: f.Checks, Timeline: f.Timeline, Source: file, Path: f.Path,
		Roles: f.Roles,
	}
	if lab.Name == "" {
		lab.Name = labNameFromFile(file)
	}
	if f.Topo != "" {
		base, err := Generate(f.Topo)
		if err != nil {
			return nil, &FieldError{Path: "topo", Err: err}
		}
		lab.Nodes, lab.Links = base.Nodes, base.Links
	}
	for _, sec := range []struct {
		node *yaml.Node
		kind Kind
		key  string
	}{{&f.Hosts, Host, "hosts"}, {&f.Switches, Switch, "switches"}, {&f.Routers, Router, "routers"}} {
		nodes, err := parseNodes(sec.node, sec.kind, sec.key)
		if err != nil {
			return nil, err
		}
		for _, n := range nodes {
			if old := lab.Node(n.Name); old != nil && f.Topo != "" && old.Kind == n.Kind {
				// A node of the generated topology, given programs or routes.
				old.Routes, old.Programs, old.Sysctls, old.Files, old.Line = n.Routes, n.Programs, n.Sysctls, n.Files, n.Line
				old.Localhost, old.LocalhostAuto, old.Expose = n.Localhost, n.LocalhostAuto, n.Expose
				continue
			}
			lab.Nodes = append(lab.Nodes, n)
		}
	}
	for i, fl := range f.Links {
		path := fmt.Sprintf("links[%d]", i)
		if len(fl.Endpoints) != 2 {
			return nil, &FieldError{Line: fl.Line, Path: path + ".endpoints", Err: fmt.Errorf("want exactly 2 endpoints, got %d", len(fl.Endpoints))}
		}
		lab.Links = append(lab.Links, &Link{
			Name: fl.Name, A: fl.Endpoints[0], B: fl.Endpoints[1],
			Netem: fl.Netem, Egress: fl.Egress, Faults: fl.Faults, MTU: fl.MTU, Line: fl.Line,
		})
	}
	return lab, nil
}

// parseNodes reads a hosts/switches/routers section: a mapping of names to
// node bodies (or null), or a plain list of names.
func parseNodes(n *yaml.Node, kind Kind, key string) ([]*Node, error) {
	if n.Kind == 0 || isNull(n) {
		return nil, nil
	}
	var out []*Node
	add := func(name *yaml.Node, body *yaml.Node) error {
		var fn fileNode
		if body != nil {
			if err := decodeStrict(body, &fn); err != nil {
				return fieldErr(body, joinPath(key, name.Value), err)
			}
		}
		node := &Node{Name: name.Value, Kind: kind, Programs: fn.Programs, Sysctls: fn.Sysctls, Files: fn.Files, Expose: fn.Expose, Line: name.Line}
		fw, err := parseLocalhost(fn.Localhost.ports)
		if err != nil {
			return &FieldError{Line: name.Line, Path: joinPath(key, name.Value) + ".localhost", Err: err}
		}
		node.Localhost, node.LocalhostAuto = fw, fn.Localhost.auto
		for j, r := range fn.Routes {
			rt, err := ParseRoute(r)
			if err != nil {
				return &FieldError{Line: name.Line, Path: fmt.Sprintf("%s.%s.routes[%d]", key, name.Value, j), Err: err}
			}
			node.Routes = append(node.Routes, rt)
		}
		out = append(out, node)
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := add(n.Content[i], n.Content[i+1]); err != nil {
				return nil, err
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return nil, &FieldError{Line: c.Line, Path: key, Err: errors.New("in a list, give plain names; use a mapping for node fields")}
			}
			if err := add(c, nil); err != nil {
				return nil, err
			}
		}
	default:
		return nil, &FieldError{Line: n.Line, Path: key, Err: errors.New("want a mapping of node names, or a list of names")}
	}
	return out, nil
}

// ParseRoute reads "10.0.2.0/24 via 10.0.1.254" or "default via 10.0.0.254".
func ParseRoute(s string) (Route, error) {
	f := strings.Fields(s)
	if len(f) != 3 || f[1] != "via" {
		return Route{}, fmt.Errorf("route %q: want \"CIDR via ADDRESS\" or \"default via ADDRESS\"", s)
	}
	return Route{Dst: f[0], Via: f[2]}, nil
}

func labNameFromFile(file string) string {
	base := file
	if i := strings.LastIndexByte(base, '/'); i >= 0 {
		base = base[i+1:]
	}
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".yaml"), ".yml")
	return strings.ToLower(base)
}
