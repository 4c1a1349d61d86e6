package wire

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"time"
)

// DefaultPause is how long a message without a newline may go quiet before
// what arrived counts as the whole message (issue 10.2: student programs
// send `sock.send(b"Alice")` and wait for the reply).
const DefaultPause = 200 * time.Millisecond

// Deadliner is the part of a net.Conn that bounds a blocked read.
type Deadliner interface {
	SetReadDeadline(time.Time) error
}

// MessageReader reads the messages of a lenient text protocol: a message is
// a line ending in `\n` or `\r\n` (the terminator removed), or, when bytes
// stop arriving for Pause without a newline, whatever arrived until then (a
// trailing `\r` removed). A `\n`, `\r\n` or lone `\r` that is the very next
// thing to arrive after such a pause-ended message is its late terminator
// and is skipped, so `send("Alice")` then `send("\n")` is one message.
//
// Once the peer has ended one message with a newline, the pause no longer
// ends its messages: a peer that frames with newlines is held to them, so a
// line delayed part-way by a lost segment (TCP's retransmission timeout is
// at least 200 ms) is never cut in two. A peer that never sends a newline
// keeps the pause framing throughout.
//
// A message longer than max bytes is read to its end (newline or pause) and
// thrown away, and ReadMessage returns ErrLineTooLong: the stream is still
// in step. If it goes on past MaxDiscard bytes, ReadMessage returns
// ErrDiscardLimit instead; the caller should answer one ERROR line and close
// (see CloseGently). Memory held is at most about max + the buffer size.
//
// A MessageReader is not safe for concurrent use. Payload bytes that follow
// a message (an upload) are read through Reader, which shares the buffer.
type MessageReader struct {
	br      *bufio.Reader
	d       Deadliner // nil: no deadlines (a plain io.Reader)
	max     int
	pause   time.Duration
	partial []byte
	discard int  // bytes of an over-long message thrown away so far
	skipLF  bool // the last message ended by a pause: a `\n` next is its terminator
	skipCR  bool // ... and a `\r` was already seen of that terminator
	lines   bool // the peer has ended a message with a newline: no more pauses
}

// NewMessageReader reads messages of at most limit bytes from r. If r is a
// Deadliner (a net.Conn), pauses are detected with its read deadline and
// ReadMessage's deadline and context are honoured; otherwise only lines and
// EOF end a message. pause is the quiet time that ends a message without a
// newline: 0 means DefaultPause, a negative value turns pause framing off
// (strict lines).
func NewMessageReader(r io.Reader, limit int, pause time.Duration) *MessageReader {
	if pause == 0 {
		pause = DefaultPause
	}
	if pause < 0 {
		pause = 0
	}
	d, _ := r.(Deadliner)
	return &MessageReader{br: bufio.NewReaderSize(r, max(limit+2, 16<<10)), d: d, max: limit, pause: pause}
}

// Reader is the buffered stream under the messages, for payload bytes that
// follow one. Do not read from it while a ReadMessage runs.
func (m *MessageReader) Reader() *bufio.Reader { return m.br }

// Pending reports whether part of a message has been read but not returned
// (it was interrupted by a deadline or the context).
func (m *MessageReader) Pending() bool { return len(m.partial) > 0 }

// ReadMessage returns the next message. deadline (zero: none) bounds the
// whole wait; cancelling ctx ends it with ctx's error. On a timeout the
// bytes read so far are kept for the next call.
func (m *MessageReader) ReadMessage(ctx context.Context, deadline time.Time) (string, error) {
	if m.d != nil {
		stop := context.AfterFunc(ctx, func() { _ = m.d.SetReadDeadline(time.Now()) })
		defer stop()
	}
	for {
		if line, ok := m.take(); ok {
			return m.done(line, false)
		}
		if m.discard > MaxDiscard {
			m.partial, m.discard = m.partial[:0], 0
			return "", ErrDiscardLimit
		}
		pauseBound, err := m.arm(ctx, deadline)
		if err != nil {
			return "", err
		}
		_, err = m.br.Peek(1) // one read from the connection
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		ended := errors.Is(err, io.EOF) || (pauseBound && IsTimeout(err))
		if !ended || (len(m.partial) == 0 && m.discard == 0) {
			return "", err
		}
		msg := string(bytes.TrimSuffix(m.partial, []byte{'\r'}))
		m.partial = m.partial[:0]
		if msg == "" && m.discard == 0 { // a lone `\r`: no message
			if errors.Is(err, io.EOF) {
				return "", err
			}
			continue
		}
		return m.done(msg, !errors.Is(err, io.EOF))
	}
}

// done ends one message: ErrLineTooLong if it was over the limit.
func (m *MessageReader) done(msg string, byPause bool) (string, error) {
	m.skipLF, m.skipCR = byPause, false
	over := m.discard > 0 || len(msg) > m.max
	m.discard = 0
	if over {
		return "", ErrLineTooLong
	}
	return msg, nil
}

// take moves buffered bytes into the message; it returns a complete line.
func (m *MessageReader) take() (string, bool) {
	n := m.br.Buffered()
	if n == 0 {
		return "", false
	}
	b, _ := m.br.Peek(n)
	if m.skipLF { // the late terminator of a pause-ended message
		switch {
		case b[0] == '\n':
			_, _ = m.br.Discard(1)
			m.skipLF, m.skipCR = false, false
			return m.take()
		case b[0] == '\r' && !m.skipCR:
			_, _ = m.br.Discard(1)
			m.skipCR = true // dropped, whether or not a `\n` follows
			return m.take()
		}
		m.skipLF, m.skipCR = false, false
	}
	i := bytes.IndexByte(b, '\n')
	chunk := b
	if i >= 0 {
		chunk = b[:i+1]
	}
	if m.discard == 0 && len(m.partial)+len(chunk) <= m.max+2 {
		m.partial = append(m.partial, chunk...)
	} else {
		m.discard += len(m.partial) + len(chunk)
		m.partial = m.partial[:0]
	}
	_, _ = m.br.Discard(len(chunk))
	if i < 0 {
		return "", false
	}
	line := string(TrimEOL(m.partial))
	m.partial = m.partial[:0]
	m.lines = true
	return line, true
}

// arm sets the read deadline for the next read: the caller's, or sooner
// the end of the pause if part of a message is in. It reports whether the
// pause is the binding one.
func (m *MessageReader) arm(ctx context.Context, deadline time.Time) (bool, error) {
	if m.d == nil {
		return false, nil
	}
	d, pauseBound := deadline, false
	if m.pause > 0 && !m.lines && (len(m.partial) > 0 || m.discard > 0) {
		if p := time.Now().Add(m.pause); d.IsZero() || p.Before(d) {
			d, pauseBound = p, true
		}
	}
	if err := m.d.SetReadDeadline(d); err != nil {
		return false, err
	}
	// Checked after setting the deadline: a cancel from now on moves it.
	return pauseBound, ctx.Err()
}

// Wait blocks until at least one byte of the next message has arrived, the
// deadline passes or ctx is cancelled, without consuming anything.
func (m *MessageReader) Wait(ctx context.Context, deadline time.Time) error {
	if len(m.partial) > 0 || m.br.Buffered() > 0 {
		return nil
	}
	if m.d != nil {
		stop := context.AfterFunc(ctx, func() { _ = m.d.SetReadDeadline(time.Now()) })
		defer stop()
		if err := m.d.SetReadDeadline(deadline); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := m.br.Peek(1)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
