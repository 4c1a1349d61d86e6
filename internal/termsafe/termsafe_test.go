package termsafe

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestLogKeepsTextAndEscapesBinary(t *testing.T) {
	for in, want := range map[string]string{
		"plain text":               "plain text",
		"tab\there":                "tab\there",
		"café ☕":                   "café ☕",
		"nul\x00 bell\x07 del\x7f": `nul\x00 bell\x07 del\x7f`,
		"50%\r100%":                `50%\r100%`,
		"bad \xff\xfe utf8":        `bad \xff\xfe utf8`,
		"\x1b[31mred\x1b[0m":       "\x1b[31mred\x1b[0m",
		"c1 \u0085 next line":      `c1 \u0085 next line`,
		"\xc3":                     `\xc3`,
		"":                         "",
	} {
		assert.Equal(t, want, Log([]byte(in)), "%q", in)
	}
}

func TestDisplayPassesColourAndNothingElse(t *testing.T) {
	for in, want := range map[string]string{
		"\x1b[31mred\x1b[0m":         "\x1b[31mred\x1b[0m",
		"\x1b[1;38;5;208mbold\x1b[m": "\x1b[1;38;5;208mbold\x1b[m",
		"\x1b[2Jcleared":             `\x1b[2Jcleared`,
		"\x1b[Hhome \x1b[10;5H":      `\x1b[Hhome \x1b[10;5H`,
		"\x1b]0;pwned title\x07":     `\x1b]0;pwned title\x07`,
		"\x1b]0;title\x1b\\":         `\x1b]0;title\x1b\`,
		"overwrite\rX":               `overwrite\rX`,
		"back\bspace":                `back\x08space`,
		"\x1bc reset":                `\x1bc reset`,
		"\x1b[K erase line":          `\x1b[K erase line`,
		"\x1b[":                      `\x1b[`,
		"\x1b[31":                    `\x1b[31`,
		"csi8 \u009b2J":              `csi8 \u009b2J`,
		"rtl \u202eevil":             `rtl \u202eevil`,
		"tab\tok é":                  "tab\tok é",
		"bad \xff":                   `bad \xff`,
		"\x1b[" + string(make([]byte, 0)) + "0000000000000000000000000000000000000000m": `\x1b[0000000000000000000000000000000000000000m`,
	} {
		assert.Equal(t, want, Display(in), "%q", in)
	}
}

func TestDisplayOfLogOutputIsFree(t *testing.T) {
	// What Log stored shows the same through Display, except escapes
	// that were not colour.
	in := []byte("\x1b[32mok\x1b[0m \x1b[2J \x00 \r")
	assert.Equal(t, "\x1b[32mok\x1b[0m \\x1b[2J \\x00 \\r", Display(Log(in)))
}
