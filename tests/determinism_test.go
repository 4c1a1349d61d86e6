package tests

import (
	"encoding/binary"
	"hash/crc32"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// fates are what one run of traffic met: the sequence numbers dropped,
// duplicated and corrupted.
type fates struct{ dropped, duplicated, corrupted []int }

// TestSeededFatesRepeatAcrossUps: the same seeded lab, brought up twice
// (new namespaces, new MACs, its own ARP), gives 500 pings and a
// 2000-datagram UDP stream through a router the same drop, duplicate and
// corruption sets: fates are drawn per flow, so ARP and the kernel's choice
// of echo id and ephemeral port change nothing.
func TestSeededFatesRepeatAcrossUps(t *testing.T) {
	f := writeLab(t, "seeded.yaml", `
backend: userspace
seed: 42
hosts: [a, b]
routers: [r]
links:
  - endpoints: [a, r]
    netem: {loss: 20%, duplicate: 5%, corrupt: 5%, corrupt_fix_checksum: true}
  - endpoints: [r, b]
`)
	run := func() (ping, udp fates) {
		lab, _ := up(t, "seeded", "-f", f, "--test", "none")
		st := inspect(t, lab)
		b := st.addr("b")
		require.NotEmpty(t, b)
		ping = pings(t, "lab-"+lab+"-a", b, 500)
		udp = datagrams(t, "lab-"+lab+"-a", "lab-"+lab+"-b", b, 2000)
		labctl(t, "down", lab)
		return ping, udp
	}
	ping1, udp1 := run()
	ping2, udp2 := run()
	t.Logf("ping: %d dropped, %d duplicated; udp: %d dropped, %d duplicated, %d corrupted",
		len(ping1.dropped), len(ping1.duplicated), len(udp1.dropped), len(udp1.duplicated), len(udp1.corrupted))
	// Round trips cross the lossy link twice: 1-(0.8*0.95)^2 ~ 42% lost
	// (a corrupted ping is dropped by the receiving kernel).
	assert.InDelta(t, 0.42*500, len(ping1.dropped), 0.1*500)
	assert.InDelta(t, 0.20*2000, len(udp1.dropped), 0.05*2000)
	assert.NotEmpty(t, udp1.duplicated)
	assert.NotEmpty(t, udp1.corrupted)
	assert.Equal(t, ping1, ping2, "pings: same seed, same fates")
	assert.Equal(t, udp1, udp2, "udp: same seed, same fates")
}

// pings sends count echo requests from namespace ns to addr, one every
// 2 ms, and says which got no reply, more than one, or a damaged one.
func pings(t *testing.T, ns, addr string, count int) fates {
	t.Helper()
	var c *icmp.PacketConn
	require.NoError(t, nsdo.DoNamed(ns, func() error {
		var err error
		c, err = icmp.ListenPacket("udp4", "0.0.0.0")
		return err
	}))
	defer c.Close()
	got := make([]int, count)
	bad := map[int]bool{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return // the deadline below ends the run
			}
			m, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			e, ok := m.Body.(*icmp.Echo)
			if !ok || e.Seq >= count {
				continue
			}
			got[e.Seq]++
			if !slices.Equal(e.Data, pingData(e.Seq)) {
				bad[e.Seq] = true
			}
		}
	}()
	dst := &net.UDPAddr{IP: net.ParseIP(addr)}
	tick := time.NewTicker(2 * time.Millisecond)
	for seq := range count {
		<-tick.C
		b, err := (&icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 1, Seq: seq, Data: pingData(seq)}}).Marshal(nil)
		require.NoError(t, err)
		_, err = c.WriteTo(b, dst)
		require.NoError(t, err)
	}
	tick.Stop()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second))) // generous: a loaded machine delays replies
	wg.Wait()
	return tally(got, bad)
}

func pingData(seq int) []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = byte(seq*7 + i)
	}
	return b
}

// datagrams sends count UDP datagrams from namespace from to addr:9000 in
// namespace to, one every 200 µs, and says which never arrived, arrived
// more than once, or arrived damaged (each carries its sequence number
// three times and a CRC, so a flipped bit is found and its datagram still
// named).
func datagrams(t *testing.T, from, to, addr string, count int) fates {
	t.Helper()
	var rx, tx net.PacketConn
	require.NoError(t, nsdo.DoNamed(to, func() error {
		var err error
		rx, err = net.ListenPacket("udp4", addr+":9000")
		return err
	}))
	defer rx.Close()
	require.NoError(t, rx.(*net.UDPConn).SetReadBuffer(4<<20))
	require.NoError(t, nsdo.DoNamed(from, func() error {
		var err error
		tx, err = net.ListenPacket("udp4", "0.0.0.0:0")
		return err
	}))
	defer tx.Close()
	got := make([]int, count)
	bad := map[int]bool{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, _, err := rx.ReadFrom(buf)
			if err != nil {
				return
			}
			if n != 64 {
				continue
			}
			seq, intact := decodeDatagram(buf[:n])
			if seq < 0 || seq >= count {
				continue
			}
			got[seq]++
			if !intact {
				bad[seq] = true
			}
		}
	}()
	dst, err := net.ResolveUDPAddr("udp4", addr+":9000")
	require.NoError(t, err)
	tick := time.NewTicker(200 * time.Microsecond)
	for seq := range count {
		<-tick.C
		_, err := tx.WriteTo(encodeDatagram(seq), dst)
		require.NoError(t, err)
	}
	tick.Stop()
	require.NoError(t, rx.SetReadDeadline(time.Now().Add(2*time.Second)))
	wg.Wait()
	return tally(got, bad)
}

func encodeDatagram(seq int) []byte {
	b := make([]byte, 64)
	for i := range 3 {
		binary.BigEndian.PutUint32(b[4*i:], uint32(seq))
	}
	for i := 12; i < 60; i++ {
		b[i] = byte(seq + i)
	}
	binary.BigEndian.PutUint32(b[60:], crc32.ChecksumIEEE(b[:60]))
	return b
}

// decodeDatagram reads the sequence number by majority of its three copies
// and checks the CRC.
func decodeDatagram(b []byte) (seq int, intact bool) {
	s := [3]uint32{binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint32(b[8:])}
	v := s[0]
	if s[1] == s[2] {
		v = s[1]
	}
	return int(v), crc32.ChecksumIEEE(b[:60]) == binary.BigEndian.Uint32(b[60:])
}

func tally(got []int, bad map[int]bool) fates {
	f := fates{dropped: []int{}, duplicated: []int{}, corrupted: []int{}}
	for seq, n := range got {
		switch {
		case n == 0:
			f.dropped = append(f.dropped, seq)
		case n > 1:
			f.duplicated = append(f.duplicated, seq)
		}
		if bad[seq] {
			f.corrupted = append(f.corrupted, seq)
		}
	}
	return f
}
