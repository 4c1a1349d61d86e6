package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"
	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/internal/testnet"
	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/netem/measure"
	"github.com/labctl/labctl/topo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
)

// tapLab is a throwaway lab of one userspace link between namespaces a and
// b, with the probe addresses on it, permanent neighbour entries and IPv6
// off (so the only packets on the link are the test's: see determinism).
type tapLab struct {
	l    netem.Link
	a, b measure.Point
	be   *userspace
	dir  string
}

func newTapLab(t testing.TB) *tapLab {
	t.Helper()
	l := testnet.Link(t, "u", netem.Spec{}, netem.Spec{})
	dir := t.TempDir()
	be := NewBackend(Options{Lab: l.Lab, Dir: dir, Links: 1}).(*userspace)
	testnet.Create(t, be, &l)
	require.Equal(t, netem.ViaTAP, l.Via)
	a, b, undo, err := measure.AttachProbeAddrs(l)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, undo()) })
	// AttachProbeAddrs also adds permanent neighbour entries both ways.
	return &tapLab{l: l, a: a, b: b, be: be, dir: dir}
}

// start runs an engine for the lab in this process until the test ends
// (or stop is called) and waits until it answers.
func (tl *tapLab) start(t testing.TB, seed int64) (stop func()) {
	t.Helper()
	e, err := New(Config{Lab: tl.l.Lab, Seed: seed, Links: []netem.Link{tl.l}, Socket: Socket(tl.dir)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("engine did not stop within 10s")
		}
	}
	t.Cleanup(stop)
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	require.NoError(t, waitSocket(wctx, Socket(tl.dir)))
	return stop
}

func (tl *tapLab) set(t testing.TB, d netem.Dir, s netem.Spec) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, tl.be.Set(ctx, tl.l, d, s))
	a, b, err := tl.be.Show(ctx, tl.l)
	require.NoError(t, err)
	if d == netem.AtoB {
		require.Equal(t, s, a)
	} else {
		require.Equal(t, s, b)
	}
}

// udpFlow is a sender in a and a receiver in b.
type udpFlow struct {
	tx, rx *net.UDPConn
	dst    netip.AddrPort
}

func (tl *tapLab) udp(t *testing.T) *udpFlow {
	t.Helper()
	tx, err := measure.ListenUDP(tl.a, false)
	require.NoError(t, err)
	rx, err := measure.ListenUDP(tl.b, false)
	require.NoError(t, err)
	t.Cleanup(func() { tx.Close(); rx.Close() })
	return &udpFlow{tx: tx, rx: rx, dst: rx.LocalAddr().(*net.UDPAddr).AddrPort()}
}

// datagram is 64 bytes: the sequence number, then a pattern from it.
func datagram(seq uint32) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b, seq)
	for i := 4; i < len(b); i++ {
		b[i] = byte(seq) + byte(i)
	}
	return b
}

func (f *udpFlow) send(t *testing.T, from, to uint32) {
	t.Helper()
	for s := from; s < to; s++ {
		_, err := f.tx.WriteToUDPAddrPort(datagram(s), f.dst)
		require.NoError(t, err)
	}
}

// recv reads datagrams until quiet for idle (or until want arrived), bounded.
func (f *udpFlow) recv(t *testing.T, want int, idle time.Duration) [][]byte {
	t.Helper()
	var got [][]byte
	buf := make([]byte, 2048)
	end := time.Now().Add(20 * time.Second)
	for len(got) < want && time.Now().Before(end) {
		_ = f.rx.SetReadDeadline(time.Now().Add(idle))
		n, err := f.rx.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			require.NoError(t, err)
		}
		got = append(got, append([]byte(nil), buf[:n]...))
	}
	return got
}

func seqs(ds [][]byte) []uint32 {
	var s []uint32
	for _, d := range ds {
		s = append(s, binary.BigEndian.Uint32(d))
	}
	return s
}

