// Package netem is the core of link impairment: one Spec per direction
// (topo.Impairment), the Link a backend realises, the Backend interface,
// Select, and the optional capabilities a caller asks for with a type
// assertion (Counter, Faulter, Capturer, Runner). It also makes the plain
// veth pair every backend starts from.
//
// The backends live in their own packages: netem/kernel (tc netem through
// netlink) and netem/engine (TAP devices joined by the userspace engine).
// netem/measure probes links and judges them against their Specs. netem
// imports none of them; see docs/architecture.md.
//
// A link has two ends, A and B, each an interface inside a lab node's
// network namespace. Direction AtoB is what A sends to B: it is impaired on
// A's egress (the kernel backend's qdisc sits on A's interface).
package netem
