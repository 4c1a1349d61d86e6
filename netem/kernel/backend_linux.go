package kernel

// The kernel backend: a veth pair per link and, on the egress of each
// impaired end, one root netem qdisc that does everything the Spec asks.
//
// Rate uses netem's own rate (not a tbf child): netem then serialises each
// packet behind the previous one at the configured rate, counting the
// whole frame as the qdisc sees it (Ethernet header included), and the
// delay runs after serialisation, as on a real link. One qdisc means one
// queue, one limit (see QueueLimit) and nothing to keep in step. A TCP
// sender's goodput is then rate × (MTU-52)/(MTU+14) (1448 payload bytes per
// 1514-byte frame with timestamps: 95.6% of the rate at MTU 1500).
//
// Jitter uses a distribution table: iproute2's NAME.dist for normal,
// pareto and paretonormal (loaded from where iproute2 installs them;
// without them such a Spec is refused with ErrUnsupported), and a generated
// uniform table for uniform jitter (see uniformTable). With the uniform
// table a packet's delay is uniform in [delay-jitter, delay+jitter); with
// the others jitter is the table's sigma. netem keeps its queue ordered by
// send time, so jitter reorders packets, as documented on the Spec.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/topo"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

const (
	tcaKind    = 1
	tcaOptions = 2
	tcHRoot    = 0xFFFFFFFF
	// qdiscHandle marks labctl's netem qdiscs ("4c41:" is "LA"), so reset
	// removes only a qdisc labctl put there.
	qdiscHandle = 0x4c410000
	// tcTimeout bounds one netlink exchange.
	tcTimeout = 5 * time.Second
)

type kernel struct{}

// New returns the tc-netem backend.
func New() netem.Backend { return kernel{} }

func (kernel) Name() string { return netem.BackendKernel }

// Available reports whether this kernel can run netem qdiscs: it adds
// one on the loopback device of a throwaway namespace (which it always
// removes) and returns the kernel's answer.
func Available(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	reapProbes()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := fmt.Sprintf("%s%d-%s", probePrefix, os.Getpid(), hex.EncodeToString(rnd[:]))
	if err := nsdo.NewNamed(name); err != nil {
		return fmt.Errorf("sch_netem probe: %w", err)
	}
	defer func() {
		if err := nsdo.DeleteNamed(name); err != nil {
			slog.Warn("sch_netem probe: remove namespace", "netns", name, "err", err)
		}
	}()
	opts := netemOptions(netem.Spec{Delay: topo.Duration(time.Millisecond)}, nil)
	err := qdiscReplace(name, "lo", opts)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("sch_netem probe: the kernel refused a netem qdisc (%w): this kernel has no sch_netem; load it (modprobe sch_netem) or use the userspace backend: %w", err, netem.ErrUnsupported)
	}
	if err != nil {
		return fmt.Errorf("sch_netem probe: add a netem qdisc: %w", err)
	}
	return nil
}

// probePrefix names Available's throwaway namespaces; the PID of the
// process that made one follows it.
const probePrefix = "labctl-probe-"

// reapProbes removes the probe namespaces of labctl processes that died
// between making and removing one (killed mid-probe). A namespace whose
// PID is alive (or reused) is left alone.
func reapProbes() {
	ents, err := os.ReadDir(nsdo.RunDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), probePrefix)
		if !ok {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if _, err := strconv.Atoi(pid); err != nil {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); errors.Is(err, os.ErrNotExist) {
			if err := nsdo.DeleteNamed(e.Name()); err != nil {
				slog.Warn("sch_netem probe: remove a dead probe's namespace", "netns", e.Name(), "err", err)
			}
		}
	}
}

// Create makes the veth pair and impairs it. On error it leaves nothing.
func (k kernel) Create(ctx context.Context, l *netem.Link) (err error) {
	tables := map[netem.Dir][]int16{}
	for _, d := range []netem.Dir{netem.AtoB, netem.BtoA} {
		t, err := prepare(l.Spec(d))
		if err != nil {
			return fmt.Errorf("link %q %s: %w", l.ID, d, err)
		}
		tables[d] = t
	}
	l.Via = netem.ViaVeth
	if err := netem.CreateVeth(ctx, *l); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = netem.DeleteIface(l.A)
		}
	}()
	if !l.Impaired() {
		return nil
	}
	for _, e := range []netem.End{l.A, l.B} {
		if err := OffloadsOff(e); err != nil {
			return fmt.Errorf("link %q: %w", l.ID, err)
		}
	}
	for _, d := range []netem.Dir{netem.AtoB, netem.BtoA} {
		if s := l.Spec(d); !s.IsZero() {
			if err := applySpec(*l, d, s, tables[d]); err != nil {
				return err
			}
		}
	}
	return nil
}

