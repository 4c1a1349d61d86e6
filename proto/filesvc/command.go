package filesvc

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/labctl/labctl/proto/internal/filestore"
	"github.com/labctl/labctl/proto/internal/wire"
)

// Kind is what a command line asks for.
type Kind int

// The commands of the file server.
const (
	Echo Kind = iota
	Status
	List
	Get
	Put
	Exit
)

// Command is one parsed command line.
type Command struct {
	Kind Kind
	Text string // Echo: the line as received
	Name string // Get, Put
	Size int64  // Put: payload bytes that follow the line
}

// ParseError is a refused command line. Follow is the number of payload
// bytes the client still sends after the line (a put whose size parsed but
// whose name did not): the server reads and drops them to stay in step. -1
// means the payload length is unknown and the connection cannot continue.
type ParseError struct {
	Reason string
	Follow int64
}

func (e *ParseError) Error() string { return e.Reason }

// ParseCommand parses one line (without its line ending). Uploads larger
// than maxSize are refused. Command words match exactly and in lower case,
// with surrounding spaces ignored; everything else is text to echo.
func ParseCommand(line string, maxSize int64) (Command, error) {
	if line == "" {
		return Command{}, &ParseError{Reason: "empty line"}
	}
	if !utf8.ValidString(line) {
		return Command{}, &ParseError{Reason: "line is not valid UTF-8"}
	}
	t := strings.TrimSpace(line)
	switch {
	case t == "status":
		return Command{Kind: Status}, nil
	case t == "list":
		return Command{Kind: List}, nil
	case t == "exit":
		return Command{Kind: Exit}, nil
	case t == "get" || strings.HasPrefix(t, "get "):
		return parseGet(t)
	case t == "put" || strings.HasPrefix(t, "put "):
		return parsePut(t, maxSize)
	}
	return Command{Kind: Echo, Text: line}, nil
}

func parseGet(t string) (Command, error) {
	name := strings.TrimSpace(strings.TrimPrefix(t, "get"))
	if name == "" {
		return Command{}, &ParseError{Reason: "usage: get <name>"}
	}
	if err := filestore.ValidateName(name); err != nil {
		return Command{}, &ParseError{Reason: err.Error()}
	}
	return Command{Kind: Get, Name: name}, nil
}

func parsePut(t string, maxSize int64) (Command, error) {
	rest := strings.TrimSpace(strings.TrimPrefix(t, "put"))
	i := strings.LastIndexByte(rest, ' ')
	if i < 0 {
		return Command{}, &ParseError{Reason: "usage: put <name> <size>"}
	}
	name, sizeText := strings.TrimSpace(rest[:i]), rest[i+1:]
	size, err := wire.ParseSize(sizeText, maxSize)
	if err != nil {
		// A well-formed size over the limit means that many bytes are on
		// their way and will not be read; anything else announced nothing.
		follow := int64(0)
		if isDigits(sizeText) {
			follow = -1
		}
		return Command{}, &ParseError{Reason: err.Error(), Follow: follow}
	}
	if err := filestore.ValidateName(name); err != nil {
		return Command{}, &ParseError{Reason: err.Error(), Follow: size}
	}
	return Command{Kind: Put, Name: name, Size: size}, nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// reason turns any parse error into the words after "ERROR ".
func reason(err error) string {
	var pe *ParseError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return fmt.Sprint(err)
}
