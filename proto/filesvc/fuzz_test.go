package filesvc

import (
	"strings"
	"testing"

	"github.com/labctl/labctl/proto/internal/filestore"
)

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"status", "list", "exit", " exit ", "get a.txt", "get ../../etc/passwd", "get /etc/passwd",
		"put a b 10", "put x 99999999999999999999", "put  5", "put .hidden 3", "hello", "", "get", "put", "put a -1", "put a +1", "\xff"} {
		f.Add(s)
	}
	const max = 1 << 20
	f.Fuzz(func(t *testing.T, line string) {
		cmd, err := ParseCommand(line, max)
		if err != nil {
			pe, ok := err.(*ParseError)
			if !ok || pe.Reason == "" || strings.Contains(pe.Reason, "\n") {
				t.Fatalf("bad error %#v", err)
			}
			if pe.Follow > max {
				t.Fatalf("follow %d over max", pe.Follow)
			}
			return
		}
		switch cmd.Kind {
		case Get, Put:
			if filestore.ValidateName(cmd.Name) != nil {
				t.Fatalf("%q: accepted invalid name %q", line, cmd.Name)
			}
			if cmd.Size < 0 || cmd.Size > max {
				t.Fatalf("%q: size %d", line, cmd.Size)
			}
		case Echo:
			if cmd.Text != line {
				t.Fatalf("echo text %q != line %q", cmd.Text, line)
			}
		}
	})
}
