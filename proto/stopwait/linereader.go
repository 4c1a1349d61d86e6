package stopwait

import (
	"bufio"
	"errors"
	"io"
	"net"
	"time"
)

// lineReader reads `\n`-terminated lines of at most max bytes (plus the
// terminator). Unlike bufio.Reader.ReadSlice it keeps a partial line across
// a read-deadline error, and it never holds more than about 2×max bytes.
type lineReader struct {
	r       *bufio.Reader
	max     int
	partial []byte
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, max+2), max: max}
}

// readLine returns the next line without its `\n` or `\r\n`.
func (lr *lineReader) readLine() (string, error) {
	for {
		chunk, err := lr.r.ReadSlice('\n')
		if len(lr.partial)+len(chunk) > lr.max+2 {
			lr.partial = nil
			return "", ErrFrameLong
		}
		lr.partial = append(lr.partial, chunk...)
		switch {
		case err == nil:
			line := trimEOL(lr.partial)
			lr.partial = lr.partial[:0]
			if len(line) > lr.max {
				return "", ErrFrameLong
			}
			return string(line), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue // the length check above ends this loop
		default:
			return "", err
		}
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// writeLine writes s and a newline within timeout.
func writeLine(conn net.Conn, timeout time.Duration, s string) error {
	if err := conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	_, err := io.WriteString(conn, s+"\n")
	return err
}
