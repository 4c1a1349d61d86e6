package stopwait

import (
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"

	"github.com/labctl/labctl/proto/internal/wire"
)

// MaxFrame is the longest frame (a line or a datagram), not counting its
// `\n` or `\r\n`. MaxMessage leaves room for the longest seq and checksum.
const (
	MaxFrame   = 8192
	MaxMessage = MaxFrame - 20 - 1 - 8 - 1
)

// Tchau is the line that ends a session; the server answers Bye.
const (
	Tchau = "TCHAU"
	Bye   = "BYE"
)

// Sentinel errors, for errors.Is.
var (
	// ErrBadSeq: the line does not begin with a sequence number; the
	// server answers ERROR.
	ErrBadSeq = errors.New("bad sequence number")
	// ErrBadFrame: the seq is readable but the rest is not a frame; the
	// server answers NACK <seq>.
	ErrBadFrame   = errors.New("bad frame")
	ErrBadReply   = errors.New("bad reply")
	ErrFrameLong  = wire.ErrLineTooLong // a frame over MaxFrame bytes
	ErrMessageBad = errors.New("bad message")
)

// Frame is one `<seq> <checksum> <message>` line.
type Frame struct {
	Seq      uint64
	Checksum uint32
	Message  string
}

// Checksum is CRC-32 (IEEE) of the message bytes.
func Checksum(msg string) uint32 { return crc32.ChecksumIEEE([]byte(msg)) }

// NewFrame builds the intact frame for msg.
func NewFrame(seq uint64, msg string) Frame {
	return Frame{Seq: seq, Checksum: Checksum(msg), Message: msg}
}

// String is the frame's line, without the newline.
func (f Frame) String() string {
	return fmt.Sprintf("%d %08x %s", f.Seq, f.Checksum, f.Message)
}

// Intact reports whether the checksum matches the message.
func (f Frame) Intact() bool { return f.Checksum == Checksum(f.Message) }

// ParseFrame parses a line without its terminator. An error wrapping
// ErrBadFrame still returns the frame's Seq.
func ParseFrame(line string) (Frame, error) {
	seqText, rest, ok := strings.Cut(line, " ")
	seq, err := parseSeq(seqText)
	if err != nil {
		return Frame{}, err
	}
	f := Frame{Seq: seq}
	if !ok {
		return f, fmt.Errorf("%w: no checksum", ErrBadFrame)
	}
	sumText, msg, ok := strings.Cut(rest, " ")
	if !ok {
		return f, fmt.Errorf("%w: no space after the checksum", ErrBadFrame)
	}
	if len(sumText) != 8 || strings.Trim(sumText, "0123456789abcdef") != "" {
		return f, fmt.Errorf("%w: checksum is not 8 lowercase hex digits", ErrBadFrame)
	}
	sum, err := strconv.ParseUint(sumText, 16, 32)
	if err != nil {
		return f, fmt.Errorf("%w: checksum: %w", ErrBadFrame, err)
	}
	f.Checksum = uint32(sum)
	f.Message = msg
	return f, nil
}

// parseSeq accepts canonical decimal: "0" or digits without a leading zero.
func parseSeq(s string) (uint64, error) {
	if s == "" || len(s) > 20 || strings.Trim(s, "0123456789") != "" || (s[0] == '0' && len(s) > 1) {
		return 0, fmt.Errorf("%w: %q", ErrBadSeq, clip(s))
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrBadSeq, clip(s))
	}
	return n, nil
}

// Reply is one server line: ACK <seq>, NACK <seq>, BYE or ERROR <reason>.
type Reply struct {
	Kind   string // "ACK", "NACK", "BYE" or "ERROR"
	Seq    uint64 // for ACK and NACK
	Reason string // for ERROR
}

func (r Reply) String() string {
	switch r.Kind {
	case "ACK", "NACK":
		return fmt.Sprintf("%s %d", r.Kind, r.Seq)
	case "ERROR":
		return "ERROR " + r.Reason
	}
	return r.Kind
}

// ParseReply parses a server line without its terminator.
func ParseReply(line string) (Reply, error) {
	kind, arg, _ := strings.Cut(line, " ")
	switch kind {
	case "ACK", "NACK":
		seq, err := parseSeq(arg)
		if err != nil {
			return Reply{}, fmt.Errorf("%w: %w", ErrBadReply, err)
		}
		return Reply{Kind: kind, Seq: seq}, nil
	case "ERROR":
		return Reply{Kind: kind, Reason: arg}, nil
	case Bye:
		if line == Bye {
			return Reply{Kind: Bye}, nil
		}
	}
	return Reply{}, fmt.Errorf("%w: %q", ErrBadReply, clip(line))
}

// SplitMessages splits one input line into messages on "||". Blanks around
// each message are dropped and empty messages skipped. A message that is
// exactly TCHAU ends the session: it and what follows are not returned,
// and tchau is true.
func SplitMessages(line string) (msgs []string, tchau bool) {
	for _, m := range strings.Split(line, "||") {
		m = strings.TrimSpace(m)
		switch m {
		case "":
			continue
		case Tchau:
			return msgs, true
		}
		msgs = append(msgs, m)
	}
	return msgs, false
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
