package chat

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, ü and 日本": "plain text, ü and 日本",
		"\r* root joined":      `\r* root joined`,
		"\x1b[2J":              `\x1b[2J`,
		"\x1b]0;title\x07":     `\x1b]0;title\a`,
		"a\bb\x00c\x7f":        `a\bb\x00c\x7f`,
		"\u0085next":           `\u0085next`,
		"abc\u202edcba":        `abc\u202edcba`,
		"\xff\xfe":             `\xff\xfe`,
		`C:\path`:              `C:\\path`,
	} {
		assert.Equal(t, want, Escape(in), "%q", in)
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		`alice: \x1b[2J C:\\path`: `alice: \x1b[2J C:\\path`, // escaped by the server: shown as sent
		"bob: \x1b[2J\r":          `bob: \x1b[2J\r`,
		"\u202eevil\xff":          `\u202eevil\xff`,
		"ü 日本":                    "ü 日本",
	} {
		assert.Equal(t, want, Printable(in), "%q", in)
	}
}

func TestClassify(t *testing.T) {
	for l, want := range map[string]LineKind{
		"alice: hi":                 ChatLine,
		"alice: ERROR x":            ChatLine,
		"[private] bob: psst":       ChatLine,
		"* bob joined":              ChatLine,
		"* bob left":                ChatLine,
		"OK 0123":                   ReplyLine,
		"OK sent to bob":            ReplyLine,
		"ERROR nickname taken":      ReplyLine,
		"FILE a.txt 3":              ReplyLine,
		"UDP 55001 3 abc":           ReplyLine,
		"BYE":                       ReplyLine,
		"alice":                     EntryLine,
		"notes.bin":                 EntryLine,
		".":                         EntryLine,
		"OKAY.txt":                  EntryLine, // refused as a name, but not a reply by its framing
		"* admin joined the admins": EntryLine,
	} {
		assert.Equal(t, want, Classify(l), "%q", l)
	}
}
