package wire

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tcpPair is a connected pair of loopback TCP sockets.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server, err = ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func read(t *testing.T, m *MessageReader) string {
	t.Helper()
	msg, err := m.ReadMessage(context.Background(), time.Now().Add(5*time.Second))
	require.NoError(t, err)
	return msg
}

func TestMessageReaderLinesAndPauses(t *testing.T) {
	c, s := tcpPair(t)
	m := NewMessageReader(s, 16, 100*time.Millisecond)
	_, _ = c.Write([]byte("thr"))
	time.AfterFunc(20*time.Millisecond, func() { _, _ = c.Write([]byte("ee")) }) // within the pause
	assert.Equal(t, "three", read(t, m), "a message without a newline ends at the pause")
	_, _ = c.Write([]byte("\r\nfour\r")) // the late terminator of "three" is skipped
	assert.Equal(t, "four", read(t, m), "a trailing CR is dropped")
	_, _ = c.Write([]byte("\rfive")) // a lone late CR is dropped too
	assert.Equal(t, "five", read(t, m))
	_, _ = c.Write([]byte("\n\nsix\r\n")) // "five"'s late LF skipped; the next empty line is a message
	assert.Equal(t, "", read(t, m))
	assert.Equal(t, "six", read(t, m))

	// The peer has used newlines: from now on only a newline ends a message.
	_, _ = c.Write([]byte("sev"))
	_, err := m.ReadMessage(context.Background(), time.Now().Add(300*time.Millisecond))
	require.True(t, IsTimeout(err), "no pause framing once newlines were seen: %v", err)
	_, _ = c.Write([]byte("en\n"))
	assert.Equal(t, "seven", read(t, m))
}

func TestMessageReaderTooLong(t *testing.T) {
	c, s := tcpPair(t)
	m := NewMessageReader(s, 8, 100*time.Millisecond)
	_, _ = c.Write([]byte(strings.Repeat("y", 9)))
	_, err := m.ReadMessage(context.Background(), time.Now().Add(5*time.Second))
	assert.ErrorIs(t, err, ErrLineTooLong, "a long message ended by a pause")
	go func() { _, _ = c.Write([]byte(strings.Repeat("x", 100000) + "\nok\n")) }()
	_, err = m.ReadMessage(context.Background(), time.Now().Add(5*time.Second))
	assert.ErrorIs(t, err, ErrLineTooLong)
	assert.Equal(t, "ok", read(t, m), "the long line was skipped to its end")
	_, _ = c.Write([]byte("12345678\n"))
	assert.Equal(t, "12345678", read(t, m), "exactly the limit")
}

func TestMessageReaderDeadlineAndCancel(t *testing.T) {
	c, s := tcpPair(t)
	m := NewMessageReader(s, 64, -1) // strict lines: no pause framing
	_, _ = c.Write([]byte("half"))
	_, err := m.ReadMessage(context.Background(), time.Now().Add(150*time.Millisecond))
	require.True(t, IsTimeout(err), "without pauses a partial line waits for its newline: %v", err)
	assert.True(t, m.Pending())
	_, _ = c.Write([]byte(" line\n"))
	assert.Equal(t, "half line", read(t, m), "the partial line was kept")

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = m.ReadMessage(ctx, time.Time{})
	assert.ErrorIs(t, err, context.Canceled)
	_, _ = c.Write([]byte("x\n"))
	require.NoError(t, m.Wait(context.Background(), time.Now().Add(5*time.Second)))
	assert.Equal(t, "x", read(t, m), "Wait consumed nothing")
}

