package topo

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// HostnameAddr is what a host's own name resolves to inside it, as on
// Debian and Ubuntu (127.0.1.1): a server that binds gethostname() listens
// on loopback only, and `expose:` makes it reachable from the lab.
const HostnameAddr = "127.0.1.1"

// parseLocalhost reads `localhost: {12000: server, 8080: "web:80"}`.
func parseLocalhost(m map[string]string) ([]Forward, error) {
	var out []Forward
	for k, v := range m {
		port, err := strconv.Atoi(k)
		if err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("%q: want a port (1-65535) mapped to NODE or NODE:PORT", k)
		}
		f := Forward{Port: port, Node: v, ToPort: port}
		if node, p, ok := strings.Cut(v, ":"); ok {
			to, err := strconv.Atoi(p)
			if err != nil || to < 1 || to > 65535 {
				return nil, fmt.Errorf("%d: %q: want NODE or NODE:PORT", port, v)
			}
			f.Node, f.ToPort = node, to
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Port < out[j].Port })
	return out, nil
}

// checkReach validates localhost: and expose: and the lab's path:.
func (lab *Lab) checkReach() error {
	for _, n := range lab.Nodes {
		if n.Kind == Switch && (len(n.Localhost) > 0 || len(n.Expose) > 0 || n.LocalhostAuto) {
			return nodeErr(n, "localhost", errors.New("a switch has no programs to forward for"))
		}
		for _, f := range n.Localhost {
			t := lab.Node(f.Node)
			switch {
			case t == nil:
				return nodeErr(n, "localhost", fmt.Errorf("%d: no node %q", f.Port, f.Node))
			case t == n:
				return nodeErr(n, "localhost", fmt.Errorf("%d: %q is this host: its own ports need no forwarding", f.Port, f.Node))
			case t.Addr() == "":
				return nodeErr(n, "localhost", fmt.Errorf("%d: node %q has no address", f.Port, f.Node))
			}
		}
		seen := map[int]bool{}
		for _, p := range n.Expose {
			if p < 1 || p > 65535 {
				return nodeErr(n, "expose", fmt.Errorf("%d: want a port 1-65535", p))
			}
			if seen[p] {
				return nodeErr(n, "expose", fmt.Errorf("%d given twice", p))
			}
			seen[p] = true
		}
	}
	for _, d := range lab.Path {
		if !filepath.IsAbs(d) {
			return &FieldError{Path: "path", Err: fmt.Errorf("%q: want an absolute folder", d)}
		}
	}
	return nil
}

// Exposed reports whether the host exposes a loopback-only TCP port.
func (n *Node) Exposed(port int) bool {
	for _, p := range n.Expose {
		if p == port {
			return true
		}
	}
	return false
}

// HostsFile is the /etc/hosts programs on host see: localhost, its own
// name on HostnameAddr, and every other host's and router's name on its
// first address. Ownership is marked on the first line, so cleanup removes
// only labctl's files.
func (lab *Lab) HostsFile(host, labName string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# labctl lab %s, host %s\n", labName, host)
	b.WriteString("127.0.0.1\tlocalhost\n")
	fmt.Fprintf(&b, "%s\t%s\n", HostnameAddr, host)
	for _, n := range lab.Nodes {
		if n.Name == host || n.Kind == Switch || n.Addr() == "" {
			continue
		}
		fmt.Fprintf(&b, "%s\t%s\n", n.Addr(), n.Name)
	}
	return b.String()
}

// localhostField is `localhost:`: a map of ports (`{12000: server}`), the
// word `auto`, or a map that also holds `auto: true`.
type localhostField struct {
	ports map[string]string
	auto  bool
}

func (l *localhostField) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Value != "auto" {
			return fmt.Errorf("%q: want auto, or a mapping of ports to NODE or NODE:PORT", n.Value)
		}
		l.auto = true
		return nil
	}
	if err := n.Decode(&l.ports); err != nil {
		return err
	}
	if v, ok := l.ports["auto"]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("auto: %q: want true or false", v)
		}
		l.auto = b
		delete(l.ports, "auto")
	}
	return nil
}
