package rudp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Version is the header version this package speaks (byte 2 of every datagram).
const Version = 1

// magic opens every datagram: "RU".
const magic0, magic1 = 'R', 'U'

// HeaderLen is the common header: magic, version, kind, transfer id, CRC-32C.
const HeaderLen = 12

// Kind is the message type (byte 3).
type Kind uint8

// The message kinds (docs/PROTOCOLS.md section 5).
const (
	KindSYN    Kind = 1 // client → server: open the transfer
	KindSYNACK Kind = 2 // server → client: file size, algorithm, segment size
	KindACK    Kind = 3 // client → server: the handshake's third message
	KindDATA   Kind = 4 // server → client: a segment of the file
	KindSACK   Kind = 5 // client → server: the data ACK (which ids it holds)
	KindNACK   Kind = 6 // client → server: a DATA arrived with a bad checksum
	KindACKAll Kind = 7 // client → server: every byte held, SHA-256 computed
	KindRST    Kind = 8 // either way: the transfer is aborted, with a reason
)

var kindNames = [...]string{"", "SYN", "SYN-ACK", "ACK", "DATA", "SACK", "NACK", "ACK-ALL", "RST"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Body lengths (after the common header).
const (
	synLen     = 4
	synackLen  = 16
	dataHdrLen = 24 // then the payload
	sackFixed  = 34 // then 8 bytes per range
	nackLen    = 4
	ackAllLen  = 40
	// MaxRanges bounds the SACK ranges one ACK carries (lowest first).
	MaxRanges = 24
	// MaxReason bounds an RST's reason text, in bytes.
	MaxReason = 200
	// MaxPayload is the largest DATA payload (the seed's 60 KB segments fit;
	// a UDP datagram carries at most 65507 bytes over IPv4).
	MaxPayload = 65507 - HeaderLen - dataHdrLen
	// DataOverhead is the header bytes of a DATA datagram.
	DataOverhead = HeaderLen + dataHdrLen
)

// Algorithm is the sender's algorithm, announced in SYN-ACK.
type Algorithm uint8

// The sender algorithms.
const (
	AlgoSeed Algorithm = 1 // the seed's: KB segments adapted by ACK/NACK
	AlgoSACK Algorithm = 2 // MTU segments, SACK ranges, paced at the delivery rate
)

func (a Algorithm) String() string {
	switch a {
	case AlgoSeed:
		return "seed"
	case AlgoSACK:
		return "sack"
	}
	return fmt.Sprintf("algorithm(%d)", uint8(a))
}

// ParseAlgorithm reads "seed" or "sack".
func ParseAlgorithm(s string) (Algorithm, error) {
	switch s {
	case "seed":
		return AlgoSeed, nil
	case "sack":
		return AlgoSACK, nil
	}
	return 0, fmt.Errorf("unknown algorithm %q (want seed or sack)", s)
}

// Range is a run of segment ids [Start, End) the receiver holds.
type Range struct{ Start, End uint32 }

// Packet is one parsed datagram; which fields mean something depends on Kind.
type Packet struct {
	Kind Kind
	TID  uint32 // transfer id, chosen by the client in its SYN

	Window  uint32    // SYN, SYN-ACK: segment ids accepted beyond the cumulative point
	Size    uint64    // SYN-ACK, ACK-ALL: file size in bytes
	Algo    Algorithm // SYN-ACK
	SegSize uint16    // SYN-ACK: largest DATA payload the sender will use

	ID      uint32 // DATA: segment id; SACK: the id answered; NACK: the id as read
	Tx      uint32 // DATA: sender's transmission counter; SACK: its echo
	TS      uint64 // DATA: sender's clock (ns); SACK: its echo
	Offset  uint64 // DATA: byte offset of the payload in the file
	Payload []byte // DATA (aliases the parsed buffer)

	Cum      uint32  // SACK: every id below Cum is held
	Received uint32  // SACK: good DATA datagrams received so far (duplicates too)
	RecvTS   uint64  // SACK: the receiver's clock (ns) when the answered DATA arrived
	Ranges   []Range // SACK: held ids above Cum, lowest first, at most MaxRanges

	SHA    [32]byte // ACK-ALL: SHA-256 of the file as received
	Reason string   // RST
}

// Parse errors; ErrChecksum comes with the header fields parsed (Kind,
// TID, and for DATA the ID as read), so a receiver can NACK it.
var (
	ErrShort    = errors.New("datagram shorter than its header")
	ErrMagic    = errors.New("not an rudp datagram (bad magic)")
	ErrVersion  = errors.New("unsupported rudp version")
	ErrKind     = errors.New("unknown message kind")
	ErrLength   = errors.New("body length does not match the kind")
	ErrChecksum = errors.New("bad checksum")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b[:8])
	c = crc32.Update(c, castagnoli, []byte{0, 0, 0, 0})
	return crc32.Update(c, castagnoli, b[12:])
}

var be = binary.BigEndian