// Set replaces one direction's impairment in place (netem's change keeps
// the packets it holds); a zero Spec removes labctl's qdisc, which makes
// the direction clean.
func (kernel) Set(ctx context.Context, l netem.Link, d netem.Dir, s netem.Spec) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e := end(l, d)
	if s.IsZero() {
		if err := qdiscDelete(e.NS, e.Iface); err != nil {
			return fmt.Errorf("link %q %s: node %q: %q: remove netem: %w", l.ID, d, e.Node, e.Iface, err)
		}
		return nil
	}
	table, err := prepare(s)
	if err != nil {
		return fmt.Errorf("link %q %s: %w", l.ID, d, err)
	}
	for _, x := range []netem.End{l.A, l.B} {
		if err := OffloadsOff(x); err != nil {
			return fmt.Errorf("link %q: %w", l.ID, err)
		}
	}
	return applySpec(l, d, s, table)
}

// Show reads the netem qdiscs in force back into Specs. The kernel does not
// report a jitter distribution, so Distribution is always empty; Limit is
// the limit in force.
func (kernel) Show(ctx context.Context, l netem.Link) (atob, btoa netem.Spec, err error) {
	if err := ctx.Err(); err != nil {
		return netem.Spec{}, netem.Spec{}, err
	}
	var out [2]netem.Spec
	for i, d := range []netem.Dir{netem.AtoB, netem.BtoA} {
		e := end(l, d)
		opts, ok, err := qdiscGet(e.NS, e.Iface)
		if err != nil {
			return netem.Spec{}, netem.Spec{}, fmt.Errorf("link %q %s: node %q: %q: read qdisc: %w", l.ID, d, e.Node, e.Iface, err)
		}
		if !ok {
			continue
		}
		if out[i], err = specFromOptions(opts); err != nil {
			return netem.Spec{}, netem.Spec{}, fmt.Errorf("link %q %s: %w", l.ID, d, err)
		}
	}
	return out[0], out[1], nil
}

// end is the interface whose egress carries direction d.
func end(l netem.Link, d netem.Dir) netem.End {
	if d == netem.BtoA {
		return l.B
	}
	return l.A
}

// prepare checks a Spec against what the kernel can do and loads its
// jitter table.
func prepare(s netem.Spec) ([]int16, error) {
	if s.IsZero() {
		return nil, nil
	}
	if err := kernelCheck(s); err != nil {
		return nil, err
	}
	if s.Jitter == 0 {
		return nil, nil
	}
	return distTable(s.Distribution)
}

func applySpec(l netem.Link, d netem.Dir, s netem.Spec, table []int16) error {
	e := end(l, d)
	if err := qdiscReplace(e.NS, e.Iface, netemOptions(s, table)); err != nil {
		if errors.Is(err, unix.ENOENT) {
			err = fmt.Errorf("%w (this kernel has no sch_netem): %w", err, netem.ErrUnsupported)
		}
		return fmt.Errorf("link %q %s: node %q: %q: netem %s: %w", l.ID, d, e.Node, e.Iface, s, err)
	}
	slog.Debug("netem set", "link", l.ID, "dir", d.String(), "node", e.Node, "iface", e.Iface, "spec", s.String(), "limit", QueueLimit(s))
	return nil
}