func TestUserspaceCreateAndTeardown(t *testing.T) {
	tl := newTapLab(t)
	for _, e := range []netem.End{tl.l.A, tl.l.B} {
		require.NoError(t, netem.WithHandle(e.NS, func(h *netlink.Handle) error {
			lk, err := h.LinkByName(e.Iface)
			require.NoError(t, err)
			assert.Equal(t, "tuntap", lk.Type())
			assert.Equal(t, tl.l.Tag, lk.Attrs().Alias)
			assert.NotZero(t, lk.Attrs().Flags&net.FlagUp)
			return nil
		}))
	}
	stop := tl.start(t, 1)
	f := tl.udp(t)
	f.send(t, 0, 5)
	assert.Equal(t, []uint32{0, 1, 2, 3, 4}, seqs(f.recv(t, 5, time.Second)))

	stop()
	_, err := os.Stat(Socket(tl.dir))
	assert.True(t, errors.Is(err, os.ErrNotExist), "the socket goes with the engine")
	require.NoError(t, DeleteTAPLink(tl.l))
	for _, e := range []netem.End{tl.l.A, tl.l.B} {
		require.NoError(t, netem.WithHandle(e.NS, func(h *netlink.Handle) error {
			_, err := h.LinkByName(e.Iface)
			assert.Error(t, err, "tap %s is gone", e.Iface)
			return nil
		}))
	}
	require.NoError(t, DeleteTAPLink(tl.l), "deleting twice is fine")
}

// TestUserspaceFidelity: delay 25 ms each way (RTT 50 ms), 10% loss A->B,
// 10% duplicates B->A, over 2300 probes (about 2070 echoes).
func TestUserspaceFidelity(t *testing.T) {
	tl := newTapLab(t)
	tl.start(t, 7)
	d25 := topo.Duration(25 * time.Millisecond)
	tl.set(t, netem.AtoB, netem.Spec{Delay: d25, Loss: 10})
	tl.set(t, netem.BtoA, netem.Spec{Delay: d25, Duplicate: 10})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := measure.Probe(ctx, tl.a, tl.b, measure.ProbeOptions{Count: 2300, Interval: time.Millisecond, Drain: 200 * time.Millisecond})
	require.NoError(t, err)
	t.Logf("a->b %+v\nb->a %+v\nrtt %+v", r.AtoB, r.BtoA, r.RTT)
	assert.InDelta(t, 50*time.Millisecond, r.RTT.Median, float64(2*time.Millisecond), "median RTT")
	assert.InDelta(t, 25*time.Millisecond, r.AtoB.OneWay.Median, float64(time.Millisecond), "one-way a->b")
	assert.InDelta(t, 25*time.Millisecond, r.BtoA.OneWay.Median, float64(time.Millisecond), "one-way b->a")
	assert.InDelta(t, 0.10, r.AtoB.Loss(), 0.02, "loss a->b")
	assert.GreaterOrEqual(t, r.BtoA.Sent, 2000)
	assert.InDelta(t, 0.10, r.BtoA.DupRate(), 0.02, "duplicates b->a")
	assert.Zero(t, r.BtoA.Sent-r.BtoA.Received, "b->a loses nothing")
}

