// Package wire holds the line-and-bytes plumbing shared by the TCP lab
// servers: bounded line reads, deadline-bound connections, size parsing and
// the check for bytes sent past an announced upload; the lenient message
// reader (a line, or what arrived before a 200 ms pause: MessageReader);
// the sliding-window trickle rule for payloads (MinRate, RateReader,
// RateWriter); Escape for printing client data; the one accept loop
// (Serve) and CloseGently, which lets an ERROR line reach the client
// before the close.
package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrLineTooLong is returned by ReadLine when a line exceeds the limit; the
// rest of the line has been discarded, so the stream is still in step.
var ErrLineTooLong = errors.New("line too long")

// ErrDiscardLimit is returned when a too-long line goes on past MaxDiscard
// bytes: the peer is flooding and the connection should be dropped.
var ErrDiscardLimit = errors.New("line too long, gave up discarding")

// MaxDiscard bounds how much of one overlong line is read and thrown away
// before giving up on the connection.
const MaxDiscard = 64 << 20

// ReadLine reads one line ending in "\n" (a trailing "\r" is dropped) of at
// most max bytes. A longer line is discarded up to its end and reported as
// ErrLineTooLong. A final line without "\n" before EOF is returned with a nil
// error only if non-empty; io.EOF follows.
func ReadLine(br *bufio.Reader, max int) (string, error) {
	var buf []byte
	discarded := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if discarded == 0 && len(buf)+len(chunk) <= max+2 {
			buf = append(buf, chunk...)
		} else {
			discarded += len(buf) + len(chunk)
			buf = buf[:0]
		}
		switch {
		case err == nil:
			if discarded > 0 {
				return "", ErrLineTooLong
			}
			line := strings.TrimSuffix(strings.TrimSuffix(string(buf), "\n"), "\r")
			if len(line) > max {
				return "", ErrLineTooLong
			}
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			if discarded > MaxDiscard {
				return "", ErrDiscardLimit
			}
			continue
		case errors.Is(err, io.EOF) && len(buf) > 0 && discarded == 0:
			line := strings.TrimSuffix(string(buf), "\r")
			if len(line) > max {
				return "", ErrLineTooLong
			}
			return line, nil
		default:
			return "", err
		}
	}
}

// ParseSize parses a byte count: decimal digits only (no sign, no spaces), at
// most max.
func ParseSize(s string, max int64) (int64, error) {
	if s == "" {
		return 0, errors.New("missing size")
	}
	if len(s) > 19 {
		return 0, fmt.Errorf("size %q too large", s)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("size %q is not a decimal number", s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	if n > max {
		return 0, fmt.Errorf("size %d over the limit of %d bytes", n, max)
	}
	return n, nil
}

// Conn wraps a net.Conn so that every Read and Write gets a fresh deadline of
// now+step, capped by an overall limit. Per-call deadlines catch silent peers;
// the cap catches slow-loris peers that trickle a byte at a time.
type Conn struct {
	net.Conn

	mu        sync.Mutex
	readStep  time.Duration
	readCap   time.Time
	writeStep time.Duration
	writeCap  time.Time
}

// NewConn wraps c; until a limit is set, reads and writes use step alone.
func NewConn(c net.Conn, step time.Duration) *Conn {
	return &Conn{Conn: c, readStep: step, writeStep: step}
}

// LimitRead sets the per-read deadline step and the overall cap (zero: none).
func (c *Conn) LimitRead(step time.Duration, cap time.Time) {
	c.mu.Lock()
	c.readStep, c.readCap = step, cap
	c.mu.Unlock()
}

// LimitWrite sets the per-write deadline step and the overall cap (zero: none).
func (c *Conn) LimitWrite(step time.Duration, cap time.Time) {
	c.mu.Lock()
	c.writeStep, c.writeCap = step, cap
	c.mu.Unlock()
}

// SetReadDeadline sets the overall cap of reads (zero: none); each read
// still gets at most the current step. Readers that manage deadlines
// themselves (MessageReader, RateReader) work through it.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readCap = t
	d := deadline(c.readStep, t)
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(d) // moves a read already blocked
}

// SetWriteDeadline sets the overall cap of writes (zero: none).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.writeCap = t
	d := deadline(c.writeStep, t)
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(d)
}

func deadline(step time.Duration, cap time.Time) time.Time {
	d := time.Now().Add(step)
	if !cap.IsZero() && cap.Before(d) {
		d = cap
	}
	return d
}

func (c *Conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	d := deadline(c.readStep, c.readCap)
	c.mu.Unlock()
	if err := c.Conn.SetReadDeadline(d); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	d := deadline(c.writeStep, c.writeCap)
	c.mu.Unlock()
	if err := c.Conn.SetWriteDeadline(d); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// TransferCap is the overall time allowed to move size bytes: one step of
// slack plus size at minRate bytes per second.
func TransferCap(size int64, step time.Duration, minRate int64) time.Time {
	if minRate <= 0 {
		return time.Time{}
	}
	return time.Now().Add(step + time.Duration(float64(size)/float64(minRate)*float64(time.Second)))
}

// ExtraBytes reports whether more bytes follow an upload's payload within the
// quiet window. Clients must wait for the reply to an upload before sending
// anything else, so any such byte means the upload was longer than announced.
// It leaves the bytes in br.
func ExtraBytes(br *bufio.Reader, c *Conn, quiet time.Duration) bool {
	if br.Buffered() > 0 {
		return true
	}
	if quiet <= 0 {
		return false
	}
	c.mu.Lock()
	step, cap := c.readStep, c.readCap
	c.mu.Unlock()
	c.LimitRead(quiet, time.Now().Add(quiet))
	defer c.LimitRead(step, cap)
	_, err := br.Peek(1)
	return err == nil
}

// IsTimeout reports whether err is a deadline expiry.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
