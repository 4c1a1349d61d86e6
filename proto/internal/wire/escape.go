package wire

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Escape makes client data safe to print on a terminal, on one line: every
// control character (C0 including tab, CR and LF, DEL, and C1) is written
// as a Go escape — `\t`, `\r`, `\n`, `\a`, `\b`, `\f`, `\v`, else `\xHH`
// (below U+0080) or `\u00HH` (C1) — each byte of invalid UTF-8 as `\xHH`,
// and a backslash as `\\`, so the escaped text reads back unambiguously
// (strconv.Unquote of `"` + it + `"` when it holds no `"`). Printable
// characters, non-ASCII letters included, pass unchanged.
func Escape(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[i]))
		case r == '\\':
			b.WriteString(`\\`)
		case isControl(r):
			q := strconv.QuoteRuneToASCII(r) // e.g. '\n', '\x1b', '\u0085'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' || c >= 0x80 {
			if c < 0x80 {
				return true
			}
			r, n := utf8.DecodeRuneInString(s[i:])
			if (r == utf8.RuneError && n == 1) || isControl(r) {
				return true
			}
			i += n - 1
		}
	}
	return false
}

func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&0xf]})
}
