// Package topo is the pure lab model: nodes, links, impairments, programs,
// checks and a timeline; YAML lab files; the built-in topologies (single,
// linear, tree, as Mininet has them) and the embedded named labs;
// validation and address assignment. It makes no system calls.
package topo

// Kind of a node.
type Kind string

const (
	Host   Kind = "host"   // a network namespace with addresses and programs
	Switch Kind = "switch" // a Linux bridge, in a namespace of its own
	Router Kind = "router" // a host that forwards between subnets
)

// Lab is a whole lab, validated and resolved: every interface has a name and
// every host interface an address.
type Lab struct {
	Name        string
	Description string
	// Backend of the link impairments: "auto" (default), "kernel" or "userspace".
	Backend string
	// Seed makes the userspace backend's random choices repeatable.
	Seed     int64
	Nodes    []*Node
	Links    []*Link
	Checks   []Check
	Timeline []Event
	// Path lists folders first on every program's PATH (after the lab's
	// labctl), e.g. an interpreter's bin folder.
	Path []string
	// Roles names groups of programs one submission fills with one
	// command: {client: [client1, client2/session]}, so --program
	// client='python3 client.py' replaces each. A role is not a node's
	// name; its members are "HOST" or "HOST/PROGRAM".
	Roles map[string][]string
	// Source says where the lab came from: a file path, "builtin:NAME" or
	// "topo:SPEC".
	Source string
}

// Node is a host, switch or router.
type Node struct {
	Name     string
	Kind     Kind
	Routes   []Route
	Programs []Program
	Sysctls  map[string]string
	// Files are made in the host's home folder before its programs start.
	Files  []File
	Ifaces []*Iface // in link order
	// Localhost forwards this host's loopback ports to other hosts: a
	// connection to 127.0.0.1:PORT (or to the host's own name) reaches
	// the target's port. Sorted by port.
	Localhost []Forward
	// LocalhostAuto (`localhost: auto`, or the key auto in the map)
	// forwards every port a replaced server of the lab listens on (see
	// docs/labfile.md, "Their own ports").
	LocalhostAuto bool
	// Expose makes TCP servers that listen only on loopback (127.0.0.1 or
	// the host's own name) reachable on the host's lab addresses.
	Expose []int
	Line   int // where it is defined in the lab file (0 if generated)
}

// Forward is one localhost port of a host led to a port of another node.
type Forward struct {
	Port   int    `json:"port"`
	Node   string `json:"node"`
	ToPort int    `json:"to_port"`
	Addr   string `json:"addr,omitempty"` // the node's address, filled in by the runtime's plan
}

// File is a file a lab puts in a host's home folder: given content, or
// Size random bytes (the same bytes for the same lab seed and path).
type File struct {
	Path    string `yaml:"path" json:"path"`
	Content string `yaml:"content" json:"content,omitempty"`
	Size    Size   `yaml:"size" json:"size,omitempty"`
	Line    int    `yaml:"-" json:"-"`
}

// Iface is one end of a link, seen from its node.
type Iface struct {
	Name string
	Addr string // CIDR, empty on switch ports
	Link *Link
	Peer *Node
}

// Route is a static route of a host or router.
type Route struct {
	Dst string // CIDR, or "default"
	Via string // next hop
}

func (r Route) String() string { return r.Dst + " via " + r.Via }

// Endpoint names one end of a link in a lab file.
type Endpoint struct {
	Node  string
	Iface string // optional: ethN by default
	Addr  string // optional CIDR: assigned automatically by default
}

// Link joins two nodes.
type Link struct {
	Name string // unique; "a-b" by default
	A, B Endpoint
	// Netem applies in both directions; Egress replaces it for the packets
	// a given endpoint node sends.
	Netem  Impairment
	Egress map[string]Impairment
	// Faults are scripted per-packet faults (userspace backend).
	Faults []Fault
	MTU    int
	Line   int
}

// Spec returns the impairment of the packets that node from sends on l.
func (l *Link) Spec(from string) Impairment {
	if s, ok := l.Egress[from]; ok {
		return s
	}
	return l.Netem
}

// Node returns the named node, or nil.
func (lab *Lab) Node(name string) *Node {
	for _, n := range lab.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Link returns the named link, or nil.
func (lab *Lab) Link(name string) *Link {
	for _, l := range lab.Links {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// Addr returns a host's first address without the prefix length, or "".
func (n *Node) Addr() string {
	for _, i := range n.Ifaces {
		if i.Addr != "" {
			return stripPrefix(i.Addr)
		}
	}
	return ""
}

func stripPrefix(cidr string) string {
	for i := 0; i < len(cidr); i++ {
		if cidr[i] == '/' {
			return cidr[:i]
		}
	}
	return cidr
}
