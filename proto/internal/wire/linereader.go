package wire

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"time"
)

// LineReader reads `\n`-terminated lines of at most max bytes (plus the
// terminator). Unlike bufio.Reader.ReadSlice it keeps a partial line across
// a read-deadline error, and it never holds more than about 2×max bytes.
// Unlike ReadLine it does not skip the rest of a line that is too long: the
// protocols that use it answer ERROR and resynchronise on the next line.
type LineReader struct {
	r       *bufio.Reader
	max     int
	tooLong error
	partial []byte
}

// NewLineReader reads lines of at most max bytes from r; a longer line is
// the error tooLong (each protocol has its own sentinel).
func NewLineReader(r io.Reader, max int, tooLong error) *LineReader {
	return &LineReader{r: bufio.NewReaderSize(r, max+2), max: max, tooLong: tooLong}
}

// ReadLine returns the next line without its `\n` or `\r\n`.
func (lr *LineReader) ReadLine() (string, error) {
	for {
		chunk, err := lr.r.ReadSlice('\n')
		if len(lr.partial)+len(chunk) > lr.max+2 {
			lr.partial = nil
			return "", lr.tooLong
		}
		lr.partial = append(lr.partial, chunk...)
		switch {
		case err == nil:
			line := TrimEOL(lr.partial)
			lr.partial = lr.partial[:0]
			if len(line) > lr.max {
				return "", lr.tooLong
			}
			return string(line), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue // the length check above ends this loop
		default:
			return "", err
		}
	}
}

// TrimEOL removes a trailing `\n` or `\r\n`.
func TrimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

// WriteLine writes s and a newline within timeout.
func WriteLine(conn net.Conn, timeout time.Duration, s string) error {
	if err := conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	_, err := io.WriteString(conn, s+"\n")
	return err
}

// Peek waits until at least one byte of the next line has arrived (or the
// read deadline passes), without consuming it.
func (lr *LineReader) Peek() error {
	if len(lr.partial) > 0 {
		return nil
	}
	_, err := lr.r.Peek(1)
	return err
}

// LineSource yields the given lines, or else the lines of in (a client's
// stdin), read on their own goroutine so that cancelling ctx, or closing
// stop (nil: never), is never stuck behind a blocked read.
func LineSource(ctx context.Context, stop <-chan struct{}, lines []string, in io.Reader) func() (string, bool) {
	if len(lines) > 0 || in == nil {
		i := 0
		return func() (string, bool) {
			if i >= len(lines) || ctx.Err() != nil {
				return "", false
			}
			i++
			return lines[i-1], true
		}
	}
	ch := make(chan string)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case ch <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() (string, bool) {
		select {
		case l, ok := <-ch:
			return l, ok
		case <-ctx.Done():
			return "", false
		case <-stop:
			return "", false
		}
	}
}
