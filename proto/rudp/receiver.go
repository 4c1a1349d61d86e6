package rudp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/labctl/labctl/proto/internal/filestore"
)

// RecvConfig tunes the receiving side; zero fields take the defaults.
type RecvConfig struct {
	Window           int           // segment ids held beyond the cumulative point (default DefaultWindow)
	HandshakeTimeout time.Duration // to get the SYN-ACK (default 10s)
	IdleTimeout      time.Duration // no valid datagram from the server this long: fail (default 10s)
	// Fake loss and NACKs for experiments (the seed client's): each good
	// DATA is dropped with probability FakeLoss, or else answered by a NACK
	// and dropped with probability FakeNACK; drawn from Seed.
	FakeLoss, FakeNACK float64
	Seed               uint64
	Progress           func(n int64) // bytes newly held
	// Linger is how long the receiver keeps answering after its ACK-ALL
	// once the sender has gone quiet (default 1s; at least 3 RTT), so a
	// sender that missed every ACK-ALL still hears one.
	Linger time.Duration
	Logger *slog.Logger
}

func (c *RecvConfig) setDefaults() {
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Linger <= 0 {
		c.Linger = time.Second
	}
}

// Result is a finished download.
type Result struct {
	Path      string
	Size      int64
	SHA256    string
	Algorithm Algorithm
	Duration  time.Duration // SYN to the verified file
	Received  int64         // good DATA datagrams, duplicates included
	NACKs     int64
	FakeDrops int64
	Drops     *Drops
}

// Mbps is the goodput in Mbit/s.
func (r Result) Mbps() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Size) * 8 / r.Duration.Seconds() / 1e6
}

// ErrMismatch is a download whose bytes do not hash to the announced SHA-256.
var ErrMismatch = errors.New("sha256 mismatch")

// window is the receiver's set of held ids: a bitmap over [cum, cum+n).
type window struct {
	cum  uint32
	n    uint32
	bits []uint64
	top  uint32 // one past the highest held id
}

func newWindow(n int) *window {
	n = (n + 63) &^ 63
	return &window{n: uint32(n), bits: make([]uint64, n/64)}
}

func (w *window) has(id uint32) bool {
	i := id % w.n
	return w.bits[i/64]&(1<<(i%64)) != 0
}

// add marks id; it reports whether it was new, and false, false when id is
// beyond the window.
func (w *window) add(id uint32) (isNew, inWindow bool) {
	if id < w.cum {
		return false, true
	}
	if id-w.cum >= w.n {
		return false, false
	}
	if w.has(id) {
		return false, true
	}
	i := id % w.n
	w.bits[i/64] |= 1 << (i % 64)
	w.top = max(w.top, id+1)
	for w.has(w.cum) && w.cum < w.top {
		j := w.cum % w.n
		w.bits[j/64] &^= 1 << (j % 64)
		w.cum++
	}
	return true, true
}

// ranges lists the held ids above cum, lowest first, at most MaxRanges.
func (w *window) ranges(out []Range) []Range {
	out = out[:0]
	id := w.cum + 1
	for id < w.top && len(out) < MaxRanges {
		for id < w.top && !w.has(id) { // skip a hole, a word at a time when aligned
			if i := id % w.n; i%64 == 0 && w.bits[i/64] == 0 && id+64 <= w.top {
				id += 64
				continue
			}
			id++
		}
		if id >= w.top {
			break
		}
		start := id
		for id < w.top && w.has(id) {
			if i := id % w.n; i%64 == 0 && w.bits[i/64] == ^uint64(0) && id+64 <= w.top {
				id += 64
				continue
			}
			id++
		}
		out = append(out, Range{start, id})
	}
	return out
}

type receiver struct {
	pc     net.PacketConn
	server net.Addr
	cfg    RecvConfig
	tid    uint32
	size   int64
	f      *os.File
	win    *window
	held   int64
	drops  *Drops
	res    Result
	rng    *mrand.Rand
	buf    []byte
	rngBuf []Range
	srtt   time.Duration
	start  time.Time
	readAt time.Time // when the last datagram was read
}

