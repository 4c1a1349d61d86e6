package rudp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// SendConfig tunes the sending side; zero fields take the defaults.
type SendConfig struct {
	Algorithm        Algorithm     // default AlgoSACK
	Segment          int           // sack: DATA payload bytes (default DefaultSegment: 1500-byte IP packets)
	Window           int           // ids in flight beyond the cumulative ACK (default DefaultWindow)
	HandshakeTimeout time.Duration // for the SYN and the handshake's ACK (default 10s)
	IdleTimeout      time.Duration // no valid datagram from the client this long: give up (default 10s)
	MaxRate          float64       // sack: cap on the pacing rate, bytes/s (0: none)
	Logger           *slog.Logger
}

// Defaults.
const (
	// DefaultSegment fills a 1500-byte IPv4 packet: 1500 - 20 (IP) - 8 (UDP) - 36.
	DefaultSegment = 1500 - 20 - 8 - DataOverhead
	// DefaultWindow bounds both sides' per-transfer state: the receiver's
	// bitmap (1 KB) and the sender's scoreboard (about 100 KB of records).
	DefaultWindow = 8192
	// inboxLen bounds the parsed datagrams waiting for the sender's loop.
	inboxLen = 1024
)

func (c *SendConfig) setDefaults() {
	if c.Algorithm == 0 {
		c.Algorithm = AlgoSACK
	}
	if c.Segment <= 0 || c.Segment > MaxPayload {
		c.Segment = DefaultSegment
	}
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
}

// Drops counts datagrams that were refused, by reason. Safe for concurrent use.
type Drops struct {
	WrongPeer   atomic.Int64 // from another address or port
	WrongTID    atomic.Int64 // right peer, another transfer id
	Malformed   atomic.Int64 // bad magic, version, kind or length
	BadChecksum atomic.Int64 // CRC-32C mismatch
	Unexpected  atomic.Int64 // a valid kind at the wrong moment, or out of range
	Overflow    atomic.Int64 // the inbox was full (sender) or beyond the window (receiver)
}

// Total is every dropped datagram.
func (d *Drops) Total() int64 {
	return d.WrongPeer.Load() + d.WrongTID.Load() + d.Malformed.Load() + d.BadChecksum.Load() +
		d.Unexpected.Load() + d.Overflow.Load()
}

func (d *Drops) String() string {
	return fmt.Sprintf("wrong-peer=%d wrong-tid=%d malformed=%d bad-checksum=%d unexpected=%d overflow=%d",
		d.WrongPeer.Load(), d.WrongTID.Load(), d.Malformed.Load(), d.BadChecksum.Load(), d.Unexpected.Load(), d.Overflow.Load())
}

func (d *Drops) count(err error) {
	if errors.Is(err, ErrChecksum) {
		d.BadChecksum.Add(1)
	} else {
		d.Malformed.Add(1)
	}
}

// SendStats is what a transfer cost the sender.
type SendStats struct {
	Peer        net.Addr
	Algorithm   Algorithm
	Size        int64
	Sent        int64 // DATA datagrams sent, retransmissions included
	SentBytes   int64 // DATA payload bytes sent, retransmissions included
	Retransmits int64
	NACKs       int64
	Duration    time.Duration // from SYN to ACK-ALL
	MinRTT      time.Duration
	Drops       *Drops
}

// inbound is a parsed datagram for the loop.
type inbound struct {
	p  Packet
	at time.Time
}

// session is the sending side of one transfer.
type session struct {
	pc      net.PacketConn
	cfg     SendConfig
	src     io.ReaderAt
	size    int64
	peer    net.Addr
	tid     uint32
	drops   *Drops
	in      chan inbound
	start   time.Time
	buf     []byte
	payload []byte
	stats   SendStats
	fail    error // a local failure (reading the file) that ends the transfer

	srtt, rttvar, minRTT time.Duration
	lastHeard            time.Time
	done                 bool
	clientSHA            [32]byte
}

