package rudp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// Server runs transfers on ports from a Pool: the chat's /get hands it an
// open file and gets back the "UDP <port> <size> <sha256>" reply.
type Server struct {
	pool    *Pool
	cfg     SendConfig
	noCheck bool
	log     *slog.Logger
	wg      sync.WaitGroup
}

// NewServer serves transfers from pool with cfg; noUDPChecksum sends
// without the UDP checksum, so that corruption reaches the CRC-32C.
func NewServer(pool *Pool, cfg SendConfig, noUDPChecksum bool) *Server {
	cfg.setDefaults()
	return &Server{pool: pool, cfg: cfg, noCheck: noUDPChecksum, log: cfg.Logger}
}

// Start begins a transfer of f (size bytes) to the host peer with algo
// (0: the server's default) and returns the reply line. The transfer runs
// in the background and owns f (closed when it ends, or here on error).
// A full pool is an error wrapping ErrPoolFull.
func (s *Server) Start(ctx context.Context, f *os.File, size int64, peer netip.Addr, algo Algorithm) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		f.Close()
		return "", fmt.Errorf("hash %q: %w", f.Name(), err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	pc, release, err := s.pool.Acquire(ctx)
	if err != nil {
		f.Close()
		return "", err
	}
	if s.noCheck {
		if sc, ok := pc.(syscall.Conn); ok {
			if err := DisableUDPChecksum(sc); err != nil {
				s.log.Warn("udp checksum stays on", "err", err)
			}
		}
	}
	if u, ok := pc.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(4 << 20)
		_ = u.SetWriteBuffer(4 << 20)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	cfg := s.cfg
	if algo != 0 {
		cfg.Algorithm = algo
	}
	log := s.log.With("port", port, "file", f.Name(), "peer", peer)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer release()
		defer f.Close()
		st, err := Send(ctx, pc, peer, f, size, cfg)
		if err != nil {
			log.Info("udp transfer failed", "err", err, "sent", st.Sent, "drops", st.Drops.String())
			return
		}
		log.Info("udp transfer done", "algorithm", st.Algorithm, "bytes", size, "seconds", st.Duration.Seconds(),
			"sent", st.Sent, "retransmits", st.Retransmits, "nacks", st.NACKs, "drops", st.Drops.String())
	}()
	return "UDP " + strconv.Itoa(port) + " " + strconv.FormatInt(size, 10) + " " + sum, nil
}

// Wait returns when every transfer started has ended.
func (s *Server) Wait() { s.wg.Wait() }

// Fetch is the client side of a /get: it dials the transfer port on
// host (the chat server's address) and downloads into dir.
func Fetch(ctx context.Context, host string, reply, dir, name string, noUDPChecksum bool, cfg RecvConfig) (Result, error) {
	cfg.setDefaults()
	port, size, sum, err := SplitReply(reply)
	if err != nil {
		return Result{}, err
	}
	raddr, err := net.ResolveUDPAddr("udp4", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return Result{}, fmt.Errorf("download %q: %w", name, err)
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp4", ":0")
	if err != nil {
		return Result{}, fmt.Errorf("download %q: %w", name, err)
	}
	defer pc.Close()
	u := pc.(*net.UDPConn)
	_ = u.SetReadBuffer(4 << 20)
	if noUDPChecksum {
		if err := DisableUDPChecksum(u); err != nil {
			cfg.Logger.Warn("udp checksum stays on", "err", err)
		}
	}
	return Download(ctx, pc, raddr, dir, name, size, sum, cfg)
}
