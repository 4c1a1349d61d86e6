package stopwait

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
func FuzzLineReader(f *testing.F) {
	for _, s := range []string{"a\nbb\r\n", "", "\n\n", "0123456789abcdefXYZ\nok\n", "no newline", "\r\r\n\r"} {
		f.Add([]byte(s))
	}
	const max = 16
	f.Fuzz(func(t *testing.T, in []byte) {
		lr := newLineReader(iotest.OneByteReader(bytes.NewReader(in)), max)
		var got []string
		tooLong := false
		for i := 0; i <= len(in)+1; i++ { // each call consumes at least one byte, or ends
			line, err := lr.readLine()
			if errors.Is(err, ErrFrameLong) {
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

// FuzzSplitMessages: messages are non-empty, trimmed, hold no "||" and are
// never TCHAU; joined with "||" again they split into the same messages.
func FuzzSplitMessages(f *testing.F) {
	for _, s := range []string{"a||b", " a ||b|| ||c", "a||TCHAU||b", "TCHAU", "|||||", "x ||| y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		msgs, tchau := SplitMessages(line)
		for _, m := range msgs {
			require.NotEmpty(t, m)
			require.Equal(t, strings.TrimSpace(m), m)
			require.NotEqual(t, Tchau, m)
		}
		if tchau {
			require.Contains(t, line, Tchau)
		}
		if strings.Contains(strings.Join(msgs, ""), "|") {
			return // "a|" + "||" + "b" reads back as "a", "|b": the format's own ambiguity
		}
		again, tchau2 := SplitMessages(strings.Join(msgs, "||"))
		require.Equal(t, msgs, again, "splitting is idempotent")
		require.False(t, tchau2)
	})
}
