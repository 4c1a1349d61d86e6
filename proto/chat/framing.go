package chat

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/labctl/labctl/proto/internal/filestore"
	"github.com/labctl/labctl/proto/internal/wire"
)

// ReplyWords are the first words of reply lines. A line from the server
// whose first word (up to a space or the end) is one of these, in these
// capitals, is a reply to a command (or the ERROR of a refused line);
// nothing else starts that way: no chat line, no listing entry.
var ReplyWords = []string{"OK", "ERROR", "FILE", "UDP", "BYE"}

// ReservedPrefixes are the first characters of the seed's announcement
// and private-message lines ("* bob joined", "[private] bob: hi") and of
// the listing terminator ("."): no file name may start with one (a
// nickname cannot: its charset excludes them).
var ReservedPrefixes = []string{"*", "[", "."}

// reserved says why s may not be a nickname or a file name, or "" if it
// may: it must not start with a reply word in capitals (so a naive
// startswith("ERROR") never matches "ERRORbot: hi"), its first word must
// not be a reply word in any case, and it must not start with a reserved
// prefix.
func reserved(s string) string {
	first, _, _ := strings.Cut(s, " ")
	for _, w := range ReplyWords {
		if strings.HasPrefix(s, w) || strings.EqualFold(first, w) {
			return fmt.Sprintf("may not start with the reserved word %q", w)
		}
	}
	for _, p := range ReservedPrefixes {
		if strings.HasPrefix(s, p) {
			return fmt.Sprintf("may not start with %q (reserved for server lines)", p)
		}
	}
	return ""
}

// ValidateFileName checks a file name for /upload, /download, /get and
// the /files listing: the file store's rules (flat, no control
// characters, no leading "." …) and, so that a listing entry never reads
// as another kind of line, no reserved start (reserved) and no
// "<word>:" start that reads as a chat line "<nick>: <text>".
func ValidateFileName(name string) error {
	if err := filestore.ValidateName(name); err != nil {
		return err
	}
	if why := reserved(name); why != "" {
		return errors.New("file name " + why)
	}
	if i := strings.IndexByte(name, ':'); i > 0 && nickChars(name[:i]) {
		return errors.New("file name may not start with \"<word>:\" (it would read as a chat line)")
	}
	return nil
}

func nickChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}

// Escape makes s safe to show on a terminal and to forward, on one line:
// wire.Escape (every control character — C0 with tab, CR and LF, DEL, C1
// — as a Go escape such as "\x1b", "\r", "\u0085"; each invalid UTF-8
// byte as "\xHH"; a backslash as "\\"), and also the invisible controls
// that reorder or break what a terminal shows (the Unicode bidirectional
// marks and overrides, U+2028 and U+2029) as "\uHHHH". Other characters
// pass unchanged. The server applies it to chat and /msg text and to
// what it prints; the client prints every line through Printable.
func Escape(s string) string {
	s = wire.Escape(s)
	if !strings.ContainsFunc(s, invisibleControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s { // valid UTF-8 now
		if invisibleControl(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Printable is what the client prints of a received line: every control
// character, invalid byte and invisible control escaped as Escape does,
// but backslashes kept, so a line the server already escaped shows as
// sent (not doubled) and no line from any server can move the cursor,
// clear the screen or overwrite a line.
func Printable(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r == utf8.RuneError || unicode.IsControl(r) || invisibleControl(r) }) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r):
			q := strconv.QuoteRuneToASCII(r) // '\x1b', '\r', '\u0085'
			b.WriteString(q[1 : len(q)-1])
		case invisibleControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// invisibleControl: the Trojan-Source characters and line separators.
func invisibleControl(r rune) bool {
	return r == 0x061c || r == 0x200e || r == 0x200f || r >= 0x202a && r <= 0x202e ||
		r >= 0x2066 && r <= 0x2069 || r == 0x2028 || r == 0x2029
}

// Kind of a line received from the server.
type LineKind int

// The kinds of server line, as the framing tells them apart.
const (
	ChatLine  LineKind = iota // "<nick>: <text>", "[private] <nick>: <text>", "* <nick> joined|left"
	ReplyLine                 // starts with a reply word: OK, ERROR, FILE, UDP, BYE
	EntryLine                 // anything else: an entry of a /who or /files listing, or its "."
)

// Classify tells what kind of line l (without its line ending) is, by its
// framing alone (docs/PROTOCOLS.md section 4). Inside a listing, every
// line up to "." is an entry whatever it looks like; Classify is for the
// lines between replies.
func Classify(l string) LineKind {
	first, _, _ := strings.Cut(l, " ")
	for _, w := range ReplyWords {
		if first == w {
			return ReplyLine
		}
	}
	if rest, ok := strings.CutPrefix(l, "* "); ok {
		nick, what, _ := strings.Cut(rest, " ")
		if nickChars(nick) && (what == "joined" || what == "left") {
			return ChatLine
		}
	}
	l = strings.TrimPrefix(l, "[private] ")
	if nick, _, ok := strings.Cut(l, ": "); ok && nickChars(nick) {
		return ChatLine
	}
	return EntryLine
}