// Download fetches name (size bytes, SHA-256 sum as hex) from the transfer
// port at server over pc, into dir. The bytes go to a hidden temp file that
// is renamed to name only once the SHA-256 matches; on any failure nothing
// stays under the final name. pc is not closed.
func Download(ctx context.Context, pc net.PacketConn, server net.Addr, dir, name string, size int64, sum string, cfg RecvConfig) (Result, error) {
	cfg.setDefaults()
	if err := filestore.ValidateName(name); err != nil {
		return Result{}, fmt.Errorf("download %q: %w", name, err)
	}
	want, err := hex.DecodeString(sum)
	if err != nil || len(want) != sha256.Size {
		return Result{}, fmt.Errorf("download %q: bad sha256 %q", name, sum)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, fmt.Errorf("download %q: %w", name, err)
	}
	f, err := os.CreateTemp(dir, ".rudp-*.part")
	if err != nil {
		return Result{}, fmt.Errorf("download %q: %w", name, err)
	}
	keep := false
	defer func() {
		f.Close()
		if !keep {
			os.Remove(f.Name())
		}
	}()
	var tidb [4]byte
	for binary.BigEndian.Uint32(tidb[:]) == 0 {
		_, _ = rand.Read(tidb[:])
	}
	r := &receiver{pc: pc, server: server, cfg: cfg, tid: binary.BigEndian.Uint32(tidb[:]), size: size,
		f: f, win: newWindow(cfg.Window), drops: &Drops{}, buf: make([]byte, 65536),
		rng: mrand.New(mrand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	r.res = Result{Size: size, Drops: r.drops}
	r.start = time.Now()
	defer func() { _ = pc.SetReadDeadline(time.Time{}) }()
	start := time.Now()
	if err := r.handshake(ctx); err != nil {
		return r.res, fmt.Errorf("download %q: %w", name, err)
	}
	if err := r.receive(ctx); err != nil {
		r.sendRST(err.Error())
		return r.res, fmt.Errorf("download %q: %w", name, err)
	}
	got, err := r.hash()
	if err != nil {
		return r.res, fmt.Errorf("download %q: %w", name, err)
	}
	r.res.Duration, r.res.SHA256 = time.Since(start), hex.EncodeToString(got[:])
	r.ackAll(got)
	if hex.EncodeToString(want) != r.res.SHA256 {
		return r.res, fmt.Errorf("download %q: %w: got %s, want %s", name, ErrMismatch, r.res.SHA256, sum)
	}
	if err := f.Chmod(0o644); err != nil {
		return r.res, fmt.Errorf("download %q: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return r.res, fmt.Errorf("download %q: %w", name, err)
	}
	final := filepath.Join(dir, name)
	if err := os.Rename(f.Name(), final); err != nil {
		return r.res, fmt.Errorf("download %q: %w", name, err)
	}
	keep = true
	r.res.Path = final
	r.linger(ctx, got)
	return r.res, nil
}

func (r *receiver) send(p *Packet) {
	p.TID = r.tid
	b := p.Append(make([]byte, 0, 64+8*MaxRanges))
	_, _ = r.pc.WriteTo(b, r.server)
}

func (r *receiver) sendRST(reason string) {
	r.send(&Packet{Kind: KindRST, Reason: reason})
}

// next reads the next valid datagram from the server before deadline;
// everything else is dropped and counted. A bad-checksum DATA whose header
// names our transfer is returned with ErrChecksum, to be NACKed.
func (r *receiver) next(ctx context.Context, deadline time.Time) (Packet, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Packet{}, err
		}
		// Wake at least every 200ms to notice ctx.
		_ = r.pc.SetReadDeadline(minTime(deadline, time.Now().Add(200*time.Millisecond)))
		n, addr, err := r.pc.ReadFrom(r.buf)
		r.readAt = time.Now()
		if err != nil {
			if isTimeout(err) {
				if !time.Now().Before(deadline) {
					return Packet{}, err
				}
				continue
			}
			return Packet{}, err
		}
		if addr.String() != r.server.String() {
			r.drops.WrongPeer.Add(1)
			continue
		}
		p, err := Parse(r.buf[:n])
		switch {
		case errors.Is(err, ErrChecksum) && p.Kind == KindDATA && p.TID == r.tid:
			r.drops.BadChecksum.Add(1)
			return p, err
		case err != nil:
			r.drops.count(err)
		case p.TID != r.tid:
			r.drops.WrongTID.Add(1)
		default:
			return p, nil
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// ErrNoSYNACK is a handshake that heard nothing from the server: the
// transfer never started, so a new /get may be tried at once.
var ErrNoSYNACK = errors.New("no SYN-ACK")

// handshakeRetryMax caps the time between two SYNs (and SYN-ACKs).
const handshakeRetryMax = 300 * time.Millisecond

func (r *receiver) handshake(ctx context.Context) error {
	deadline := time.Now().Add(r.cfg.HandshakeTimeout)
	backoff := 200 * time.Millisecond
	for time.Now().Before(deadline) {
		sent := time.Now()
		r.send(&Packet{Kind: KindSYN, Window: uint32(r.win.n)})
		p, err := r.next(ctx, minTime(deadline, sent.Add(backoff)))
		// Little backoff: a SYN is one small datagram, and a lab may lose
		// 30 % of each of two links each way, so that only one SYN and
		// SYN-ACK round in five gets through; 10 s must give it ~35 tries.
		backoff = min(backoff*3/2, handshakeRetryMax)
		if err != nil {
			if isTimeout(err) {
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("handshake: %w", err)
		}
		switch p.Kind {
		case KindSYNACK:
			if int64(p.Size) != r.size {
				r.sendRST("size mismatch")
				return fmt.Errorf("handshake: server announced %d bytes, the chat said %d", p.Size, r.size)
			}
			r.srtt = time.Since(sent)
			r.res.Algorithm = p.Algo
			r.send(&Packet{Kind: KindACK})
			return nil
		case KindRST:
			return fmt.Errorf("handshake: server refused: %q", p.Reason)
		default:
			r.drops.Unexpected.Add(1)
		}
	}
	return fmt.Errorf("handshake: %w from %s within %v", ErrNoSYNACK, r.server, r.cfg.HandshakeTimeout)
}

func (r *receiver) complete() bool { return r.held == r.size }

func (r *receiver) receive(ctx context.Context) error {
	for !r.complete() {
		p, err := r.next(ctx, time.Now().Add(r.cfg.IdleTimeout))
		if errors.Is(err, ErrChecksum) {
			r.res.NACKs++
			r.send(&Packet{Kind: KindNACK, ID: p.ID})
			continue
		}
		if err != nil {
			if isTimeout(err) {
				return fmt.Errorf("server %s silent for %v (%d of %d bytes received)", r.server, r.cfg.IdleTimeout, r.held, r.size)
			}
			return err
		}
		switch p.Kind {
		case KindSYNACK: // our ACK was lost
			r.send(&Packet{Kind: KindACK})
		case KindDATA:
			if err := r.data(&p); err != nil {
				return err
			}
		case KindRST:
			return fmt.Errorf("server aborted: %q (%d of %d bytes received)", p.Reason, r.held, r.size)
		default:
			r.drops.Unexpected.Add(1)
		}
	}
	return nil
}

func (r *receiver) data(p *Packet) error {
	end := p.Offset + uint64(len(p.Payload))
	if end > uint64(r.size) || end < p.Offset {
		r.drops.Unexpected.Add(1)
		return nil
	}
	if r.cfg.FakeLoss > 0 || r.cfg.FakeNACK > 0 {
		x := r.rng.Float64()
		if x < r.cfg.FakeLoss {
			r.res.FakeDrops++
			return nil
		}
		if x < r.cfg.FakeLoss+r.cfg.FakeNACK {
			r.res.FakeDrops++
			r.res.NACKs++
			r.send(&Packet{Kind: KindNACK, ID: p.ID})
			return nil
		}
	}
	isNew, in := r.win.add(p.ID)
	if !in {
		r.drops.Overflow.Add(1)
		return nil
	}
	r.res.Received++
	if isNew {
		if _, err := r.f.WriteAt(p.Payload, int64(p.Offset)); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		r.held += int64(len(p.Payload))
		if r.cfg.Progress != nil {
			r.cfg.Progress(int64(len(p.Payload)))
		}
	}
	if r.complete() {
		return nil // the ACK-ALL answers it
	}
	r.rngBuf = r.win.ranges(r.rngBuf)
	r.send(&Packet{Kind: KindSACK, Cum: r.win.cum, ID: p.ID, Tx: p.Tx, TS: p.TS,
		Received: uint32(r.res.Received), RecvTS: uint64(r.readAt.Sub(r.start)), Ranges: r.rngBuf})
	return nil
}

func (r *receiver) hash() ([32]byte, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r.f, 0, r.size)); err != nil {
		return [32]byte{}, fmt.Errorf("hash: %w", err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s, nil
}

func (r *receiver) ackAll(sum [32]byte) {
	r.send(&Packet{Kind: KindACKAll, Size: uint64(r.size), SHA: sum})
}

// ackAllCopies is how many ACK-ALLs go out at once (all lost: 0.3^3 at 30% loss).
const ackAllCopies = 3

// linger answers a sender that missed the ACK-ALLs, until it has been
// quiet for max(Linger, 3 RTT) (at most 3 Linger in all).
func (r *receiver) linger(ctx context.Context, sum [32]byte) {
	for range ackAllCopies - 1 {
		r.ackAll(sum)
	}
	quiet := max(r.cfg.Linger, 3*r.srtt)
	end := time.Now().Add(3 * quiet)
	for time.Now().Before(end) {
		p, err := r.next(ctx, minTime(end, time.Now().Add(quiet)))
		if err != nil && !errors.Is(err, ErrChecksum) {
			return
		}
		if err == nil && p.Kind == KindRST {
			return
		}
		r.ackAll(sum)
	}
}

// SplitReply parses the chat's "UDP <port> <size> <sha256>" reply.
func SplitReply(line string) (port int, size int64, sum string, err error) {
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "UDP" {
		return 0, 0, "", fmt.Errorf("bad reply %q (want UDP <port> <size> <sha256>)", line)
	}
	if _, err := fmt.Sscanf(f[1]+" "+f[2], "%d %d", &port, &size); err != nil || port < 1 || port > 65535 || size < 0 {
		return 0, 0, "", fmt.Errorf("bad reply %q (want UDP <port> <size> <sha256>)", line)
	}
	if b, err := hex.DecodeString(f[3]); err != nil || len(b) != sha256.Size {
		return 0, 0, "", fmt.Errorf("bad reply %q: sha256 is not 64 hex digits", line)
	}
	return port, size, f[3], nil
}
