package engine

import (
	"testing"

	"github.com/labctl/labctl/netem"
)

// FuzzFrameParsing: whatever a lab program puts on a link (raw sockets can
// send any bytes), reading its headers, its flow and its fate never
// panics, and corrupting it (the fixing path included) keeps its length.
func FuzzFrameParsing(f *testing.F) {
	f.Add(ipv4Frame(17, 1, 2, 5000, 9000))
	f.Add(ipv4Frame(1, 1, 2, 7, 1))
	f.Add(arpFrame())
	f.Add(gsoFrame(200, 100, 0x18)[vnetHdrLen:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		pi := parsePkt(p)
		if pi.end > len(p) || pi.payload > len(p) || pi.th > len(p) {
			t.Fatalf("offsets past the frame: %+v, len %d", pi, len(p))
		}
		tb := newFlowTable(1, "l", netem.AtoB)
		fl := tb.get(p)
		c, _ := newDirConfig(netem.Spec{Loss: 50, Corrupt: 50, CorruptFixChecksum: true})
		fa := decide(c, fl)
		frame := append(make([]byte, vnetHdrLen), p...)
		if len(p) > 0 {
			fa.fix = true
			corrupt(frame, fa)
			fa.corruptByte = 3
			corrupt(frame, fa)
		}
		if len(frame) != vnetHdrLen+len(p) {
			t.Fatal("corrupt changed the length")
		}
	})
}