// fixedLen is the body length of the kinds whose body has one size.
var fixedLen = [...]int{KindSYN: synLen, KindSYNACK: synackLen, KindACK: 0, KindNACK: nackLen, KindACKAll: ackAllLen}

// Append marshals p onto b (the CRC computed last) and returns the result.
func (p *Packet) Append(b []byte) []byte {
	start := len(b)
	b = append(b, magic0, magic1, Version, byte(p.Kind))
	b = be.AppendUint32(b, p.TID)
	b = be.AppendUint32(b, 0)
	switch p.Kind {
	case KindSYN:
		b = be.AppendUint32(b, p.Window)
	case KindSYNACK:
		b = be.AppendUint64(b, p.Size)
		b = append(b, byte(p.Algo), 0)
		b = be.AppendUint16(b, p.SegSize)
		b = be.AppendUint32(b, p.Window)
	case KindDATA:
		b = be.AppendUint32(b, p.ID)
		b = be.AppendUint32(b, p.Tx)
		b = be.AppendUint64(b, p.TS)
		b = be.AppendUint64(b, p.Offset)
		b = append(b, p.Payload...)
	case KindSACK:
		b = be.AppendUint32(b, p.Cum)
		b = be.AppendUint32(b, p.ID)
		b = be.AppendUint32(b, p.Tx)
		b = be.AppendUint64(b, p.TS)
		b = be.AppendUint32(b, p.Received)
		b = be.AppendUint64(b, p.RecvTS)
		n := min(len(p.Ranges), MaxRanges)
		b = be.AppendUint16(b, uint16(n))
		for _, r := range p.Ranges[:n] {
			b = be.AppendUint32(b, r.Start)
			b = be.AppendUint32(b, r.End)
		}
	case KindNACK:
		b = be.AppendUint32(b, p.ID)
	case KindACKAll:
		b = be.AppendUint64(b, p.Size)
		b = append(b, p.SHA[:]...)
	case KindRST:
		r := p.Reason
		if len(r) > MaxReason {
			r = r[:MaxReason]
		}
		b = append(b, r...)
	}
	be.PutUint32(b[start+8:], checksum(b[start:]))
	return b
}

// Parse reads one datagram. Payload and Ranges alias nothing but b (Payload
// is a sub-slice of b; Ranges is freshly allocated).
func Parse(b []byte) (Packet, error) {
	var p Packet
	if len(b) < HeaderLen {
		return p, ErrShort
	}
	if b[0] != magic0 || b[1] != magic1 {
		return p, ErrMagic
	}
	if b[2] != Version {
		return p, ErrVersion
	}
	p.Kind, p.TID = Kind(b[3]), be.Uint32(b[4:])
	body := b[HeaderLen:]
	switch p.Kind {
	case KindSYN, KindSYNACK, KindACK, KindNACK, KindACKAll:
		if len(body) != fixedLen[p.Kind] {
			return p, ErrLength
		}
	case KindDATA:
		if len(body) < dataHdrLen {
			return p, ErrLength
		}
		p.ID = be.Uint32(body) // read before the CRC check, for NACK
	case KindSACK:
		if len(body) < sackFixed || (len(body)-sackFixed)%8 != 0 ||
			int(be.Uint16(body[32:])) != (len(body)-sackFixed)/8 || (len(body)-sackFixed)/8 > MaxRanges {
			return p, ErrLength
		}
	case KindRST:
		if len(body) > MaxReason {
			return p, ErrLength
		}
	default:
		return p, ErrKind
	}
	if be.Uint32(b[8:]) != checksum(b) {
		return p, ErrChecksum
	}
	switch p.Kind {
	case KindSYN:
		p.Window = be.Uint32(body)
	case KindSYNACK:
		p.Size = be.Uint64(body)
		p.Algo = Algorithm(body[8])
		p.SegSize = be.Uint16(body[10:])
		p.Window = be.Uint32(body[12:])
	case KindDATA:
		p.Tx = be.Uint32(body[4:])
		p.TS = be.Uint64(body[8:])
		p.Offset = be.Uint64(body[16:])
		p.Payload = body[dataHdrLen:]
	case KindSACK:
		p.Cum = be.Uint32(body)
		p.ID = be.Uint32(body[4:])
		p.Tx = be.Uint32(body[8:])
		p.TS = be.Uint64(body[12:])
		p.Received = be.Uint32(body[20:])
		p.RecvTS = be.Uint64(body[24:])
		n := int(be.Uint16(body[32:]))
		if n > 0 {
			p.Ranges = make([]Range, n)
			for i := range p.Ranges {
				o := sackFixed + 8*i
				p.Ranges[i] = Range{be.Uint32(body[o:]), be.Uint32(body[o+4:])}
			}
		}
	case KindNACK:
		p.ID = be.Uint32(body)
	case KindACKAll:
		p.Size = be.Uint64(body)
		copy(p.SHA[:], body[8:])
	case KindRST:
		p.Reason = string(body)
	}
	return p, nil
}
