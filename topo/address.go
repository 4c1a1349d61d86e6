package topo

import (
	"fmt"
	"net/netip"
)

// Address plan (documented in the README):
//
//   - A lab with no routers whose hosts have one link each is one flat
//     subnet, as in Mininet: 10.0.0.0/8, the Nth host interface (in file
//     order) gets 10.0.0.N (h1 is 10.0.0.1; the 1000th is 10.0.3.232).
//   - Otherwise every L2 segment (the hosts and routers joined through
//     switches, or the two ends of a host-host link) is its own /24:
//     10.0.0.0/24, 10.0.1.0/24, ... in order of first appearance. Hosts get
//     .1, .2, ...; routers get .254, .253, ...; a segment holding an
//     address given in the file takes that address's subnet.
//   - Given addresses are kept; automatic ones never reuse them; two equal
//     addresses are an error.

type segment struct {
	ifaces []*segIface
	prefix netip.Prefix
}

type segIface struct {
	node  *Node
	iface *Iface
}

func (lab *Lab) segments() []*segment {
	parent := map[any]any{}
	var find func(x any) any
	find = func(x any) any {
		p, ok := parent[x]
		if !ok || p == x {
			parent[x] = x
			return x
		}
		r := find(p)
		parent[x] = r
		return r
	}
	union := func(a, b any) { parent[find(a)] = find(b) }
	ifaceOf := func(node string, l *Link) *Iface {
		for _, i := range lab.Node(node).Ifaces {
			if i.Link == l {
				return i
			}
		}
		return nil
	}
	for _, l := range lab.Links {
		a, b := lab.Node(l.A.Node), lab.Node(l.B.Node)
		var ka, kb any = ifaceOf(a.Name, l), ifaceOf(b.Name, l)
		if a.Kind == Switch {
			ka = a
		}
		if b.Kind == Switch {
			kb = b
		}
		union(ka, kb)
	}
	byRoot := map[any]*segment{}
	var segs []*segment
	for _, n := range lab.Nodes {
		if n.Kind == Switch {
			continue
		}
		for _, i := range n.Ifaces {
			r := find(i)
			s := byRoot[r]
			if s == nil {
				s = &segment{}
				byRoot[r] = s
				segs = append(segs, s)
			}
			s.ifaces = append(s.ifaces, &segIface{n, i})
		}
	}
	return segs
}

func (lab *Lab) hasRouters() bool {
	for _, n := range lab.Nodes {
		if n.Kind == Router {
			return true
		}
	}
	return false
}

func (lab *Lab) assignAddresses() error {
	used := map[netip.Addr]string{}
	for _, n := range lab.Nodes {
		for _, i := range n.Ifaces {
			if i.Addr == "" {
				continue
			}
			p := netip.MustParsePrefix(i.Addr)
			if old, ok := used[p.Addr()]; ok {
				return nodeErr(n, "", fmt.Errorf("address %s of %s:%s clashes with %s", p.Addr(), n.Name, i.Name, old))
			}
			used[p.Addr()] = n.Name + ":" + i.Name
		}
	}
	flat := !lab.hasRouters()
	for _, n := range lab.Nodes {
		if n.Kind == Host && len(n.Ifaces) > 1 {
			flat = false
		}
	}
	if flat {
		base := netip.MustParseAddr("10.0.0.0")
		next := base.Next()
		for _, n := range lab.Nodes {
			for _, i := range n.Ifaces {
				if n.Kind == Switch || i.Addr != "" {
					continue
				}
				for used[next] != "" {
					next = next.Next()
				}
				if next.As4()[0] != 10 || next.As4() == [4]byte{10, 255, 255, 255} {
					return nodeErr(n, "", fmt.Errorf("out of addresses in 10.0.0.0/8"))
				}
				i.Addr = netip.PrefixFrom(next, 8).String()
				used[next] = n.Name + ":" + i.Name
				next = next.Next()
			}
		}
		return nil
	}
	segs := lab.segments()
	taken := map[netip.Prefix]bool{}
	for _, s := range segs {
		for _, si := range s.ifaces {
			if si.iface.Addr != "" {
				s.prefix = netip.MustParsePrefix(si.iface.Addr).Masked()
				taken[s.prefix] = true
				break
			}
		}
	}
	k := 0
	for _, s := range segs {
		for !s.prefix.IsValid() {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(k >> 8), byte(k), 0}), 24)
			k++
			if k > 1<<16 {
				return fmt.Errorf("out of /24 subnets in 10.0.0.0/8")
			}
			if !overlapsAny(p, taken) {
				s.prefix = p
				taken[p] = true
			}
		}
		if err := s.number(used); err != nil {
			return err
		}
	}
	return nil
}