func TestMessageReaderEOF(t *testing.T) {
	m := NewMessageReader(iotest.OneByteReader(strings.NewReader("a\nlast")), 16, 0)
	for _, want := range []string{"a", "last"} {
		got, err := m.ReadMessage(context.Background(), time.Time{})
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := m.ReadMessage(context.Background(), time.Time{})
	assert.ErrorIs(t, err, io.EOF)
}

// A flood past MaxDiscard ends in ErrDiscardLimit, not a silent close.
func TestMessageReaderDiscardLimit(t *testing.T) {
	m := NewMessageReader(io.LimitReader(zeros{}, MaxDiscard+(1<<20)), 16, 0)
	_, err := m.ReadMessage(context.Background(), time.Time{})
	assert.ErrorIs(t, err, ErrDiscardLimit)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// FuzzMessageReader: on a plain reader (no pauses) messages are exactly the
// lines of the input, a final unterminated line included, none over the
// limit, and a too-long one is an error, never a panic.
func FuzzMessageReader(f *testing.F) {
	for _, s := range []string{"a\nbb\r\n", "", "\n\n", "0123456789abcdefXYZ\nok\n", "no newline", "\r\r\n\r"} {
		f.Add([]byte(s))
	}
	const limit = 16
	f.Fuzz(func(t *testing.T, in []byte) {
		m := NewMessageReader(iotest.OneByteReader(bytes.NewReader(in)), limit, 0)
		var got []string
		tooLong := false
		for i := 0; i <= len(in)+1; i++ {
			msg, err := m.ReadMessage(context.Background(), time.Time{})
			if errors.Is(err, ErrLineTooLong) {
				tooLong = true
				continue
			}
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			require.LessOrEqual(t, len(msg), limit)
			require.NotContains(t, msg, "\n")
			got = append(got, msg)
		}
		var want []string
		parts := strings.Split(string(in), "\n")
		short := true
		for i, p := range parts {
			if i == len(parts)-1 {
				p = strings.TrimSuffix(p, "\r")
				if p == "" {
					break
				}
			} else {
				p = strings.TrimSuffix(p, "\r")
			}
			short = short && len(p) <= limit
			want = append(want, p)
		}
		if short {
			require.False(t, tooLong)
			require.Equal(t, want, got)
		}
	})
}

// pauser delivers its input in pieces; a 0xFF byte stands for a pause: the
// read that meets it times out, as a socket's read deadline would.
type pauser struct{ in []byte }

func (p *pauser) SetReadDeadline(time.Time) error { return nil }

func (p *pauser) Read(b []byte) (int, error) {
	if len(p.in) == 0 {
		return 0, io.EOF
	}
	if p.in[0] == 0xFF {
		p.in = p.in[1:]
		return 0, os.ErrDeadlineExceeded
	}
	n := 0
	for n < len(b) && n < len(p.in) && p.in[n] != 0xFF && n < 3 {
		b[n] = p.in[n]
		n++
	}
	p.in = p.in[n:]
	return n, nil
}

// FuzzMessageReaderPauses: with pauses anywhere, messages never exceed the
// limit nor hold a `\n`, every byte that is not a terminator ends up in
// exactly one message (when none is too long), and nothing panics.
func FuzzMessageReaderPauses(f *testing.F) {
	for _, s := range []string{"Alice\xff\nBob\n", "a\xff\xff\r\nb\xffc", "\xff\n\n", "x\r\xff\ry\n", "0123456789abcdefXYZ\xffok"} {
		f.Add([]byte(s))
	}
	const limit = 16
	f.Fuzz(func(t *testing.T, in []byte) {
		m := NewMessageReader(&pauser{in: bytes.Clone(in)}, limit, time.Second)
		var got []string
		tooLong := false
		for i := 0; i <= 2*len(in)+2; i++ {
			msg, err := m.ReadMessage(context.Background(), time.Time{})
			if errors.Is(err, ErrLineTooLong) {
				tooLong = true
				continue
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if IsTimeout(err) { // a pause with nothing pending
				continue
			}
			require.NoError(t, err)
			require.LessOrEqual(t, len(msg), limit)
			require.NotContains(t, msg, "\n")
			got = append(got, msg)
		}
		if tooLong {
			return
		}
		drop := func(b []byte) string { // terminators and pauses are not message bytes
			var out []byte
			for _, c := range b {
				if c != '\n' && c != '\r' && c != 0xFF {
					out = append(out, c)
				}
			}
			return string(out)
		}
		want, have := drop(in), drop([]byte(strings.Join(got, "")))
		require.Equal(t, want, have, "the bytes of the messages are the input's, in order")
	})
}
