package rudp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lossy impairs what is written through it: loss, duplication, corruption
// (one byte flipped) and reordering (a datagram held back a few ms).
type lossy struct {
	net.PacketConn
	loss, dup, corrupt, reorder float64
	mu                          sync.Mutex
	rng                         *rand.Rand
	written                     int64
}

func newLossy(pc net.PacketConn, seed uint64, loss, dup, corrupt, reorder float64) *lossy {
	return &lossy{PacketConn: pc, loss: loss, dup: dup, corrupt: corrupt, reorder: reorder, rng: rand.New(rand.NewPCG(seed, 1))}
}

func (l *lossy) WriteTo(b []byte, addr net.Addr) (int, error) {
	l.mu.Lock()
	l.written++
	drop := l.rng.Float64() < l.loss
	dup := l.rng.Float64() < l.dup
	bad := l.rng.Float64() < l.corrupt
	late := l.rng.Float64() < l.reorder
	pos := l.rng.IntN(len(b))
	l.mu.Unlock()
	if drop {
		return len(b), nil
	}
	c := bytes.Clone(b)
	if bad {
		c[pos] ^= 0x10
	}
	send := func() { _, _ = l.PacketConn.WriteTo(c, addr) }
	if late {
		time.AfterFunc(3*time.Millisecond, send)
	} else {
		send()
	}
	if dup {
		send()
	}
	return len(b), nil
}

func listenLoop(t *testing.T) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { pc.Close() })
	return pc
}

func randomFile(t *testing.T, size int, seed uint64) (string, []byte, string) {
	t.Helper()
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	p := filepath.Join(t.TempDir(), "src.bin")
	require.NoError(t, os.WriteFile(p, b, 0o644))
	s := sha256.Sum256(b)
	return p, b, hex.EncodeToString(s[:])
}

type pair struct {
	stats SendStats
	serr  error
	res   Result
	rerr  error
}

// transfer runs Send and Download on loopback sockets wrapped by wrapS
// (server side) and wrapC (client side).
func transfer(t *testing.T, data []byte, sum string, scfg SendConfig, rcfg RecvConfig, wrapS, wrapC func(net.PacketConn) net.PacketConn) (pair, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	spc, cpc := listenLoop(t), listenLoop(t)
	dir := t.TempDir()
	var out pair
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		out.stats, out.serr = Send(ctx, wrapS(spc), netip.MustParseAddr("127.0.0.1"), bytes.NewReader(data), int64(len(data)), scfg)
	}()
	out.res, out.rerr = Download(ctx, wrapC(cpc), spc.LocalAddr(), dir, "got.bin", int64(len(data)), sum, rcfg)
	wg.Wait()
	return out, dir
}

func plain(pc net.PacketConn) net.PacketConn { return pc }
