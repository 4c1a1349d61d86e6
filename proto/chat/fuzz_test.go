package chat

import (
	"strings"
	"testing"

	"github.com/labctl/labctl/proto/internal/filestore"
)

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"hi", "/who", "/files", "/quit", "/msg bob hi there", "/msg bob", "/upload a.txt 10",
		"/upload ../x 3", "/upload a 99999999999999999999", "/download a", "/get a", "//x", "/", "", " ", "\xff", "/upload  1"} {
		f.Add(s)
	}
	const max = 1 << 20
	f.Fuzz(func(t *testing.T, line string) {
		l, err := ParseLine(line, max)
		if err != nil {
			pe, ok := err.(*ParseError)
			if !ok || pe.Reason == "" || pe.Follow > max {
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		switch l.Kind {
		case Upload, Download, GetUDP:
			if filestore.ValidateName(l.Name) != nil {
				t.Fatalf("%q: accepted invalid name %q", line, l.Name)
			}
			if l.Size < 0 || l.Size > max {
				t.Fatalf("%q: size %d", line, l.Size)
			}
		case Msg:
			if l.Nick == "" || l.Text == "" || strings.Contains(l.Nick, " ") {
				t.Fatalf("%q: bad msg %#v", line, l)
			}
		case Say:
			if !strings.HasSuffix(line, l.Text) || l.Text == "" {
				t.Fatalf("%q: say %q", line, l.Text)
			}
		}
	})
}

func FuzzValidateNick(f *testing.F) {
	for _, s := range []string{"alice", "", "a b", "*", "ERROR", strings.Repeat("x", 40), "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, nick string) {
		if ValidateNick(nick) != nil {
			return
		}
		if len(nick) == 0 || len(nick) > MaxNickLen || strings.ContainsAny(nick, " :*[]/\r\n") {
			t.Fatalf("accepted %q", nick)
		}
	})
}
