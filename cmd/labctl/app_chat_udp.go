package main

import (
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/proto/chat"
	"github.com/labctl/labctl/proto/rudp"
)

// udpServerFlags are chat-server's flags for /get (docs/PROTOCOLS.md section 5).
type udpServerFlags struct {
	ports, algo  string
	segment      int
	checksum     bool
	idle, hsTime time.Duration
	maxRateMbit  float64
}

func (u *udpServerFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&u.ports, "udp-ports", "55001-55015", "UDP port pool for /get (one transfer per port; a full pool answers ERROR)")
	f.StringVar(&u.algo, "udp-algorithm", "sack", "sender algorithm for /get: sack or seed (a client may ask with /get NAME seed|sack)")
	f.IntVar(&u.segment, "udp-segment", rudp.DefaultSegment, "sack: DATA payload bytes (the default fills a 1500-byte packet)")
	f.BoolVar(&u.checksum, "udp-checksum", false, "keep the UDP checksum (default off, so corruption reaches the protocol's CRC-32C and earns a NACK)")
	f.DurationVar(&u.idle, "udp-idle-timeout", 10*time.Second, "a /get client silent this long is given up and its port freed")
	f.DurationVar(&u.hsTime, "udp-handshake-timeout", 10*time.Second, "time for the client's SYN and handshake ACK")
	f.Float64Var(&u.maxRateMbit, "udp-max-rate", 0, "sack: cap on the pacing rate in Mbit/s (0: none)")
}

func (u *udpServerFlags) server(host string, log *slog.Logger) (*rudp.Server, error) {
	lo, hi, err := rudp.ParsePortRange(u.ports)
	if err != nil {
		return nil, err
	}
	algo, err := rudp.ParseAlgorithm(u.algo)
	if err != nil {
		return nil, err
	}
	pool, err := rudp.NewPool(host, lo, hi)
	if err != nil {
		return nil, err
	}
	return rudp.NewServer(pool, rudp.SendConfig{Algorithm: algo, Segment: u.segment, IdleTimeout: u.idle,
		HandshakeTimeout: u.hsTime, MaxRate: u.maxRateMbit * 1e6 / 8, Logger: log}, !u.checksum), nil
}

func registerUDPClientFlags(cmd *cobra.Command, u *chat.UDPConfig) {
	f := cmd.Flags()
	f.BoolVar(&u.UDPChecksum, "udp-checksum", false, "keep the UDP checksum on /get's ACKs (default off)")
	f.Float64Var(&u.FakeLoss, "udp-fake-loss", 0, "experiments: drop this fraction (0-1) of good /get segments, seeded")
	f.Float64Var(&u.FakeNACK, "udp-fake-nack", 0, "experiments: NACK this fraction (0-1) of good /get segments instead")
	f.Uint64Var(&u.Seed, "udp-seed", 1, "seed for the fake loss and NACKs")
	f.DurationVar(&u.IdleTimeout, "udp-idle-timeout", 10*time.Second, "a /get whose server is silent this long fails")
	f.DurationVar(&u.HandshakeTimeout, "udp-handshake-timeout", 10*time.Second, "time to get the SYN-ACK")
}
