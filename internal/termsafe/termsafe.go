// Package termsafe makes program output safe to store and to show.
//
// Log keeps a captured line as text: bytes that are not valid UTF-8 and
// control characters other than TAB and ESC become visible escapes, so log
// files stay text (grep does not call them binary). Display then makes a
// stored line safe for a terminal, as `less -R` does: colour (SGR)
// sequences pass, every other escape sequence and control character is
// shown escaped, so a program cannot move the cursor, clear the screen,
// set the window title or overwrite a line of the viewer.
package termsafe

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxSGR bounds the parameters of a colour sequence that Display passes;
// longer ones are escaped.
const maxSGR = 32

// Log returns b as one line of log text: TAB, ESC and printable UTF-8 are
// kept; CR is written \r, other control characters and invalid bytes \xNN
// (C1 controls \u0085 and the like).
func Log(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&sb, `\x%02x`, b[0])
		case r == '\t' || r == 0x1b:
			sb.WriteRune(r)
		default:
			writeRune(&sb, r)
		}
		b = b[n:]
	}
	return sb.String()
}

// Display returns s safe to print on a terminal: SGR sequences (ESC [
// digits and ';' or ':' m) pass; any other ESC, control character,
// bidirectional override and invalid byte is shown escaped.
func Display(s string) string {
	var sb strings.Builder
	sb.Grow(len(s))
	for i := 0; i < len(s); {
		if s[i] == 0x1b {
			if n := sgrLen(s[i:]); n > 0 {
				sb.WriteString(s[i : i+n])
				i += n
				continue
			}
			sb.WriteString(`\x1b`)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			fmt.Fprintf(&sb, `\x%02x`, s[i])
			i++
			continue
		}
		if r == '\t' {
			sb.WriteRune(r)
		} else {
			writeRune(&sb, r)
		}
		i += n
	}
	return sb.String()
}

// sgrLen is the length of the colour sequence s starts with, or 0.
func sgrLen(s string) int {
	if len(s) < 3 || s[1] != '[' {
		return 0
	}
	for j := 2; j < len(s) && j < 2+maxSGR; j++ {
		c := s[j]
		switch {
		case c >= '0' && c <= '9' || c == ';' || c == ':':
		case c == 'm':
			return j + 1
		default:
			return 0
		}
	}
	return 0
}

// writeRune writes r, escaped if it is a control character or a
// bidirectional override (which reorders what a terminal shows).
func writeRune(sb *strings.Builder, r rune) {
	switch {
	case r == '\r':
		sb.WriteString(`\r`)
	case r == '\n':
		sb.WriteString(`\n`)
	case r < 0x20 || r == 0x7f:
		fmt.Fprintf(sb, `\x%02x`, r)
	case r >= 0x80 && r <= 0x9f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		fmt.Fprintf(sb, `\u%04x`, r)
	default:
		sb.WriteRune(r)
	}
}
