package xy

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/labctl/labctl/proto/internal/wire"
)

// MaxLine is the longest message, not counting its `\n` or `\r\n`, that
// either side reads. A longer one earns `ERROR line too long` and a closed
// connection, so a client cannot make the server buffer without bound.
const MaxLine = 4096

// MaxName is the longest name, in bytes, the server accepts and the
// reference client sends. It keeps every acknowledgment line, two names and
// the fixed words and its `\n`, within MaxReply, so that every client can
// read it: a student's `recv(1024)` gets it whole, in one segment.
const MaxName = (MaxReply - len("X:  received before Y: \n")) / 2

// MaxReply is the longest line the server sends, its `\n` included.
const MaxReply = 1024

// Sentinel errors, for errors.Is. ErrLineTooLong is the wire package's.
var (
	ErrBadMessage  = errors.New("bad message")
	ErrLineTooLong = wire.ErrLineTooLong
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

// ParseConnected returns the letter in a "Client X connected" line. Other
// servers decorate it ("From Server: Client X connected", "You are Client
// Y"): a line that names exactly one of "Client X" and "Client Y" counts.
func ParseConnected(line string) (byte, error) {
	for _, l := range []byte{'X', 'Y'} {
		if line == ConnectedLine(l) {
			return l, nil
		}
	}
	hasX, hasY := strings.Contains(line, "Client X"), strings.Contains(line, "Client Y")
	switch {
	case hasX && !hasY:
		return 'X', nil
	case hasY && !hasX:
		return 'Y', nil
	}
	return 0, fmt.Errorf("%w: %q is not \"Client X connected\" or \"Client Y connected\"", ErrBadMessage, clip(line))
}

// ParseMessage returns the name in a client's message: the seed's text form
// "Client <letter>: <name>" (a leading "Client X:" or "Client Y:" is
// stripped) or the figures' bare "<name>" (the whole message). Blanks
// around the name are ignored. A message that names the other letter, or
// whose name fails CheckName, is ErrBadMessage.
func ParseMessage(msg string, letter byte) (string, error) {
	name := msg
	for _, l := range []byte{'X', 'Y'} {
		rest, ok := strings.CutPrefix(msg, fmt.Sprintf("Client %c:", l))
		if !ok {
			continue
		}
		if l != letter {
			return "", fmt.Errorf("%w: you are client %c, not %c", ErrBadMessage, letter, l)
		}
		name = rest
	}
	name = strings.Trim(name, " \t")
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
	case len(name) > MaxName:
		return fmt.Errorf("%w: name too long (max %d bytes)", ErrBadMessage, MaxName)
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
