package xy

import (
	"io"

	"github.com/labctl/labctl/proto/internal/wire"
)

// The line handling is shared with the other course programs.
var (
	isTimeout = wire.IsTimeout
	writeLine = wire.WriteLine
)

func newLineReader(r io.Reader, max int) *wire.LineReader {
	return wire.NewLineReader(r, max, ErrLineTooLong)
}
