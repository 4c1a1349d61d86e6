package wire

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadLine(t *testing.T) {
	in := "one\r\ntwo\n" + strings.Repeat("x", 10000) + "\nthree\nlast"
	br := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(in)), 16)
	for _, want := range []string{"one", "two"} {
		got, err := ReadLine(br, 100)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := ReadLine(br, 100)
	assert.ErrorIs(t, err, ErrLineTooLong)
	got, err := ReadLine(br, 100)
	require.NoError(t, err)
	assert.Equal(t, "three", got, "the long line was skipped to its end")
	got, err = ReadLine(br, 100)
	require.NoError(t, err)
	assert.Equal(t, "last", got)
	_, err = ReadLine(br, 100)
	assert.ErrorIs(t, err, io.EOF)
}

func TestParseSize(t *testing.T) {
	n, err := ParseSize("0", 10)
	require.NoError(t, err)
	assert.Zero(t, n)
	for _, bad := range []string{"", "-1", "+1", " 1", "1e3", "11", "99999999999999999999", "0x10"} {
		_, err := ParseSize(bad, 10)
		assert.Error(t, err, bad)
	}
}

func FuzzReadLine(f *testing.F) {
	f.Add([]byte("a\nb\r\n\n"), 4)
	f.Add([]byte(strings.Repeat("y", 300)+"\nz"), 8)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max <= 0 || max > 1<<16 {
			return
		}
		br := bufio.NewReaderSize(iotest.HalfReader(strings.NewReader(string(data))), 16)
		for i := 0; i <= len(data)+1; i++ {
			line, err := ReadLine(br, max)
			if errors.Is(err, io.EOF) {
				return
			}
			if errors.Is(err, ErrLineTooLong) {
				continue
			}
			if err != nil {
				t.Fatalf("unexpected %v", err)
			}
			if len(line) > max || strings.Contains(line, "\n") {
				t.Fatalf("line %q over %d or with newline", line, max)
			}
		}
		t.Fatalf("more lines than bytes")
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "1", "10485760", "-1", "", "1 ", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s, 1<<40)
		if err == nil && (n < 0 || n > 1<<40) {
			t.Fatalf("%q -> %d", s, n)
		}
	})
}
