package measure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/netem"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// soNoCheck is SO_NO_CHECK (asm-generic/socket.h): send IPv4 UDP with no
// checksum, so the receiver cannot drop a corrupted datagram.
const soNoCheck = 11

// Probe addresses: verify gives the two ends of the link it measures these
// link-local addresses for the run and removes them after, so probes cross
// exactly that link whatever the lab's address plan and routes are (a
// switch has no address at all). On a switch the address goes on the bridge
// the end is a port of. Links are measured one at a time, so one pair is
// enough.
var (
	ProbeAddrA = netip.MustParsePrefix("169.254.123.1/30")
	ProbeAddrB = netip.MustParsePrefix("169.254.123.2/30")
)

// AttachProbeAddrs adds the probe addresses to a link's ends and returns
// the two measurement points and the undo, which the caller must run. An
// end on a bridge port gets the address on its bridge. Each end also gets
// a permanent neighbour entry for the other: otherwise the first probes
// wait for ARP across the impaired link, and one lost ARP packet stalls
// them for a second (the retransmit time) and overflows the unresolved
// queue, which would read as loss the link does not have.
func AttachProbeAddrs(l netem.Link) (a, b Point, undo func() error, err error) {
	var undos []func() error
	undo = func() error {
		var errs []error
		for i := len(undos) - 1; i >= 0; i-- {
			errs = append(errs, undos[i]())
		}
		return errors.Join(errs...)
	}
	fail := func(err error) (Point, Point, func() error, error) {
		return Point{}, Point{}, nil, errors.Join(fmt.Errorf("link %q: %w", l.ID, err), undo())
	}
	ends := []netem.End{l.A, l.B}
	pfxs := []netip.Prefix{ProbeAddrA, ProbeAddrB}
	var devs [2]probeDev
	for i := range ends {
		d, u, err := addTempAddr(ends[i], pfxs[i])
		if err != nil {
			return fail(err)
		}
		devs[i] = d
		undos = append(undos, u)
	}
	for i := range ends {
		peer := 1 - i
		u, err := addTempNeigh(ends[i], devs[i], pfxs[peer].Addr(), devs[peer].mac)
		if err != nil {
			return fail(err)
		}
		undos = append(undos, u)
	}
	return Point{NS: l.A.NS, Addr: ProbeAddrA.Addr()}, Point{NS: l.B.NS, Addr: ProbeAddrB.Addr()}, undo, nil
}

// probeDev is the device that carries an end's probe address.
type probeDev struct {
	name string
	mac  net.HardwareAddr
}

func addTempNeigh(e netem.End, dev probeDev, ip netip.Addr, mac net.HardwareAddr) (func() error, error) {
	var n *netlink.Neigh
	err := netem.WithHandle(e.NS, func(h *netlink.Handle) error {
		lk, err := h.LinkByName(dev.name)
		if err != nil {
			return err
		}
		n = &netlink.Neigh{LinkIndex: lk.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
			IP: ip.AsSlice(), HardwareAddr: mac}
		return h.NeighSet(n)
	})
	if err != nil {
		return nil, fmt.Errorf("node %q: add neighbour %s on %q: %w", e.Node, ip, dev.name, err)
	}
	return func() error {
		return netem.WithHandle(e.NS, func(h *netlink.Handle) error {
			if err := h.NeighDel(n); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
				return fmt.Errorf("node %q: remove neighbour %s from %q: %w", e.Node, ip, dev.name, err)
			}
			return nil
		})
	}, nil
}

func addTempAddr(e netem.End, pfx netip.Prefix) (probeDev, func() error, error) {
	var dev probeDev
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), 32)}}
	err := netem.WithHandle(e.NS, func(h *netlink.Handle) error {
		lk, err := h.LinkByName(e.Iface)
		if err != nil {
			return err
		}
		if m := lk.Attrs().MasterIndex; m != 0 { // a bridge port: address the bridge
			if lk, err = h.LinkByIndex(m); err != nil {
				return err
			}
		}
		dev = probeDev{name: lk.Attrs().Name, mac: lk.Attrs().HardwareAddr}
		return h.AddrAdd(lk, addr)
	})
	if err != nil {
		return dev, nil, fmt.Errorf("node %q: add probe address %s on %q: %w", e.Node, pfx, e.Iface, err)
	}
	return dev, func() error {
		return netem.WithHandle(e.NS, func(h *netlink.Handle) error {
			lk, err := h.LinkByName(dev.name)
			if err != nil {
				return nil // gone with its namespace
			}
			if err := h.AddrDel(lk, addr); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				return fmt.Errorf("node %q: remove probe address %s from %q: %w", e.Node, pfx, dev.name, err)
			}
			return nil
		})
	}, nil
}

