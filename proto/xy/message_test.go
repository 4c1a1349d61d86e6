package xy

import (
	"strings"
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
		{"Client Y: Bob", 'X', "", false},
		{"client X: Alice", 'X', "client X: Alice", true},
		{"Alice", 'X', "Alice", true},
		{"  Bob ", 'Y', "Bob", true},
		{"Client X: ", 'X', "", false},
		{"", 'X', "", false},
		{strings.Repeat("n", MaxName), 'X', strings.Repeat("n", MaxName), true},
		{strings.Repeat("n", MaxName+1), 'X', "", false},
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
		require.Contains(t, line, "Client "+string(letter))
	})
}

// Every acknowledgment of names the server accepts fits one recv(1024).
func TestAckFitsOneRecv(t *testing.T) {
	long := strings.Repeat("é", MaxName/2)
	require.NoError(t, CheckName(long))
	assert.LessOrEqual(t, len(AckLine('X', long, 'Y', long)+"\n"), MaxReply)
	assert.LessOrEqual(t, MaxReply, 1024)
}

func TestParseConnectedDecorated(t *testing.T) {
	for line, want := range map[string]byte{"From Server: Client X connected": 'X', "You are Client Y": 'Y'} {
		got, err := ParseConnected(line)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := ParseConnected("Client X and Client Y")
	assert.ErrorIs(t, err, ErrBadMessage)
}