// tcExchange sends one rtnetlink request on a socket opened inside the
// namespace (through nsdo) and returns the replies.
func tcExchange(ns string, req *nl.NetlinkRequest, resType uint16) ([][]byte, error) {
	var s *nl.NetlinkSocket
	err := nsdo.DoNamed(ns, func() error {
		var err error
		s, err = nl.Subscribe(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns %q: netlink socket: %w", ns, err)
	}
	defer s.Close()
	tv := unix.NsecToTimeval(tcTimeout.Nanoseconds())
	_ = s.SetSendTimeout(&tv)
	_ = s.SetReceiveTimeout(&tv)
	_ = s.SetExtAck(true) // the kernel then says why it refused
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}
	return req.Execute(unix.NETLINK_ROUTE, resType)
}

func ifindex(ns, iface string) (int, error) {
	idx := 0
	err := netem.WithHandle(ns, func(h *netlink.Handle) error {
		lk, err := h.LinkByName(iface)
		if err != nil {
			return err
		}
		idx = lk.Attrs().Index
		return nil
	})
	return idx, err
}

func tcmsg(ifidx int, handle, parent uint32) []byte {
	m := nl.TcMsg{Family: unix.AF_UNSPEC, Ifindex: int32(ifidx), Handle: handle, Parent: parent}
	return append([]byte(nil), m.Serialize()...)
}

// qdiscReplace makes labctl's netem the root qdisc of an interface, or
// changes it in place.
func qdiscReplace(ns, iface string, opts []byte) error {
	idx, err := ifindex(ns, iface)
	if err != nil {
		return err
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWQDISC, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK)
	req.AddRawData(tcmsg(idx, qdiscHandle, tcHRoot))
	req.AddRawData(attr{typ: tcaKind, data: []byte("netem\x00")}.encode())
	req.AddRawData(attr{typ: tcaOptions, data: opts}.encode())
	_, err = tcExchange(ns, req, 0)
	return err
}

// rootQdisc is the root qdisc of one interface as a dump reports it.
type rootQdisc struct {
	kind   string
	handle uint32
	opts   []byte
	stats  qdiscStats
}

func qdiscRoot(ns, iface string) (rootQdisc, bool, error) {
	idx, err := ifindex(ns, iface)
	if err != nil {
		return rootQdisc{}, false, err
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETQDISC, unix.NLM_F_DUMP)
	req.AddRawData(tcmsg(idx, 0, 0))
	msgs, err := tcExchange(ns, req, unix.RTM_NEWQDISC)
	if err != nil {
		return rootQdisc{}, false, err
	}
	for _, m := range msgs {
		if len(m) < nl.SizeofTcMsg {
			continue
		}
		t := nl.DeserializeTcMsg(m)
		if int(t.Ifindex) != idx || t.Parent != tcHRoot {
			continue
		}
		attrs, err := parseAttrs(m[nl.SizeofTcMsg:])
		if err != nil {
			return rootQdisc{}, false, err
		}
		kind := string(attrs[tcaKind])
		if n := len(kind); n > 0 && kind[n-1] == 0 {
			kind = kind[:n-1]
		}
		st, err := parseQdiscStats(attrs)
		if err != nil {
			return rootQdisc{}, false, err
		}
		return rootQdisc{kind: kind, handle: t.Handle, opts: attrs[tcaOptions], stats: st}, true, nil
	}
	return rootQdisc{}, false, nil
}

// qdiscGet returns the options of labctl's netem root qdisc, if there is one.
func qdiscGet(ns, iface string) ([]byte, bool, error) {
	q, ok, err := qdiscRoot(ns, iface)
	if err != nil || !ok || q.kind != "netem" {
		return nil, false, err
	}
	return q.opts, true, nil
}

// qdiscDelete removes labctl's netem root qdisc; none is not an error, and
// a root qdisc labctl did not put there is left alone.
func qdiscDelete(ns, iface string) error {
	q, ok, err := qdiscRoot(ns, iface)
	if err != nil {
		return err
	}
	if !ok || q.kind != "netem" || q.handle != qdiscHandle {
		return nil
	}
	idx, err := ifindex(ns, iface)
	if err != nil {
		return err
	}
	req := nl.NewNetlinkRequest(unix.RTM_DELQDISC, unix.NLM_F_ACK)
	req.AddRawData(tcmsg(idx, qdiscHandle, tcHRoot))
	_, err = tcExchange(ns, req, 0)
	return err
}

// Candidate is the kernel backend as netem.Select chooses it.
func Candidate() netem.Candidate {
	return netem.Candidate{Name: netem.BackendKernel, Available: Available, New: New}
}
