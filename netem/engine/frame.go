package engine

import (
	"encoding/binary"
)

// Frames as the engine sees them: a 10-byte virtio_net_hdr, then an
// Ethernet frame. With offloads on, one frame may be a TCP super-frame (GSO)
// that the receiving kernel treats as many wire packets, and checksums may
// be left "partial" (NEEDS_CSUM): the pseudo-header sum sits in the
// checksum field and the rest is summed by whoever finishes it.

const vnetHdrLen = 10

const (
	vnetNeedsCsum = 1
	vnetDataValid = 2

	gsoNone  = 0
	gsoTCPv4 = 1
	gsoTCPv6 = 4
	gsoECN   = 0x80
)

type vnetHdr struct {
	flags, gsoType                         uint8
	hdrLen, gsoSize, csumStart, csumOffset uint16
}

func parseVnet(b []byte) vnetHdr {
	return vnetHdr{
		flags: b[0], gsoType: b[1],
		hdrLen:     binary.LittleEndian.Uint16(b[2:]),
		gsoSize:    binary.LittleEndian.Uint16(b[4:]),
		csumStart:  binary.LittleEndian.Uint16(b[6:]),
		csumOffset: binary.LittleEndian.Uint16(b[8:]),
	}
}

func (h vnetHdr) put(b []byte) {
	b[0], b[1] = h.flags, h.gsoType
	binary.LittleEndian.PutUint16(b[2:], h.hdrLen)
	binary.LittleEndian.PutUint16(b[4:], h.gsoSize)
	binary.LittleEndian.PutUint16(b[6:], h.csumStart)
	binary.LittleEndian.PutUint16(b[8:], h.csumOffset)
}

// pktInfo is what the engine reads from a frame's headers.
type pktInfo struct {
	nh      int // offset of the IP header, 0 if not IP
	v6      bool
	proto   uint8 // 6 tcp, 17 udp, 1/58 icmp
	th      int   // offset of the L4 header, 0 if unknown
	payload int   // offset of the L4 payload, 0 if unknown
	end     int   // end of the IP packet (Ethernet padding excluded)
	sport   uint16
	dport   uint16
}

// parsePkt reads Ethernet (with one optional VLAN tag), IPv4 or IPv6 (no
// extension headers), and TCP or UDP headers. Anything it does not know is
// left zero.
func parsePkt(p []byte) pktInfo {
	var pi pktInfo
	if len(p) < 14 {
		return pi
	}
	et, nh := binary.BigEndian.Uint16(p[12:]), 14
	if (et == 0x8100 || et == 0x88a8) && len(p) >= 18 {
		et, nh = binary.BigEndian.Uint16(p[16:]), 18
	}
	switch et {
	case 0x0800:
		if len(p) < nh+20 || p[nh]>>4 != 4 {
			return pi
		}
		ihl := int(p[nh]&0x0f) * 4
		tot := int(binary.BigEndian.Uint16(p[nh+2:]))
		if ihl < 20 || nh+ihl > len(p) {
			return pi
		}
		pi.nh, pi.proto, pi.th = nh, p[nh+9], nh+ihl
		pi.end = min(nh+tot, len(p))
		if tot == 0 { // TSO frames may leave it 0
			pi.end = len(p)
		}
	case 0x86dd:
		if len(p) < nh+40 || p[nh]>>4 != 6 {
			return pi
		}
		pi.nh, pi.v6, pi.proto, pi.th = nh, true, p[nh+6], nh+40
		pi.end = min(nh+40+int(binary.BigEndian.Uint16(p[nh+4:])), len(p))
	default:
		return pi
	}
	switch pi.proto {
	case 6:
		if pi.th+20 <= pi.end {
			pi.sport, pi.dport = binary.BigEndian.Uint16(p[pi.th:]), binary.BigEndian.Uint16(p[pi.th+2:])
			pi.payload = min(pi.th+int(p[pi.th+12]>>4)*4, pi.end)
		}
	case 17:
		if pi.th+8 <= pi.end {
			pi.sport, pi.dport = binary.BigEndian.Uint16(p[pi.th:]), binary.BigEndian.Uint16(p[pi.th+2:])
			pi.payload = pi.th + 8
		}
	}
	return pi
}

// isGSO reports whether the frame is a TCP super-frame the engine can split.
func (h vnetHdr) isGSO() bool {
	t := h.gsoType &^ gsoECN
	return (t == gsoTCPv4 || t == gsoTCPv6) && h.gsoSize > 0
}

// segments returns how many wire packets a frame stands for: for a TCP
// super-frame, ceil(payload/gso_size); otherwise 1.
func segments(h vnetHdr, p []byte) (n, hdrs int) {
	if !h.isGSO() {
		return 1, 0
	}
	th := int(h.csumStart)
	if th+20 > len(p) {
		return 1, 0
	}
	hdrs = th + int(p[th+12]>>4)*4
	pay := len(p) - hdrs
	if hdrs > len(p) || pay <= 0 {
		return 1, 0
	}
	mss := int(h.gsoSize)
	return (pay + mss - 1) / mss, hdrs
}

