package chat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/labctl/labctl/proto/internal/filestore"
	"github.com/labctl/labctl/proto/rudp"
)

// /get <name> [seed|sack]: the reliable UDP download (docs/PROTOCOLS.md
// section 5). The server answers "UDP <port> <size> <sha256>" and serves
// the file on that port; the client downloads it with a progress bar and
// prints the goodput. A last word "seed" or "sack" picks the algorithm (a
// file whose name ends in " sack" is fetched as "/get <name> sack").

// splitGetAlgo separates an optional trailing algorithm from the name.
func splitGetAlgo(rest string) (name, algo string) {
	if i := strings.LastIndexByte(rest, ' '); i > 0 {
		if a := rest[i+1:]; a == "seed" || a == "sack" {
			return strings.TrimSpace(rest[:i]), a
		}
	}
	return rest, ""
}

// getUDP answers a /get (the handler is the seam to proto/rudp).
func (s *Server) getUDP(ctx context.Context, m *member, rest string) {
	if s.cfg.Get == nil {
		s.reply(m, NotAvailableGet)
		return
	}
	name, algo := splitGetAlgo(rest)
	if err := filestore.ValidateName(name); err != nil {
		s.reply(m, "ERROR "+err.Error())
		return
	}
	f, size, err := s.store.Open(name)
	if err != nil {
		s.reply(m, "ERROR "+filestore.Reason(err))
		return
	}
	line, err := s.cfg.Get(ctx, GetRequest{Nick: m.nick, Name: name, File: f, Size: size, Remote: m.c.RemoteAddr(), Algo: algo})
	if err != nil {
		s.reply(m, "ERROR "+err.Error())
		return
	}
	s.reply(m, line)
}

// RUDPGet is the GetHandler serving /get with srv (ports from its pool).
func RUDPGet(srv *rudp.Server) GetHandler {
	return func(ctx context.Context, req GetRequest) (string, error) {
		var algo rudp.Algorithm
		if req.Algo != "" {
			a, err := rudp.ParseAlgorithm(req.Algo)
			if err != nil {
				req.File.Close()
				return "", err
			}
			algo = a
		}
		host := netip.Addr{}
		if ap, err := netip.ParseAddrPort(req.Remote.String()); err == nil {
			host = ap.Addr().Unmap()
		}
		line, err := srv.Start(ctx, req.File, req.Size, host, algo)
		if errors.Is(err, rudp.ErrPoolFull) {
			return "", errors.New("all UDP transfer ports are busy, try later")
		}
		return line, err
	}
}

// zeros feeds the progress bar (it counts bytes written to it).
var zeros [rudp.MaxPayload]byte

// UDPConfig tunes the client's side of /get.
type UDPConfig struct {
	UDPChecksum      bool          // keep the UDP checksum (default off: corruption reaches the CRC-32C)
	FakeLoss         float64       // experiments: drop this share of good DATA (seeded)
	FakeNACK         float64       // experiments: NACK this share of good DATA instead
	Seed             uint64        // for the fake fates
	IdleTimeout      time.Duration // server silent this long: fail (default 10s)
	HandshakeTimeout time.Duration // no SYN-ACK this long: fail (default 10s)
}

// Get sends "/get <rest>", waits for the UDP reply and downloads the file
// into DownloadDir, printing "saved ..." with the goodput, or an ERROR line.
func (c *Client) Get(ctx context.Context, rest string) error {
	name, _ := splitGetAlgo(rest)
	for try := 1; ; try++ {
		err := c.get(ctx, rest, name, try == getTries)
		if !errors.Is(err, rudp.ErrNoSYNACK) {
			return err
		}
		msg := fmt.Sprintf("no answer from the UDP port for %s (%v); asking again (%d of %d)", name, err, try+1, getTries)
		c.print(msg)
		c.record(msg)
	}
}

// getTries bounds the /get requests for one download whose handshake
// never heard the server: on a lossy, busy link a whole handshake can be
// lost, and a new /get (a new port, a new transfer) costs nothing.
const getTries = 3

// get is one /get; last: a handshake that hears nothing is reported as an
// ERROR line, not returned for another try.
func (c *Client) get(ctx context.Context, rest, name string, last bool) error {
	l, err := c.Command(ctx, "/get "+rest)
	if err != nil {
		return fmt.Errorf("/get %q: %w", name, err)
	}
	if strings.HasPrefix(l, "ERROR") {
		return &ServerError{Line: l}
	}
	host, _, err := net.SplitHostPort(c.raw.RemoteAddr().String())
	if err != nil {
		return fmt.Errorf("/get %q: %w", name, err)
	}
	u := c.cfg.UDP
	cfg := rudp.RecvConfig{FakeLoss: u.FakeLoss, FakeNACK: u.FakeNACK, Seed: u.Seed,
		IdleTimeout: u.IdleTimeout, HandshakeTimeout: u.HandshakeTimeout}
	if c.cfg.Progress != nil {
		if _, size, _, err := rudp.SplitReply(l); err == nil {
			b := c.cfg.Progress("get "+name, size)
			defer b.Close()
			cfg.Progress = func(n int64) { _, _ = b.Write(zeros[:min(n, int64(len(zeros)))]) }
		}
	}
	res, err := rudp.Fetch(ctx, host, l, c.cfg.DownloadDir, name, !u.UDPChecksum, cfg)
	if errors.Is(err, rudp.ErrNoSYNACK) && !last {
		return err
	}
	if err != nil {
		msg := "ERROR get: " + err.Error()
		c.print(msg)
		c.record(msg)
		return nil
	}
	msg := fmt.Sprintf("saved %s over UDP (%d bytes, sha256 %s, %s): %.2f Mbit/s in %.2fs",
		res.Path, res.Size, res.SHA256, res.Algorithm, res.Mbps(), res.Duration.Seconds())
	c.print(msg)
	c.record(msg)
	return nil
}
