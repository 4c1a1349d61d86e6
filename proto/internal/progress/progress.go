// Package progress draws transfer progress bars on a terminal, and nothing
// anywhere else (pipes, files, CI logs stay clean).
package progress

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Func starts a bar for a transfer of total bytes; write the bytes moved to
// it and close it when done (closing early leaves the bar where it is).
type Func func(desc string, total int64) io.WriteCloser

// For returns a Func drawing on w when enabled and w is a terminal, else nil.
func For(w *os.File, enabled bool) Func {
	if !enabled || w == nil || !isTerminal(w) {
		return nil
	}
	return func(desc string, total int64) io.WriteCloser {
		return &bar{progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)}
	}
}

type bar struct{ *progressbar.ProgressBar }

func (b *bar) Close() error { return b.ProgressBar.Exit() }

func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