// ListenUDP opens a UDP socket bound to p inside p's namespace.
func ListenUDP(p Point, noCheck bool) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := nsdo.DoNamed(p.NS, func() error {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				// Room for bursts (a reorder releases many at once); as root
				// past rmem_max.
				if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) != nil {
					_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
				}
				if noCheck {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, soNoCheck, 1)
				}
			})
			return errors.Join(err, serr)
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(p.Addr, 0).String())
		if err != nil {
			return err
		}
		c = pc.(*net.UDPConn)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netns %q: udp socket on %s: %w", p.NS, p.Addr, err)
	}
	return c, nil
}

// Probe sends o.Count UDP probes from a to b, which echoes each one back,
// and measures both directions and the RTT. It takes about
// Count×Interval + 2×Drain (at most 3×Count×Interval + 8×Drain + 5 s).
func Probe(ctx context.Context, a, b Point, o ProbeOptions) (ProbeResult, error) {
	o = o.withDefaults()
	ca, err := ListenUDP(a, o.NoChecksum)
	if err != nil {
		return ProbeResult{}, err
	}
	defer ca.Close()
	cb, err := ListenUDP(b, o.NoChecksum)
	if err != nil {
		return ProbeResult{}, err
	}
	defer cb.Close()
	dst := cb.LocalAddr().(*net.UDPAddr).AddrPort()
	base := time.Now()
	now := func() time.Duration { return time.Since(base) }

	var wg sync.WaitGroup
	var lastAtB, lastAtA atomic.Int64 // ns since base of the last datagram in
	// B: record each probe, echo it with B's own sequence number.
	var atob []arrival
	var corruptAB, echoes int
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		out := make([]byte, o.Size)
		for {
			n, from, err := cb.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			t := now()
			lastAtB.Store(int64(t))
			m, ok := decodeProbe(buf[:n])
			if !ok || m.kind != kindProbe || n != o.Size {
				corruptAB++
				continue
			}
			atob = append(atob, arrival{seq: m.seq, owd: t - m.sent})
			probeMsg{kind: kindEcho, seq: uint32(echoes), orig: m.seq, sent: now(), origSent: m.sent}.encode(out)
			if _, err := cb.WriteToUDPAddrPort(out, from); err == nil {
				echoes++
			}
		}
	}()
	// A: record the echoes.
	var btoa []arrival
	var rtts []time.Duration
	var corruptBA int
	answered := map[uint32]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, err := ca.Read(buf)
			if err != nil {
				return
			}
			t := now()
			lastAtA.Store(int64(t))
			m, ok := decodeProbe(buf[:n])
			if !ok || m.kind != kindEcho || n != o.Size {
				corruptBA++
				continue
			}
			btoa = append(btoa, arrival{seq: m.seq, owd: t - m.sent})
			if !answered[m.orig] {
				answered[m.orig] = true
				rtts = append(rtts, t-m.origSent)
			}
		}
	}()

	out := make([]byte, o.Size)
	sent := 0
	var sendErr error
	// Probes go on schedule; after a stall (a loaded or emulated machine)
	// the backlog goes out at twice the rate at most, not as one burst,
	// and the run stops at three times its planned length.
	stop := base.Add(3*time.Duration(o.Count)*o.Interval + time.Second)
	var last time.Time
	for i := 0; i < o.Count && time.Now().Before(stop); i++ {
		at := base.Add(time.Duration(i) * o.Interval)
		if floor := last.Add(o.Interval / 2); at.Before(floor) {
			at = floor
		}
		if d := time.Until(at); d > 0 {
			waitCtx(ctx, d)
		}
		if ctx.Err() != nil {
			sendErr = ctx.Err()
			break
		}
		last = time.Now()
		probeMsg{kind: kindProbe, seq: uint32(i), sent: now()}.encode(out)
		if _, err := ca.WriteToUDPAddrPort(out, dst); err != nil {
			// A full socket buffer or a transient ENOBUFS is a lost probe,
			// as on a real host; anything else ends the run.
			if !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EAGAIN) {
				sendErr = err
				break
			}
		}
		sent++
	}
	// Let the last probes arrive at B, then stop B (its echo count is then
	// final) and let the last echoes arrive at A. Each side waits until it
	// has heard nothing for Drain, so a stalled reader is not cut short,
	// and at most 4×Drain + 2 s.
	quiet(ctx, o.Drain, now, &lastAtB)
	_ = cb.SetReadDeadline(time.Now())
	quiet(ctx, o.Drain, now, &lastAtA)
	_ = ca.SetReadDeadline(time.Now())
	wg.Wait()
	if sendErr != nil {
		return ProbeResult{}, fmt.Errorf("probe %s -> %s: %w", a.Addr, b.Addr, sendErr)
	}
	return ProbeResult{
		AtoB: analyze(sent, atob, corruptAB),
		BtoA: analyze(echoes, btoa, corruptBA),
		RTT:  summarize(rtts),
	}, nil
}

