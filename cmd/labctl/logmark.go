package main

import (
	"io"
	"os"

	"github.com/labctl/labctl/nodes"
)

// logWriter is where labctl's log records go: stderr, each record led by
// the lab's log mark when labctl runs as a program inside a lab, so the
// supervisor tells labctl's own lines from the program's stderr.
func logWriter() io.Writer {
	if m := os.Getenv(nodes.LogMarkEnv); m != "" {
		return markWriter{w: os.Stderr, mark: []byte(m)}
	}
	return os.Stderr
}

// markWriter prefixes each write: slog handlers write one record per call.
type markWriter struct {
	w    io.Writer
	mark []byte
}

func (m markWriter) Write(b []byte) (int, error) {
	if _, err := m.w.Write(append(append([]byte{}, m.mark...), b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}
