package chat

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"hi", "/who", "/files", "/quit", "/msg bob hi there", "/msg bob", "/upload a.txt 10",
		"/upload ../x 3", "/upload a 99999999999999999999", "/download a", "/get a", "//x", "/", "", " ", "\xff", "/upload  1",
		"/upload FILE evil.txt 40 5", "/download * admin joined", "/upload alice: hi 3"} {
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
			if ValidateFileName(l.Name) != nil {
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
		if IsCommand(line) != (l.Kind != Say && l.Kind != Empty) {
			t.Fatalf("%q: IsCommand %v but kind %v: the client would miscount replies", line, IsCommand(line), l.Kind)
		}
	})
}

func FuzzValidateNick(f *testing.F) {
	for _, s := range []string{"alice", "", "a b", "*", "ERROR", strings.Repeat("x", 40), "é", "ok", "OKbot", "Okan"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, nick string) {
		if ValidateNick(nick) != nil {
			return
		}
		if len(nick) == 0 || len(nick) > MaxNickLen || strings.ContainsAny(nick, " :*[]/.\r\n") {
			t.Fatalf("accepted %q", nick)
		}
	})
}

// FuzzFramingCannotBeForged: whatever nickname, file name and text pass
// the server's checks, the lines the server builds from them are read as
// what they are: chat as chat, listing entries never as chat, a reply or
// the listing's end.
func FuzzFramingCannotBeForged(f *testing.F) {
	f.Add("alice", "notes.txt", "hello")
	f.Add("ERROR", "FILE evil.txt 40", "OK 00")
	f.Add("bob", "* admin joined", "\r* root joined")
	f.Add("x", "alice: hi", "\x1b[2J")
	f.Fuzz(func(t *testing.T, nick, name, text string) {
		msg := Escape(text)
		if strings.ContainsFunc(msg, func(r rune) bool { return unicode.IsControl(r) || invisibleControl(r) }) || !utf8.ValidString(msg) {
			t.Fatalf("Escape(%q) = %q holds a control character", text, msg)
		}
		if ValidateNick(nick) == nil {
			for _, l := range []string{nick + ": " + msg, "[private] " + nick + ": " + msg, "* " + nick + " joined", "* " + nick + " left"} {
				if k := Classify(l); k != ChatLine {
					t.Fatalf("%q from nick %q read as %v", l, nick, k)
				}
			}
			if Classify(nick) != EntryLine {
				t.Fatalf("nick %q in /who read as %v", nick, Classify(nick))
			}
		}
		if ValidateFileName(name) == nil {
			if k := Classify(name); k != EntryLine || name == "." {
				t.Fatalf("file name %q in /files read as %v", name, k)
			}
			first, _, _ := strings.Cut(name, " ")
			for _, w := range ReplyWords {
				if strings.HasPrefix(name, w) || strings.EqualFold(first, w) {
					t.Fatalf("file name %q starts with reply word %q", name, w)
				}
			}
		}
	})
}

// FuzzClientStream: whatever a server sends, the client prints no control
// character and writes no file outside its download folder.
func FuzzClientStream(f *testing.F) {
	for _, s := range []string{"bob: hi\n", "FILE a.txt 3\nabcBYE\n", "alice\n.\n", "\x1b[2J\rx\n", "FILE ../x 1\nz",
		"FILE evil.txt 40\n", "x\nFILE b 1\n.\nFILE c 1\nc", "OK 1\nERROR 2\n\xff\xfe\n", "* a joined\n[private] b: \x07\n"} {
		f.Add([]byte(s))
	}
	base := f.TempDir() // shared by the inputs: only what lands outside "down" matters
	down := filepath.Join(base, "down")
	f.Fuzz(func(t *testing.T, stream []byte) {
		srv, cli := net.Pipe()
		var out syncBuffer
		c := NewClient(cli, ClientConfig{DownloadDir: down, Timeout: time.Second}, &out)
		c.setJoined()
		for _, cmd := range []string{"/download a", "/who", "/download b", "/files", "/msg b x", "/download c"} {
			if _, err := c.expect("", cmd); err != nil { // replies are due: downloads and listings are read
				t.Fatal(err)
			}
		}
		go func() {
			_, _ = srv.Write(stream)
			srv.Close()
		}()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the client did not end with the stream")
		}
		c.Close()
		if s := strings.ReplaceAll(out.String(), "\n", ""); strings.ContainsFunc(s, unicode.IsControl) || !utf8.ValidString(s) {
			t.Fatalf("printed a control character or invalid UTF-8: %q", s)
		}
		entries, err := os.ReadDir(base)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "down" {
				t.Fatalf("a file outside the download folder: %q", e.Name())
			}
		}
	})
}
