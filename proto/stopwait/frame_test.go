package stopwait

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFrame(t *testing.T) {
	f := NewFrame(7, "hello")
	assert.Equal(t, "7 3610a686 hello", f.String())
	got, err := ParseFrame("7 3610a686 hello")
	require.NoError(t, err)
	assert.Equal(t, f, got)
	assert.True(t, got.Intact())
	for _, bad := range []string{"", "07 3610a686 x", "-1 3610a686 x", "+1 3610a686 x", "1a 00000000 x",
		"99999999999999999999999 00000000 x", " 1 00000000 x"} {
		_, err := ParseFrame(bad)
		assert.ErrorIs(t, err, ErrBadSeq, bad)
	}
	for _, bad := range []string{"1", "1 ", "1 0000000 x", "1 000000000 x", "1 0000000G x", "1 00000000"} {
		f, err := ParseFrame(bad)
		assert.ErrorIs(t, err, ErrBadFrame, bad)
		assert.Equal(t, uint64(1), f.Seq)
	}
}

func TestSplitMessages(t *testing.T) {
	msgs, tchau := SplitMessages(" a ||b|| ||c")
	assert.Equal(t, []string{"a", "b", "c"}, msgs)
	assert.False(t, tchau)
	msgs, tchau = SplitMessages("a||TCHAU||b")
	assert.Equal(t, []string{"a"}, msgs)
	assert.True(t, tchau)
	_, tchau = SplitMessages("tchau")
	assert.False(t, tchau, "TCHAU is case-sensitive")
}

func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{"0 00000000 ", "7 3610a686 hello", "1 ABCDEF12 x", "TCHAU", "x", "18446744073709551615 00000000 a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		fr, err := ParseFrame(line)
		var s session
		v := s.handle(line) // never panics, always answers
		require.NotEmpty(t, v.reply)
		if err != nil {
			return
		}
		require.Equal(t, line, fr.String(), "a parsed frame prints back as it came")
		again, err := ParseFrame(fr.String())
		require.NoError(t, err)
		require.Equal(t, fr, again)
		require.Equal(t, fr.Intact() && fr.Seq == 0, v.deliver)
	})
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"ACK 0", "NACK 12", "BYE", "ERROR x y", "ACK", "ACK 01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseReply(line)
		if err != nil {
			require.ErrorIs(t, err, ErrBadReply)
			return
		}
		if r.Kind != "ERROR" {
			require.Equal(t, line, r.String())
		}
	})
}
