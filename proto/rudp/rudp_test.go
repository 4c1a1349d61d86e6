package rudp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPacketRoundTrip(t *testing.T) {
	ps := []Packet{
		{Kind: KindSYN, TID: 7, Window: 8192},
		{Kind: KindSYNACK, TID: 7, Size: 1 << 40, Algo: AlgoSACK, SegSize: 1436, Window: 4096},
		{Kind: KindACK, TID: 7},
		{Kind: KindDATA, TID: 7, ID: 3, Tx: 9, TS: 12345, Offset: 3 * 1436, Payload: []byte("hello")},
		{Kind: KindSACK, TID: 7, Cum: 3, ID: 9, Tx: 11, TS: 99, Received: 10, Ranges: []Range{{5, 7}, {9, 10}}},
		{Kind: KindNACK, TID: 7, ID: 4},
		{Kind: KindACKAll, TID: 7, Size: 5, SHA: [32]byte{1, 2, 3}},
		{Kind: KindRST, TID: 7, Reason: "server stopping"},
	}
	for _, p := range ps {
		b := p.Append(nil)
		q, err := Parse(b)
		require.NoError(t, err, p.Kind)
		if len(p.Payload) == 0 {
			q.Payload = nil
		}
		assert.Equal(t, p, q)
		for i := range b { // any single flipped bit is caught
			c := bytes.Clone(b)
			c[i] ^= 0x01
			_, err := Parse(c)
			assert.Error(t, err, "%v byte %d", p.Kind, i)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	ok := (&Packet{Kind: KindNACK, TID: 1, ID: 2}).Append(nil)
	cases := map[string]struct {
		b   []byte
		err error
	}{
		"short":   {ok[:5], ErrShort},
		"magic":   {append([]byte{'X'}, ok[1:]...), ErrMagic},
		"version": {append([]byte{'R', 'U', 9}, ok[3:]...), ErrVersion},
		"kind":    {append([]byte{'R', 'U', 1, 99}, ok[4:]...), ErrKind},
		"length":  {append(bytes.Clone(ok), 0), ErrLength},
	}
	for name, c := range cases {
		_, err := Parse(c.b)
		assert.ErrorIs(t, err, c.err, name)
	}
}

func TestWindowRanges(t *testing.T) {
	w := newWindow(256)
	for _, id := range []uint32{0, 1, 3, 4, 5, 70, 71, 200} {
		isNew, in := w.add(id)
		require.True(t, isNew && in, id)
	}
	assert.Equal(t, uint32(2), w.cum)
	assert.Equal(t, []Range{{3, 6}, {70, 72}, {200, 201}}, w.ranges(nil))
	_, in := w.add(2 + 256)
	assert.False(t, in, "beyond the window")
	isNew, _ := w.add(1)
	assert.False(t, isNew, "below cum")
	w.add(2)
	assert.Equal(t, uint32(6), w.cum)
}

func TestTransferClean(t *testing.T) {
	for _, algo := range []Algorithm{AlgoSACK, AlgoSeed} {
		for _, size := range []int{0, 1, 1435, 1436, 1437, 100_000, 3 << 20} {
			t.Run(fmt.Sprintf("%v/%d", algo, size), func(t *testing.T) {
				_, data, sum := randomFile(t, size, uint64(size))
				out, dir := transfer(t, data, sum, SendConfig{Algorithm: algo}, RecvConfig{}, plain, plain)
				require.NoError(t, out.rerr)
				require.NoError(t, out.serr)
				got, err := os.ReadFile(filepath.Join(dir, "got.bin"))
				require.NoError(t, err)
				assert.Equal(t, data, got)
				assert.Equal(t, sum, out.res.SHA256)
				assert.Equal(t, algo, out.res.Algorithm)
				onlyFinal(t, dir)
			})
		}
	}
}

// onlyFinal checks no temp file is left in dir.
func onlyFinal(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range ents {
		assert.Equal(t, "got.bin", e.Name())
	}
}

func TestTransferImpaired(t *testing.T) {
	for _, algo := range []Algorithm{AlgoSACK, AlgoSeed} {
		for i, size := range []int{0, 7, 200_000, 1 << 20} {
			t.Run(fmt.Sprintf("%v/%d", algo, size), func(t *testing.T) {
				_, data, sum := randomFile(t, size, uint64(i+10))
				seed := uint64(i + 1)
				// Small segments for seed, so the 30% loss does not make
				// every fragment-free 8 KB datagram as rare as on a real link.
				out, dir := transfer(t, data, sum, SendConfig{Algorithm: algo, IdleTimeout: 20 * time.Second}, RecvConfig{IdleTimeout: 20 * time.Second},
					func(pc net.PacketConn) net.PacketConn { return newLossy(pc, seed, 0.3, 0.05, 0.05, 0.1) },
					func(pc net.PacketConn) net.PacketConn { return newLossy(pc, seed+100, 0.3, 0.05, 0.05, 0.1) })
				require.NoError(t, out.rerr)
				require.NoError(t, out.serr)
				got, err := os.ReadFile(filepath.Join(dir, "got.bin"))
				require.NoError(t, err)
				assert.Equal(t, data, got)
				if size >= 1<<20 {
					assert.Positive(t, out.res.Drops.BadChecksum.Load(), "corruption reached the CRC")
					assert.Positive(t, out.res.NACKs)
					assert.Positive(t, out.stats.Retransmits)
				}
			})
		}
	}
}

func TestFakeLossAndNACK(t *testing.T) {
	_, data, sum := randomFile(t, 500_000, 3)
	out, _ := transfer(t, data, sum, SendConfig{}, RecvConfig{FakeLoss: 0.2, FakeNACK: 0.1, Seed: 42}, plain, plain)
	require.NoError(t, out.rerr)
	assert.Positive(t, out.res.FakeDrops)
	assert.Positive(t, out.stats.NACKs)
	// The same seed makes the same fates.
	out2, _ := transfer(t, data, sum, SendConfig{}, RecvConfig{FakeLoss: 0.2, FakeNACK: 0.1, Seed: 42}, plain, plain)
	require.NoError(t, out2.rerr)
}

func TestMismatchLeavesNothing(t *testing.T) {
	_, data, _ := randomFile(t, 50_000, 4)
	_, _, other := randomFile(t, 10, 5)
	out, dir := transfer(t, data, other, SendConfig{}, RecvConfig{}, plain, plain)
	require.ErrorIs(t, out.rerr, ErrMismatch)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, ents, "neither the final name nor a temp file")
}

func TestHandshakeTimeouts(t *testing.T) {
	// A client with no server: a clear error in bounded time.
	cpc, dead := listenLoop(t), listenLoop(t)
	dead.Close()
	start := time.Now()
	_, err := Download(context.Background(), cpc, dead.LocalAddr(), t.TempDir(), "x", 10, fmt.Sprintf("%064x", 0), RecvConfig{HandshakeTimeout: 500 * time.Millisecond})
	require.ErrorContains(t, err, "no SYN-ACK")
	assert.Less(t, time.Since(start), 3*time.Second)

	// A server whose client never comes.
	spc := listenLoop(t)
	_, err = Send(context.Background(), spc, netip.Addr{}, bytes.NewReader(nil), 0, SendConfig{HandshakeTimeout: 300 * time.Millisecond})
	require.ErrorContains(t, err, "no SYN")
}

// A server that vanishes mid-transfer: the client fails within its idle
// timeout and leaves no file; a client that vanishes: the server gives up.
func TestPeerVanishes(t *testing.T) {
	_, data, sum := randomFile(t, 5<<20, 6)
	ctx, cancel := context.WithCancel(context.Background())
	spc, cpc := listenLoop(t), listenLoop(t)
	dir := t.TempDir()
	var got int64
	go func() {
		_, _ = Send(ctx, spc, netip.Addr{}, bytes.NewReader(data), int64(len(data)), SendConfig{MaxRate: 1 << 20})
	}()
	errc := make(chan error, 1)
	go func() {
		_, err := Download(context.Background(), cpc, spc.LocalAddr(), dir, "got.bin", int64(len(data)), sum,
			RecvConfig{IdleTimeout: time.Second, Progress: func(n int64) {
				if got += n; got > 1<<20 {
					spc.Close() // the server dies without a word
				}
			}})
		errc <- err
	}()
	select {
	case err := <-errc:
		require.ErrorContains(t, err, "silent")
	case <-time.After(15 * time.Second):
		t.Fatal("client did not give up")
	}
	cancel()
	ents, _ := os.ReadDir(dir)
	assert.Empty(t, ents)

	// The client vanishes: the sender stops within its idle timeout.
	spc2, cpc2 := listenLoop(t), listenLoop(t)
	serr := make(chan error, 1)
	go func() {
		_, err := Send(context.Background(), spc2, netip.Addr{}, bytes.NewReader(data), int64(len(data)), SendConfig{MaxRate: 1 << 20, IdleTimeout: time.Second})
		serr <- err
	}()
	var n int64
	go func() {
		_, _ = Download(context.Background(), cpc2, spc2.LocalAddr(), t.TempDir(), "got.bin", int64(len(data)), sum,
			RecvConfig{Progress: func(k int64) {
				if n += k; n > 1<<20 {
					cpc2.Close()
				}
			}})
	}()
	select {
	case err := <-serr:
		require.ErrorContains(t, err, "silent")
	case <-time.After(15 * time.Second):
		t.Fatal("server did not give up")
	}
}

// Garbage and spoofed datagrams at a live transfer change nothing.
func TestGarbageAndSpoofs(t *testing.T) {
	_, data, sum := randomFile(t, 2<<20, 7)
	ctx := context.Background()
	spc, cpc, evil := listenLoop(t), listenLoop(t), listenLoop(t)
	stop := make(chan struct{})
	defer close(stop)
	flood := func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			junk := []byte(fmt.Sprintf("garbage %d", i))
			_, _ = evil.WriteTo(junk, spc.LocalAddr())
			_, _ = evil.WriteTo(junk, cpc.LocalAddr())
			fake := (&Packet{Kind: KindDATA, TID: uint32(i), ID: 0, Payload: []byte("evil")}).Append(nil)
			_, _ = evil.WriteTo(fake, cpc.LocalAddr())
			rst := (&Packet{Kind: KindRST, TID: uint32(i), Reason: "spoof"}).Append(nil)
			_, _ = evil.WriteTo(rst, spc.LocalAddr())
			time.Sleep(200 * time.Microsecond)
		}
	}
	go flood()
	var st SendStats
	done := make(chan error, 1)
	go func() {
		var err error
		st, err = Send(ctx, spc, netip.MustParseAddr("127.0.0.1"), bytes.NewReader(data), int64(len(data)), SendConfig{})
		done <- err
	}()
	dir := t.TempDir()
	res, err := Download(ctx, cpc, spc.LocalAddr(), dir, "got.bin", int64(len(data)), sum, RecvConfig{})
	require.NoError(t, err)
	require.NoError(t, <-done)
	got, err := os.ReadFile(filepath.Join(dir, "got.bin"))
	require.NoError(t, err)
	assert.Equal(t, data, got)
	assert.Positive(t, res.Drops.WrongPeer.Load())
	assert.Positive(t, st.Drops.WrongPeer.Load())
}

