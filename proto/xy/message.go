package xy

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLine is the longest line, not counting its `\n` or `\r\n`, that either
// side accepts. A longer line earns `ERROR line too long` and a closed
// connection, so a client cannot make the server buffer without bound.
const MaxLine = 4096

// Sentinel errors, for errors.Is.
var (
	ErrBadMessage  = errors.New("bad message")
	ErrLineTooLong = errors.New("line too long")
)

// ConnectedLine is the line the server sends a client once both clients of
// a pair are connected: "Client X connected" or "Client Y connected".
func ConnectedLine(letter byte) string { return fmt.Sprintf("Client %c connected", letter) }

// MessageLine is the line a client sends: "Client X: Alice".
func MessageLine(letter byte, name string) string {
	return fmt.Sprintf("Client %c: %s", letter, name)
}

// AckLine is the line the server sends to both clients of a pair: the
// message that arrived first, then the other.
func AckLine(first byte, firstName string, second byte, secondName string) string {
	return fmt.Sprintf("%c: %s received before %c: %s", first, firstName, second, secondName)
}

// ParseConnected returns the letter in a "Client X connected" line.
func ParseConnected(line string) (byte, error) {
	for _, l := range []byte{'X', 'Y'} {
		if line == ConnectedLine(l) {
			return l, nil
		}
	}
	return 0, fmt.Errorf("%w: %q is not \"Client X connected\" or \"Client Y connected\"", ErrBadMessage, clip(line))
}

// ParseMessage checks that line is "Client <letter>: <name>" and returns the
// name. Blanks after the colon and at the end are ignored; the name must be
// non-empty valid UTF-8 without control characters.
func ParseMessage(line string, letter byte) (string, error) {
	prefix := fmt.Sprintf("Client %c:", letter)
	rest, ok := strings.CutPrefix(line, prefix)
	if !ok {
		return "", fmt.Errorf("%w: expected \"Client %c: <name>\"", ErrBadMessage, letter)
	}
	name := strings.Trim(rest, " \t")
	if err := CheckName(name); err != nil {
		return "", err
	}
	return name, nil
}

// CheckName reports whether name can be sent in a message.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrBadMessage)
	case len(name) > MaxLine-len("Client X: "):
		return fmt.Errorf("%w: name too long", ErrBadMessage)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: name is not valid UTF-8", ErrBadMessage)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: name holds a control character", ErrBadMessage)
	case strings.Trim(name, " \t") != name:
		return fmt.Errorf("%w: name starts or ends with a blank", ErrBadMessage)
	}
	return nil
}

// clip shortens s for use in an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
