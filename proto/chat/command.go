package chat

import (
	"errors"
	"fmt"
	"strings"

	"github.com/labctl/labctl/proto/internal/wire"
)

// MaxNickLen is the longest nickname in bytes.
const MaxNickLen = 32

// ValidateNick checks a nickname: 1 to MaxNickLen ASCII letters, digits,
// '_' or '-', not starting with a reply word in capitals and not a reply
// word in any case (ReplyWords). The charset keeps chat lines unambiguous
// (no space, ':', "*" or "["); the reserved words keep "<nick>: <text>"
// from starting like a reply ("ERROR: …", "OKbot: …").
func ValidateNick(nick string) error {
	if nick == "" {
		return errors.New("empty nickname")
	}
	if len(nick) > MaxNickLen {
		return fmt.Errorf("nickname longer than %d characters", MaxNickLen)
	}
	for _, c := range nick {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return errors.New("nickname may contain only letters, digits, '_' and '-'")
		}
	}
	if why := reserved(nick); why != "" {
		return errors.New("nickname " + why)
	}
	return nil
}

// Kind is what a line from a joined client asks for.
type Kind int

// The kinds of line.
const (
	Say Kind = iota // a message to everyone else
	Who
	Msg
	Upload
	Files
	Download
	GetUDP
	Quit
	Empty // a blank line: ignored
)

// Line is one parsed line from a joined client.
type Line struct {
	Kind Kind
	Text string // Say, Msg
	Nick string // Msg: the recipient
	Name string // Upload, Download, GetUDP
	Size int64  // Upload: payload bytes that follow
}

// ParseError is a refused line. Follow is how many payload bytes still come
// (an /upload whose size parsed but whose name did not); -1: unknown, the
// connection cannot continue.
type ParseError struct {
	Reason string
	Follow int64
}

func (e *ParseError) Error() string { return e.Reason }

// ParseLine parses a line from a joined client (without its line ending).
// Lines starting with "/" are commands; "//" escapes a message that starts
// with "/" (it is sent with one "/" dropped). Uploads over maxSize are
// refused. Text is returned as received: the server escapes it (Escape).
func ParseLine(line string, maxSize int64) (Line, error) {
	if strings.TrimSpace(line) == "" {
		return Line{Kind: Empty}, nil
	}
	if strings.HasPrefix(line, "//") {
		return Line{Kind: Say, Text: line[1:]}, nil
	}
	if !strings.HasPrefix(line, "/") {
		return Line{Kind: Say, Text: line}, nil
	}
	word, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	rest = strings.TrimSpace(rest)
	switch word {
	case "/who", "/files", "/quit":
		if rest != "" {
			return Line{}, &ParseError{Reason: "usage: " + word}
		}
		return Line{Kind: map[string]Kind{"/who": Who, "/files": Files, "/quit": Quit}[word]}, nil
	case "/msg":
		nick, text, _ := strings.Cut(rest, " ")
		text = strings.TrimSpace(text)
		if nick == "" || text == "" {
			return Line{}, &ParseError{Reason: "usage: /msg <nick> <text>"}
		}
		return Line{Kind: Msg, Nick: nick, Text: text}, nil
	case "/download", "/get":
		if rest == "" {
			return Line{}, &ParseError{Reason: "usage: " + word + " <name>"}
		}
		if err := ValidateFileName(rest); err != nil {
			return Line{}, &ParseError{Reason: err.Error()}
		}
		k := Download
		if word == "/get" {
			k = GetUDP
		}
		return Line{Kind: k, Name: rest}, nil
	case "/upload":
		return parseUpload(rest, maxSize)
	}
	return Line{}, &ParseError{Reason: fmt.Sprintf("unknown command %s (try /who, /msg, /upload, /files, /download, /get, /quit; // sends a line starting with /)", Escape(word))}
}

func parseUpload(rest string, maxSize int64) (Line, error) {
	i := strings.LastIndexByte(rest, ' ')
	if i < 0 {
		return Line{}, &ParseError{Reason: "usage: /upload <name> <size>"}
	}
	name, sizeText := strings.TrimSpace(rest[:i]), rest[i+1:]
	size, err := wire.ParseSize(sizeText, maxSize)
	if err != nil {
		follow := int64(0) // a non-number announced no payload
		if sizeText != "" && strings.Trim(sizeText, "0123456789") == "" {
			follow = -1 // a number over the limit: that many bytes are coming
		}
		return Line{}, &ParseError{Reason: err.Error(), Follow: follow}
	}
	if err := ValidateFileName(name); err != nil {
		return Line{}, &ParseError{Reason: err.Error(), Follow: size}
	}
	return Line{Kind: Upload, Name: name, Size: size}, nil
}