// buildRun writes into dst (vnet header included) the wire packets
// [first,last) of a super-frame of n packets as one frame: a smaller
// super-frame, or a plain packet when last-first == 1. It fixes what the
// kernel's own segmentation fixes: IP length, IPv4 id and header checksum,
// TCP sequence number, the CWR/FIN/PSH flags, and the pseudo-header sum
// that a partial checksum expects.
func buildRun(dst []byte, h vnetHdr, p []byte, hdrs, first, last, n int) []byte {
	mss := int(h.gsoSize)
	start, end := hdrs+first*mss, min(hdrs+last*mss, len(p))
	size := vnetHdrLen + hdrs + end - start
	out := dst[:size]
	q := out[vnetHdrLen:]
	copy(q, p[:hdrs])
	copy(q[hdrs:], p[start:end])

	pi := parsePkt(q)
	th := int(h.csumStart)
	if pi.nh > 0 {
		if pi.v6 {
			binary.BigEndian.PutUint16(q[pi.nh+4:], uint16(len(q)-pi.nh-40))
		} else {
			binary.BigEndian.PutUint16(q[pi.nh+2:], uint16(len(q)-pi.nh))
			id := binary.BigEndian.Uint16(q[pi.nh+4:])
			binary.BigEndian.PutUint16(q[pi.nh+4:], id+uint16(first))
			ipv4HeaderChecksum(q[pi.nh:])
		}
		seq := binary.BigEndian.Uint32(q[th+4:])
		binary.BigEndian.PutUint32(q[th+4:], seq+uint32(first*mss))
		if first > 0 {
			q[th+13] &^= 0x80 // CWR only on the first
		}
		if last < n {
			q[th+13] &^= 0x09 // FIN, PSH only on the last
		}
		binary.BigEndian.PutUint16(q[th+16:], pseudoSum(q, pi, len(q)-th))
	}
	nh := h
	nh.hdrLen = uint16(hdrs)
	if last-first == 1 {
		nh.gsoType, nh.gsoSize = gsoNone, 0
	}
	nh.put(out)
	return out
}

// pseudoSum is the folded (not inverted) sum of the L4 pseudo-header: what
// a partial checksum holds before the rest is added.
func pseudoSum(q []byte, pi pktInfo, l4len int) uint16 {
	var s uint32
	if pi.v6 {
		s = sum16(q[pi.nh+8:pi.nh+40], 0)
	} else {
		s = sum16(q[pi.nh+12:pi.nh+20], 0)
	}
	s += uint32(pi.proto) + uint32(l4len)
	return fold(s)
}

func sum16(b []byte, s uint32) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

func ipv4HeaderChecksum(ip []byte) {
	ihl := int(ip[0]&0x0f) * 4
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum16(ip[:ihl], 0)))
}

// finishChecksum completes a partial checksum as the kernel would
// (skb_checksum_help) and clears NEEDS_CSUM and DATA_VALID, so the
// receiving kernel verifies the packet. frame includes the vnet header.
func finishChecksum(frame []byte) {
	h := parseVnet(frame)
	q := frame[vnetHdrLen:]
	if h.flags&vnetNeedsCsum != 0 {
		s, off := int(h.csumStart), int(h.csumStart)+int(h.csumOffset)
		if off+2 <= len(q) && s < len(q) {
			c := ^fold(sum16(q[s:], 0))
			if c == 0 {
				c = 0xffff
			}
			binary.BigEndian.PutUint16(q[off:], c)
		}
	}
	h.flags = 0
	h.put(frame)
}

// fixChecksums recomputes the IPv4 header checksum and the TCP or UDP
// checksum of a finished (not partial) packet. A UDP/IPv4 checksum of zero
// (sent with SO_NO_CHECK) stays zero.
func fixChecksums(q []byte) {
	pi := parsePkt(q)
	if pi.nh == 0 {
		return
	}
	if !pi.v6 {
		ipv4HeaderChecksum(q[pi.nh:])
	}
	var off int
	switch {
	case pi.proto == 6 && pi.th+20 <= pi.end:
		off = pi.th + 16
	case pi.proto == 17 && pi.th+8 <= pi.end:
		off = pi.th + 6
		if !pi.v6 && q[off] == 0 && q[off+1] == 0 {
			return
		}
	default:
		return
	}
	l4 := q[pi.th:pi.end]
	q[off], q[off+1] = 0, 0
	c := ^fold(sum16(l4, uint32(pseudoSum(q, pi, len(l4)))))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(q[off:], c)
}
