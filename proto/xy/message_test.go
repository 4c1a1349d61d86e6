package xy

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseMessage(t *testing.T) {
	for _, tc := range []struct {
		line   string
		letter byte
		name   string
		ok     bool
	}{
		{"Client X: Alice", 'X', "Alice", true},
		{"Client Y: Bob Smith", 'Y', "Bob Smith", true},
		{"Client X:Alice\t", 'X', "Alice", true},
		{"Client X: Alice", 'Y', "", false},
		{"client X: Alice", 'X', "", false},
		{"Client X Alice", 'X', "", false},
		{"Client X: ", 'X', "", false},
		{"Client X: a\rb", 'X', "", false},
		{"Client X: \xff", 'X', "", false},
	} {
		name, err := ParseMessage(tc.line, tc.letter)
		if tc.ok {
			require.NoError(t, err, tc.line)
			assert.Equal(t, tc.name, name)
		} else {
			assert.ErrorIs(t, err, ErrBadMessage, tc.line)
		}
	}
}

func TestLineReader(t *testing.T) {
	lr := newLineReader(bytes.NewReader([]byte("a\r\nb\n"+string(bytes.Repeat([]byte("c"), 20))+"\nd\n")), 10)
	for _, want := range []string{"a", "b"} {
		got, err := lr.ReadLine()
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := lr.ReadLine()
	assert.ErrorIs(t, err, ErrLineTooLong)
}

func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{"Client X: Alice", "Client Y: Bob", "Client X:", "Client X: \x00", "X: A received before Y: B"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, line string, isX bool) {
		letter := byte('Y')
		if isX {
			letter = 'X'
		}
		name, err := ParseMessage(line, letter)
		if err != nil {
			require.ErrorIs(t, err, ErrBadMessage)
			return
		}
		require.NoError(t, CheckName(name))
		again, err := ParseMessage(MessageLine(letter, name), letter)
		require.NoError(t, err)
		require.Equal(t, name, again)
	})
}

func FuzzParseConnected(f *testing.F) {
	for _, s := range []string{"Client X connected", "Client Y connected", "Client Z connected", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		letter, err := ParseConnected(line)
		if err != nil {
			require.ErrorIs(t, err, ErrBadMessage)
			return
		}
		require.Equal(t, line, ConnectedLine(letter))
	})
}