func TestUserspaceRate(t *testing.T) {
	tl := newTapLab(t)
	tl.start(t, 1)
	s := netem.Spec{Rate: 10_000_000}
	tl.set(t, netem.AtoB, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := measure.Goodput(ctx, tl.a, tl.b, 3*time.Second)
	require.NoError(t, err)
	want := measure.PredictGoodput(s, 1500)
	t.Logf("goodput %.2f Mbit/s, predicted %.2f", g.BitsPerS/1e6, want/1e6)
	assert.InEpsilon(t, want, g.BitsPerS, 0.10)
}

// TestUserspaceDeterminism: the same seed drops the same datagrams, twice;
// another seed drops others.
func TestUserspaceDeterminism(t *testing.T) {
	tl := newTapLab(t)
	f := tl.udp(t)
	const n = 600
	run := func(seed int64) []uint32 {
		stop := tl.start(t, seed)
		defer stop()
		tl.set(t, netem.AtoB, netem.Spec{Loss: 20})
		var dropped []uint32
		for chunk := uint32(0); chunk < n; chunk += 100 { // stay within socket buffers
			f.send(t, chunk, chunk+100)
			got := seqs(f.recv(t, 100, 150*time.Millisecond))
			for s := chunk; s < chunk+100; s++ {
				if !slices.Contains(got, s) {
					dropped = append(dropped, s)
				}
			}
		}
		return dropped
	}
	first, second, other := run(42), run(42), run(43)
	t.Logf("seed 42 dropped %d of %d: %v", len(first), n, first[:min(10, len(first))])
	assert.InDelta(t, 0.2*n, len(first), 0.06*n)
	assert.Equal(t, first, second, "same seed, same dropped datagrams")
	assert.NotEqual(t, first, other, "another seed, other datagrams")
}

// TestUserspaceScriptedFaults: a UDP application sees exactly the scripted
// faults, then a link down and up.
func TestUserspaceScriptedFaults(t *testing.T) {
	tl := newTapLab(t)
	tl.start(t, 1)
	f := tl.udp(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	port := f.dst.Port()
	m := netem.FaultMatch{Proto: "udp", Port: port, From: "a"}
	require.NoError(t, tl.be.AddFaults(ctx, tl.l, []netem.Fault{
		{Action: netem.FaultDrop, Nth: 3, Match: m},
		{Action: netem.FaultDuplicate, Nth: 5, Match: m},
		{Action: netem.FaultDelay, Nth: 6, Match: m, Delay: topo.Duration(150 * time.Millisecond)},
		{Action: netem.FaultCorrupt, Nth: 8, Match: m, Byte: 10},
	}))
	// A fault from the wrong node or port is refused or never fires.
	require.Error(t, tl.be.AddFaults(ctx, tl.l, []netem.Fault{{Action: netem.FaultDrop, Nth: 1, Match: netem.FaultMatch{From: "nobody"}}}))
	require.NoError(t, tl.be.AddFaults(ctx, tl.l, []netem.Fault{{Action: netem.FaultDrop, Nth: 1, Match: netem.FaultMatch{Proto: "udp", From: "b"}}}))

	f.send(t, 1, 11) // datagrams 1..10
	got := f.recv(t, 10, 500*time.Millisecond)
	assert.Equal(t, []uint32{1, 2, 4, 5, 5, 7, 8, 9, 10, 6}, seqs(got), "3 dropped, 5 twice, 6 late")
	for _, d := range got {
		s := binary.BigEndian.Uint32(d)
		want := datagram(s)
		if s == 8 {
			want[10] ^= 0xff
		}
		assert.Equal(t, want, d, "datagram %d", s)
	}
	pending, fired, err := tl.be.ListFaults(ctx, tl.l)
	require.NoError(t, err)
	assert.Len(t, fired, 4)
	assert.Len(t, pending, 1, "the fault on b's packets waits")

	// Down: nothing passes; up: traffic flows again.
	require.NoError(t, tl.be.LinkDown(ctx, tl.l, 0))
	f.send(t, 100, 103)
	assert.Empty(t, f.recv(t, 3, 300*time.Millisecond))
	require.NoError(t, tl.be.LinkUp(ctx, tl.l))
	f.send(t, 200, 203)
	assert.Equal(t, []uint32{200, 201, 202}, seqs(f.recv(t, 3, time.Second)))

	// A timed down comes back up by itself.
	require.NoError(t, tl.be.LinkDown(ctx, tl.l, 200*time.Millisecond))
	f.send(t, 300, 301)
	assert.Empty(t, f.recv(t, 1, 100*time.Millisecond))
	deadline := time.Now().Add(3 * time.Second)
	var back []uint32
	for len(back) == 0 && time.Now().Before(deadline) {
		f.send(t, 400, 401)
		back = seqs(f.recv(t, 1, 50*time.Millisecond))
	}
	assert.Equal(t, []uint32{400}, back)

	st, err := tl.stats(ctx)
	require.NoError(t, err)
	require.Len(t, st, 1)
	assert.Equal(t, uint64(1), st[0].AtoB.Lost)
	assert.Equal(t, uint64(1), st[0].AtoB.Duplicated)
	assert.Equal(t, uint64(1), st[0].AtoB.Corrupted)
	assert.GreaterOrEqual(t, st[0].AtoB.DownDrops, uint64(4))
}

// TestUserspaceCorruptFixChecksum: with the checksum fixed, corrupted UDP
// datagrams (with a checksum) reach the application, one bit off.
func TestUserspaceCorruptFixChecksum(t *testing.T) {
	tl := newTapLab(t)
	tl.start(t, 1)
	f := tl.udp(t)
	tl.set(t, netem.AtoB, netem.Spec{Corrupt: 100, CorruptFixChecksum: true})
	f.send(t, 0, 20)
	got := f.recv(t, 20, 500*time.Millisecond)
	require.Len(t, got, 20)
	for _, d := range got {
		// The flipped bit may hit the sequence number: compare with the
		// nearest datagram by bit distance.
		best := 1 << 30
		for s := uint32(0); s < 20; s++ {
			best = min(best, bitDiff(d, datagram(s)))
		}
		assert.Equal(t, 1, best, "exactly one bit flipped")
	}
	// Without the fix, the receiving kernel drops (almost) all of them.
	tl.set(t, netem.AtoB, netem.Spec{Corrupt: 100})
	f.send(t, 0, 20)
	assert.Less(t, len(f.recv(t, 20, 300*time.Millisecond)), 10)
}

func bitDiff(a, b []byte) int {
	if len(a) != len(b) {
		return 1 << 20
	}
	n := 0
	for i := range a {
		for x := a[i] ^ b[i]; x != 0; x &= x - 1 {
			n++
		}
	}
	return n
}

// signalWriter reports its first write (the pcapng header: the capture is on).
type signalWriter struct {
	w     io.Writer
	first chan struct{}
	once  bool
}

func (s *signalWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if !s.once {
		s.once = true
		close(s.first)
	}
	return n, err
}

func TestUserspaceCapture(t *testing.T) {
	tl := newTapLab(t)
	tl.start(t, 1)
	f := tl.udp(t)
	tl.set(t, netem.AtoB, netem.Spec{Loss: 100})
	path := filepath.Join(t.TempDir(), "cap.pcapng")
	file, err := os.Create(path)
	require.NoError(t, err)
	defer file.Close()
	sw := &signalWriter{w: file, first: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tl.be.Capture(ctx, tl.l, "sent", sw) }()
	select {
	case <-sw.first:
	case <-time.After(5 * time.Second):
		t.Fatal("capture did not start")
	}
	f.send(t, 0, 5) // all lost, all captured at "sent"
	assert.Empty(t, f.recv(t, 5, 200*time.Millisecond))
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, file.Close())

	if _, err := exec.LookPath("tshark"); err == nil {
		out, err := exec.Command("tshark", "-r", path, "-T", "fields", "-e", "frame.interface_id", "-e", "udp.dstport", "-Y", "udp").Output()
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		require.Len(t, lines, 5, "tshark: %s", out)
		for _, ln := range lines {
			assert.Equal(t, "0\t"+strconv.Itoa(int(f.dst.Port())), ln)
		}
		return
	}
	rf, err := os.Open(path)
	require.NoError(t, err)
	defer rf.Close()
	r, err := pcapgo.NewNgReader(rf, pcapgo.DefaultNgReaderOptions)
	require.NoError(t, err)
	n := 0
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		if bytes.Contains(data, datagram(0)[4:]) || ci.InterfaceIndex == 0 {
			n++
		}
	}
	assert.Equal(t, 5, n)
}