func overlapsAny(p netip.Prefix, set map[netip.Prefix]bool) bool {
	for q := range set {
		if p.Overlaps(q) {
			return true
		}
	}
	return false
}

// number gives addresses to a segment's interfaces: hosts from the bottom
// of the subnet, routers from the top.
func (s *segment) number(used map[netip.Addr]string) error {
	low := s.prefix.Addr().Next()
	high := lastAddr(s.prefix).Prev()
	for _, si := range s.ifaces {
		if si.iface.Addr != "" {
			continue
		}
		var a netip.Addr
		if si.node.Kind == Router {
			for used[high] != "" {
				high = high.Prev()
			}
			a, high = high, high.Prev()
		} else {
			for used[low] != "" {
				low = low.Next()
			}
			a, low = low, low.Next()
		}
		if !s.prefix.Contains(a) || a == s.prefix.Addr() || a == lastAddr(s.prefix) {
			return nodeErr(si.node, "", fmt.Errorf("subnet %s is full", s.prefix))
		}
		si.iface.Addr = netip.PrefixFrom(a, s.prefix.Bits()).String()
		used[a] = si.node.Name + ":" + si.iface.Name
	}
	return nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// assignRoutes gives hosts a default route through a router of their
// segment, and routers a route to every subnet they are not on, through the
// shortest chain of routers.
func (lab *Lab) assignRoutes() error {
	if !lab.hasRouters() {
		return nil
	}
	segs := lab.segments()
	segOf := map[*Iface]*segment{}
	for _, s := range segs {
		s.prefix = netip.MustParsePrefix(s.ifaces[0].iface.Addr).Masked()
		for _, si := range s.ifaces {
			segOf[si.iface] = s
		}
	}
	routerOn := func(s *segment) *segIface {
		for _, si := range s.ifaces {
			if si.node.Kind == Router {
				return si
			}
		}
		return nil
	}
	for _, n := range lab.Nodes {
		if n.Kind != Host || hasDefault(n) {
			continue
		}
		for _, i := range n.Ifaces {
			if r := routerOn(segOf[i]); r != nil {
				n.Routes = append(n.Routes, Route{Dst: "default", Via: stripPrefix(r.iface.Addr)})
				break
			}
		}
	}
	for _, r := range lab.Nodes {
		if r.Kind != Router {
			continue
		}
		// Breadth-first over segments; hop[s] is the first next-hop address.
		hop := map[*segment]string{}
		var queue []*segment
		for _, i := range r.Ifaces {
			hop[segOf[i]] = ""
			queue = append(queue, segOf[i])
		}
		for len(queue) > 0 {
			s := queue[0]
			queue = queue[1:]
			for _, si := range s.ifaces {
				if si.node.Kind != Router || si.node == r {
					continue
				}
				for _, j := range si.node.Ifaces {
					t := segOf[j]
					if _, seen := hop[t]; seen {
						continue
					}
					h := hop[s]
					if h == "" {
						h = stripPrefix(si.iface.Addr)
					}
					hop[t] = h
					queue = append(queue, t)
				}
			}
		}
		for _, s := range segs {
			if h := hop[s]; h != "" && !hasRouteTo(r, s.prefix.String()) {
				r.Routes = append(r.Routes, Route{Dst: s.prefix.String(), Via: h})
			}
		}
	}
	return nil
}

func hasDefault(n *Node) bool { return hasRouteTo(n, "default") }

func hasRouteTo(n *Node, dst string) bool {
	for _, r := range n.Routes {
		if r.Dst == dst {
			return true
		}
	}
	return false
}
