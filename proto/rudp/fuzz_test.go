package rudp

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParse: any bytes parse or fail cleanly, and whatever parses
// marshals back to the same bytes.
func FuzzParse(f *testing.F) {
	for _, p := range []Packet{
		{Kind: KindSYN, TID: 1, Window: 8},
		{Kind: KindSYNACK, TID: 1, Size: 10, Algo: AlgoSeed, SegSize: 8000, Window: 8},
		{Kind: KindACK, TID: 1},
		{Kind: KindDATA, TID: 1, ID: 2, Payload: []byte("abc")},
		{Kind: KindSACK, TID: 1, Cum: 1, Ranges: []Range{{3, 4}}},
		{Kind: KindNACK, TID: 1, ID: 2},
		{Kind: KindACKAll, TID: 1},
		{Kind: KindRST, TID: 1, Reason: "x"},
	} {
		f.Add(p.Append(nil))
	}
	f.Add([]byte("RU\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		require.True(t, bytes.Equal(b, p.Append(nil)), "%v", p.Kind)
	})
}