// Send serves one transfer of size bytes from src on pc: it waits for a
// SYN from host peer (any host if peer is invalid), then runs the handshake
// and the chosen algorithm until the client's ACK-ALL. Datagrams from other
// addresses, other transfer ids or that do not parse are dropped and counted.
// pc is not closed.
func Send(ctx context.Context, pc net.PacketConn, peer netip.Addr, src io.ReaderAt, size int64, cfg SendConfig) (SendStats, error) {
	cfg.setDefaults()
	s := &session{pc: pc, cfg: cfg, src: src, size: size, drops: &Drops{}, in: make(chan inbound, inboxLen)}
	s.stats = SendStats{Algorithm: cfg.Algorithm, Size: size, Drops: s.drops}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	locked := make(chan struct{}) // closed when the peer is known
	go s.read(ctx, peer, locked)
	defer func() { _ = pc.SetReadDeadline(time.Now()) }()

	err := s.handshake(ctx, locked)
	if err == nil {
		err = s.transfer(ctx)
	}
	s.stats.Duration, s.stats.MinRTT, s.stats.Peer = time.Since(s.start), s.minRTT, s.peer
	if err != nil && s.peer != nil && ctx.Err() != nil {
		s.send(&Packet{Kind: KindRST, Reason: "server stopping"})
	}
	return s.stats, err
}

// read parses datagrams into s.in. Before the SYN it accepts a SYN from
// peer's host only; after, only the locked address and transfer id.
func (s *session) read(ctx context.Context, peer netip.Addr, locked chan struct{}) {
	buf := make([]byte, 65536)
	var from net.Addr
	var tid uint32
	for ctx.Err() == nil {
		n, addr, err := s.pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) || isTimeout(err) {
				return
			}
			continue
		}
		p, err := Parse(buf[:n])
		if from == nil {
			if err != nil || p.Kind != KindSYN || p.TID == 0 || (peer.IsValid() && addrHost(addr) != peer.Unmap()) {
				s.countEarly(err, addr, peer)
				continue
			}
			from, tid = addr, p.TID
			s.peer, s.tid = addr, tid
			close(locked)
		}
		switch {
		case addr.String() != from.String():
			s.drops.WrongPeer.Add(1)
			continue
		case err != nil:
			s.drops.count(err)
			continue
		case p.TID != tid:
			s.drops.WrongTID.Add(1)
			continue
		}
		p.Ranges = append([]Range(nil), p.Ranges...)
		select {
		case s.in <- inbound{p: p, at: time.Now()}:
		default:
			s.drops.Overflow.Add(1)
		}
	}
}

func (s *session) countEarly(err error, addr net.Addr, peer netip.Addr) {
	switch {
	case peer.IsValid() && addrHost(addr) != peer.Unmap():
		s.drops.WrongPeer.Add(1)
	case err != nil:
		s.drops.count(err)
	default:
		s.drops.Unexpected.Add(1)
	}
}