// TestUserspaceTCPIntegrityUnderLoss: TCP super-frames are split so that
// each wire packet meets its own fate; the byte stream arrives intact.
func TestUserspaceTCPIntegrityUnderLoss(t *testing.T) {
	tl := newTapLab(t)
	tl.start(t, 3)
	tl.set(t, netem.AtoB, netem.Spec{Loss: 1, Duplicate: 1})
	var ln net.Listener
	require.NoError(t, nsdo.DoNamed(tl.b.NS, func() error {
		var err error
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(tl.b.Addr, 0).String())
		return err
	}))
	defer ln.Close()
	const size = 64 << 20
	sum := make(chan [32]byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sum <- [32]byte{}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		h := sha256.New()
		_, _ = io.Copy(h, c)
		sum <- [32]byte(h.Sum(nil))
	}()
	var c net.Conn
	require.NoError(t, nsdo.DoNamed(tl.a.NS, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
		return err
	}))
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	h := sha256.New()
	data := make([]byte, 1<<20)
	start := time.Now()
	for i := 0; i < size/len(data); i++ {
		_, _ = rand.Read(data)
		h.Write(data)
		_, err := c.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, c.Close())
	assert.Equal(t, [32]byte(h.Sum(nil)), <-sum, "the stream arrives intact")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := tl.stats(ctx)
	require.NoError(t, err)
	t.Logf("%d MiB in %v with 1%% loss and 1%% duplicates: %+v", size>>20, time.Since(start), st[0].AtoB)
	assert.Greater(t, st[0].AtoB.Packets, st[0].AtoB.Frames, "super-frames were counted as their packets")
	assert.InDelta(t, 0.01, float64(st[0].AtoB.Lost)/float64(st[0].AtoB.Packets), 0.005)
}