// quiet waits until nothing has arrived for d (last holds the time of the
// last arrival), at most 4×d + 2 s.
func quiet(ctx context.Context, d time.Duration, now func() time.Duration, last *atomic.Int64) {
	start := now()
	for ctx.Err() == nil && now()-start < 4*d+2*time.Second {
		idle := now() - max(time.Duration(last.Load()), start)
		if idle >= d {
			return
		}
		waitCtx(ctx, d-idle)
	}
}

func waitCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Goodput runs one TCP bulk transfer from one point to the other for dur
// and returns the receiver's goodput after a warm-up (a quarter of dur, at
// most 1 s, so slow start is over). The connection is cut at dur, whatever
// is still queued on the link: the run is bounded by dur plus the connect.
func Goodput(ctx context.Context, from, to Point, dur time.Duration) (GoodputResult, error) {
	var ln net.Listener
	err := nsdo.DoNamed(to.NS, func() error {
		var err error
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(to.Addr, 0).String())
		return err
	})
	if err != nil {
		return GoodputResult{}, fmt.Errorf("netns %q: listen on %s: %w", to.NS, to.Addr, err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(ctx, dur+10*time.Second)
	defer cancel()
	var conn net.Conn
	err = nsdo.DoNamed(from.NS, func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from.Addr.AsSlice()}}
		var err error
		conn, err = d.DialContext(ctx, "tcp4", ln.Addr().String())
		return err
	})
	if err != nil {
		return GoodputResult{}, fmt.Errorf("netns %q: connect %s -> %s: %w", from.NS, from.Addr, ln.Addr(), err)
	}
	defer conn.Close()
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	rc, err := ln.Accept()
	if err != nil {
		return GoodputResult{}, fmt.Errorf("accept on %s: %w", ln.Addr(), err)
	}
	defer rc.Close()

	start := time.Now()
	end := start.Add(dur)
	warm := start.Add(min(dur/4, time.Second))
	_ = conn.SetWriteDeadline(end)
	_ = rc.SetReadDeadline(end)
	go func() {
		buf := make([]byte, 64<<10)
		for ctx.Err() == nil {
			if _, err := conn.Write(buf); err != nil {
				return
			}
		}
	}()
	var total, atWarm int64
	var warmAt, last time.Time
	buf := make([]byte, 256<<10)
	for {
		n, err := rc.Read(buf)
		t := time.Now()
		if n > 0 {
			if warmAt.IsZero() && t.After(warm) {
				warmAt, atWarm = t, total
			}
			total += int64(n)
			last = t
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isTimeout(err) {
				break
			}
			return GoodputResult{}, fmt.Errorf("receive: %w", err)
		}
	}
	// Cut the connection at once: what the link still holds is dropped.
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	if warmAt.IsZero() || !last.After(warmAt) {
		return GoodputResult{}, fmt.Errorf("goodput %s -> %s: no data after the warm-up (%d bytes in %s)", from.Addr, to.Addr, total, dur)
	}
	w := last.Sub(warmAt)
	b := total - atWarm
	return GoodputResult{Bytes: b, Window: w, BitsPerS: float64(b) * 8 / w.Seconds()}, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
