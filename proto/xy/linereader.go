package xy

import "github.com/labctl/labctl/proto/internal/wire"

// The line handling is shared with the other course programs.
var (
	isTimeout = wire.IsTimeout
	writeLine = wire.WriteLine
)