func TestPoolFull(t *testing.T) {
	p, err := NewPool("127.0.0.1", 0+40000, 40001)
	require.NoError(t, err)
	var rels []func()
	for p.InUse() < 2 {
		_, rel, err := p.Acquire(context.Background())
		if err != nil { // a port taken by someone else on this machine
			t.Skip("ports 40000-40001 busy")
		}
		rels = append(rels, rel)
	}
	_, _, err = p.Acquire(context.Background())
	require.ErrorIs(t, err, ErrPoolFull)
	rels[0]()
	_, rel, err := p.Acquire(context.Background())
	require.NoError(t, err)
	rel()
	rels[1]()
	assert.Zero(t, p.InUse())
}

// A port given back is handed out again only after the others: a late SYN
// of the transfer that ended there must not meet a new transfer.
func TestPoolReusesTheLongestFreedPortLast(t *testing.T) {
	p, err := NewPool("127.0.0.1", 40010, 40012)
	require.NoError(t, err)
	port := func(pc net.PacketConn) int { return pc.LocalAddr().(*net.UDPAddr).Port }
	a, relA, err := p.Acquire(context.Background())
	if err != nil {
		t.Skip("ports 40010-40012 busy")
	}
	first := port(a)
	relA()
	b, relB, err := p.Acquire(context.Background())
	require.NoError(t, err)
	assert.NotEqual(t, first, port(b), "the port just given back was handed out again at once")
	relB()
}

func TestParsePortRange(t *testing.T) {
	lo, hi, err := ParsePortRange("55001-55015")
	require.NoError(t, err)
	assert.Equal(t, [2]int{55001, 55015}, [2]int{lo, hi})
	for _, bad := range []string{"", "x", "5-1", "0-3", "1-70000"} {
		_, _, err := ParsePortRange(bad)
		assert.Error(t, err, bad)
	}
}