// stats reads every served link's counters from the engine.
func (tl *tapLab) stats(ctx context.Context) ([]LinkStats, error) {
	r, err := tl.be.call(ctx, ctlRequest{Op: "stats"})
	return r.Stats, err
}

// TestUserspaceCounters: the engine's counters through netem.Counter:
// every datagram offered is delivered or dropped, drops split by cause,
// bytes are whole frames.
func TestUserspaceCounters(t *testing.T) {
	tl := newTapLab(t)
	tl.start(t, 7)
	tl.set(t, netem.AtoB, netem.Spec{Loss: 20})
	f := tl.udp(t)
	for chunk := uint32(0); chunk < 500; chunk += 100 {
		f.send(t, chunk, chunk+100)
		f.recv(t, 100, 150*time.Millisecond)
	}
	var c netem.Counter = tl.be
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ab, ba, err := c.Counters(ctx, tl.l)
	require.NoError(t, err)
	t.Logf("a->b %+v, b->a %+v", ab, ba)
	assert.True(t, ab.Split)
	assert.GreaterOrEqual(t, ab.Packets, uint64(500))
	assert.Equal(t, ab.Packets, ab.Delivered+ab.Dropped+uint64(ab.Queued))
	assert.Equal(t, ab.Lost, ab.Dropped, "the only cause is loss")
	assert.InDelta(t, 100, float64(ab.Lost), 40)
	assert.GreaterOrEqual(t, ab.Bytes, ab.Packets*(14+20+8+64), "whole frames: Ethernet, IP, UDP, payload")
	assert.Zero(t, ba.Dropped)

	plain := netem.Link{ID: "x", Via: netem.ViaVeth}
	_, _, err = c.Counters(ctx, plain)
	assert.ErrorIs(t, err, netem.ErrUnsupported, "a plain veth link has no engine counters")
}

// TestUserspaceRunnerStartsAndStops: the backend starts its engine from
// what it wrote in the lab's folder (here the launched "process" is a
// goroutine running Serve, as `labctl engine` does) and stops it through
// the control socket.
func TestUserspaceRunnerStartsAndStops(t *testing.T) {
	tl := newTapLab(t)
	served := make(chan error, 1)
	var running atomic.Bool
	u := NewBackend(Options{Lab: tl.l.Lab, Dir: tl.dir, Seed: 3, Links: 1, Launch: func() (func() bool, error) {
		running.Store(true)
		go func() {
			served <- Serve(context.Background(), tl.dir, nil)
			running.Store(false)
		}()
		return running.Load, nil
	}})
	r, ok := u.(netem.Runner)
	require.True(t, ok, "the userspace backend runs its engine")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, r.Start(ctx, []netem.Link{tl.l}))
	require.NoError(t, u.Set(ctx, tl.l, netem.AtoB, netem.Spec{Loss: 1}), "the engine serves the link")
	require.NoError(t, r.Stop(ctx))
	select {
	case err := <-served:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("the engine did not stop")
	}
	_, err := os.Stat(Socket(tl.dir))
	assert.ErrorIs(t, err, os.ErrNotExist, "no socket is left")
	require.NoError(t, r.Stop(ctx), "stopping a stopped engine is fine")
	assert.ErrorIs(t, u.Set(ctx, tl.l, netem.AtoB, netem.Spec{}), ErrEngineDown)
}

// TestUserspaceQueueLimitDropsPastIt: a burst into a slow link is held up
// to the shared queue limit (64 packets at 1 Mbit/s without delay) and the
// rest is dropped and counted as queue drops.
func TestUserspaceQueueLimitDropsPastIt(t *testing.T) {
	tl := newTapLab(t)
	tl.start(t, 1)
	s := netem.Spec{Rate: 1_000_000}
	require.Equal(t, 64, netem.QueueLimit(s))
	tl.set(t, netem.AtoB, s)
	f := tl.udp(t)
	f.send(t, 0, 150) // 150 datagrams in well under a millisecond; one takes 0.85 ms
	got := f.recv(t, 150, 500*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ab, _, err := tl.be.Counters(ctx, tl.l)
	require.NoError(t, err)
	t.Logf("received %d; %+v", len(got), ab)
	assert.InDelta(t, 150-64, float64(ab.QueueDrops), 8, "the queue holds 64, a few more leave meanwhile")
	assert.Equal(t, uint64(len(got)), ab.Delivered)
}
