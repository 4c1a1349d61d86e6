package wire

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain é 名前":       "plain é 名前",
		"a\nb\r\tc":        `a\nb\r\tc`,
		"\x1b[2J\x00\x7f":  `\x1b[2J\x00\x7f`,
		"\u0085\u009b":     `\u0085\u009b`,
		"bad\xff":          `bad\xff`,
		`back\slash`:       `back\\slash`,
		"\x1b]0;title\x07": `\x1b]0;title\a`,
	} {
		assert.Equal(t, want, Escape(in), "%q", in)
		back, err := strconv.Unquote(`"` + want + `"`)
		require.NoError(t, err)
		assert.Equal(t, in, back, "reads back")
	}
}

func FuzzEscape(f *testing.F) {
	f.Add("a\nb\x1b\xff\\")
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		for _, r := range e {
			require.False(t, isControl(r), "%q holds a control character", e)
		}
		if !containsQuote(s) {
			back, err := strconv.Unquote(`"` + e + `"`)
			require.NoError(t, err)
			require.Equal(t, s, back)
		}
	})
}

func containsQuote(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			return true
		}
	}
	return false
}

func TestRateMeterSlidingWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	m := newRateMeter(MinRate{Rate: 100, Window: 10 * time.Second}, t0)
	assert.Equal(t, t0.Add(10*time.Second), m.deadline(), "nothing sent: the first window's end")
	m.add(t0.Add(time.Second), 5000) // far ahead of the rate
	assert.Equal(t, t0.Add(11*time.Second), m.deadline(), "covered until a window after the burst")
	// A trickle after the burst: one byte a second never refills a window.
	for i := 2; i <= 30; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		if !now.Before(m.deadline()) {
			assert.LessOrEqual(t, i, 12, "the trickle fails within one window of the burst")
			return
		}
		m.add(now, 1)
	}
	t.Fatal("a trickle was never cut")
}

func TestRateReaderCutsTrickle(t *testing.T) {
	c, s := tcpPair(t)
	go func() {
		_, _ = c.Write(make([]byte, 4096))
		for range 50 { // then one byte every 20 ms: 50 B/s
			if _, err := c.Write([]byte{1}); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	rr := NewRateReader(s, s, MinRate{Rate: 1000, Window: 200 * time.Millisecond})
	start := time.Now()
	n, err := io.Copy(io.Discard, rr)
	require.ErrorIs(t, err, ErrTooSlow)
	assert.GreaterOrEqual(t, n, int64(4096))
	assert.Less(t, time.Since(start), 900*time.Millisecond, "cut within about a window of the trickle, not at the end")
}

func TestServeBoundsAndOrder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	held := make(chan net.Conn, 4)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, ServeOptions{MaxConns: 2, Log: log, Full: func(c net.Conn) {
			_, _ = c.Write([]byte("full\n"))
		}}, func(ctx context.Context, c net.Conn) {
			held <- c
			<-ctx.Done()
		})
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	<-held
	<-held
	third := dial()
	buf := make([]byte, 16)
	require.NoError(t, third.SetReadDeadline(time.Now().Add(5*time.Second)))
	n, _ := third.Read(buf)
	assert.Equal(t, "full\n", string(buf[:n]), "beyond MaxConns a newcomer gets Full")
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// Inline handlers run in accept order, and a slot frees when its
// connection is closed, not when the handler returns.
func TestServeInlineFreesSlotOnClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan net.Conn, 4)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, ServeOptions{MaxConns: 1, Inline: true, Log: slog.New(slog.DiscardHandler)},
			func(_ context.Context, c net.Conn) { got <- c })
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer a.Close()
	first := <-got
	b, err := net.Dial("tcp", ln.Addr().String()) // waits in the backlog
	require.NoError(t, err)
	defer b.Close()
	select {
	case <-got:
		t.Fatal("a second connection was handed out beyond MaxConns")
	case <-time.After(100 * time.Millisecond):
	}
	assert.Equal(t, a.LocalAddr().String(), first.RemoteAddr().String(), "accept order")
	first.Close()
	select {
	case second := <-got:
		assert.Equal(t, b.LocalAddr().String(), second.RemoteAddr().String())
		second.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("closing the first connection did not free its slot")
	}
	cancel()
	require.NoError(t, <-done)
}
