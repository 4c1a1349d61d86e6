package wire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// FuzzLineReader: lines never exceed the limit nor hold a line break, a
// too-long line is an error and never a panic, and input made only of
// short lines comes back exactly, read in one-byte pieces.
var errTooLong = errors.New("too long")

func FuzzLineReader(f *testing.F) {
	for _, s := range []string{"a\nbb\r\n", "", "\n\n", "0123456789abcdefXYZ\nok\n", "no newline", "\r\r\n\r"} {
		f.Add([]byte(s))
	}
	const max = 16
	f.Fuzz(func(t *testing.T, in []byte) {
		lr := NewLineReader(iotest.OneByteReader(bytes.NewReader(in)), max, errTooLong)
		var got []string
		tooLong := false
		for i := 0; i <= len(in)+1; i++ { // each call consumes at least one byte, or ends
			line, err := lr.ReadLine()
			if errors.Is(err, errTooLong) {
				tooLong = true
				continue
			}
			if err != nil {
				require.ErrorIs(t, err, io.EOF)
				break
			}
			require.LessOrEqual(t, len(line), max)
			require.NotContains(t, line, "\n")
			got = append(got, line)
		}
		var want []string
		parts := strings.Split(string(in), "\n")
		short := len(parts[len(parts)-1]) <= max // an unterminated tail is not a line, but may be too long
		for _, p := range parts[:len(parts)-1] {
			p = strings.TrimSuffix(p, "\r")
			short = short && len(p) <= max
			want = append(want, p)
		}
		if short {
			require.False(t, tooLong)
			require.Equal(t, want, got)
		}
	})
}