func addrHost(a net.Addr) netip.Addr {
	if u, ok := a.(*net.UDPAddr); ok {
		ip, _ := netip.AddrFromSlice(u.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *session) now() uint64 { return uint64(time.Since(s.start)) }

func (s *session) send(p *Packet) {
	p.TID = s.tid
	s.buf = p.Append(s.buf[:0])
	_, _ = s.pc.WriteTo(s.buf, s.peer) // a failed send is a lost datagram
}

// rttSample feeds the estimators (RFC 6298 smoothing, plus the minimum).
func (s *session) rttSample(r time.Duration) {
	if r <= 0 {
		r = time.Microsecond
	}
	if s.minRTT == 0 || r < s.minRTT {
		s.minRTT = r
	}
	if s.srtt == 0 {
		s.srtt, s.rttvar = r, r/2
		return
	}
	d := s.srtt - r
	if d < 0 {
		d = -d
	}
	s.rttvar = (3*s.rttvar + d) / 4
	s.srtt = (7*s.srtt + r) / 8
}

// rto is how long a transmission may go unanswered before it is presumed lost.
func (s *session) rto() time.Duration {
	// Generous: overtaken transmissions are caught sooner by the RACK rule;
	// the RTO is for the tail, and firing early is wasted capacity.
	r := s.srtt + 4*s.rttvar
	return max(r, 2*s.srtt, s.minRTT+10*time.Millisecond, 20*time.Millisecond)
}

func (s *session) handshake(ctx context.Context, locked chan struct{}) error {
	t := time.NewTimer(s.cfg.HandshakeTimeout)
	defer t.Stop()
	select {
	case <-locked:
	case <-t.C:
		return fmt.Errorf("handshake: no SYN within %v", s.cfg.HandshakeTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	s.start = time.Now()
	deadline := s.start.Add(s.cfg.HandshakeTimeout)
	var window uint32
	synack := s.sendSYNACK
	sentAt, sends, first := time.Now(), 1, true
	synack()
	backoff := 200 * time.Millisecond
	for {
		wait := min(time.Until(deadline), backoff-time.Since(sentAt))
		if wait <= 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("handshake: no ACK from %s within %v", s.peer, s.cfg.HandshakeTimeout)
			}
			synack()
			sentAt, sends, backoff = time.Now(), sends+1, min(backoff*3/2, handshakeRetryMax)
			continue
		}
		t.Reset(wait)
		select {
		case m := <-s.in:
			switch m.p.Kind {
			case KindSYN:
				window = m.p.Window
				if first { // the SYN that locked the peer: already answered
					first = false
					continue
				}
				synack()
				sentAt, sends = time.Now(), sends+1
			case KindACK, KindSACK, KindACKAll:
				if sends == 1 {
					s.rttSample(m.at.Sub(sentAt))
				}
				if window == 0 {
					window = uint32(s.cfg.Window)
				}
				s.cfg.Window = int(min(window, uint32(s.cfg.Window)))
				s.lastHeard = m.at
				if m.p.Kind != KindACK {
					s.in <- m // there is room: it was just taken out
				}
				return nil
			case KindRST:
				return fmt.Errorf("client %s aborted: %q", s.peer, m.p.Reason)
			default:
				s.drops.Unexpected.Add(1)
			}
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *session) sendSYNACK() {
	s.send(&Packet{Kind: KindSYNACK, Size: uint64(s.size), Algo: s.cfg.Algorithm,
		SegSize: uint16(min(s.segMax(), 65535)), Window: uint32(s.cfg.Window)})
}

// segMax is the largest DATA payload this algorithm sends.
func (s *session) segMax() int {
	if s.cfg.Algorithm == AlgoSeed {
		return seedMaxKB * 1000
	}
	return s.cfg.Segment
}

// algorithm is a sender's policy; the session's loop drives it.
type algorithm interface {
	// onPacket takes one datagram from the client (DATA-phase kinds).
	onPacket(m inbound)
	// step sends what may be sent now and returns when to be called again.
	step(now time.Time) time.Time
}

func (s *session) transfer(ctx context.Context) error {
	var a algorithm
	if s.cfg.Algorithm == AlgoSeed {
		a = newSeedSender(s)
	} else {
		a = newSACKSender(s)
	}
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for !s.done {
		if s.fail != nil {
			s.send(&Packet{Kind: KindRST, Reason: "server cannot read the file"})
			return s.fail
		}
		now := time.Now()
		if now.Sub(s.lastHeard) > s.cfg.IdleTimeout {
			return fmt.Errorf("client %s silent for %v", s.peer, s.cfg.IdleTimeout)
		}
		wake := a.step(now)
		if d := s.lastHeard.Add(s.cfg.IdleTimeout); wake.After(d) {
			wake = d
		}
		t.Reset(time.Until(wake))
		select {
		case m := <-s.in:
			s.handle(a, m)
			for n := len(s.in); n > 0 && !s.done; n-- { // take what queued up, then send
				s.handle(a, <-s.in)
			}
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.clientSHA != [32]byte{} {
		s.cfg.Logger.Debug("client's sha256", "sha256", fmt.Sprintf("%x", s.clientSHA))
	}
	return nil
}

func (s *session) handle(a algorithm, m inbound) {
	s.lastHeard = m.at
	switch m.p.Kind {
	case KindACKAll:
		s.done, s.clientSHA = true, m.p.SHA
	case KindRST:
		s.cfg.Logger.Info("client aborted", "peer", s.peer, "reason", m.p.Reason)
		s.done = true
	case KindSYN, KindACK: // late handshake retransmissions: the client has moved on or will
		if m.p.Kind == KindSYN {
			s.sendSYNACK()
		}
	case KindNACK:
		s.stats.NACKs++
		a.onPacket(m)
	case KindSACK:
		a.onPacket(m)
	default:
		s.drops.Unexpected.Add(1)
	}
}

// sendData reads [off, off+n) and sends it as DATA id, transmission tx. A
// read failure ends the transfer (s.fail).
func (s *session) sendData(id uint32, off int64, n int, tx uint32) {
	if err := s.readAndSend(id, off, n, tx); err != nil && s.fail == nil {
		s.fail = err
	}
}

func (s *session) readAndSend(id uint32, off int64, n int, tx uint32) error {
	p := Packet{Kind: KindDATA, ID: id, Tx: tx, TS: s.now(), Offset: uint64(off)}
	if cap(s.payload) < n {
		s.payload = make([]byte, n)
	}
	buf := s.payload[:n]
	if k, err := s.src.ReadAt(buf, off); k < n {
		return fmt.Errorf("read file at %d: %w", off, err)
	}
	p.Payload = buf
	s.send(&p)
	s.stats.Sent++
	s.stats.SentBytes += int64(n)
	return nil
}
