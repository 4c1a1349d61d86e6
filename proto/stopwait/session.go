package stopwait

import (
	"errors"
	"fmt"
)

// session is the receiver's state for one client: the next seq it expects.
type session struct {
	expected uint64
}

// verdict is what the server does with one frame.
type verdict struct {
	reply   string
	deliver bool   // print msg: a new message, in order
	msg     string // the message to deliver
	end     bool   // TCHAU: the session is over
}

func (s *session) handle(line string) verdict {
	if line == Tchau {
		return verdict{reply: Bye, end: true}
	}
	f, err := ParseFrame(line)
	switch {
	case errors.Is(err, ErrBadFrame):
		return verdict{reply: Reply{Kind: "NACK", Seq: f.Seq}.String()}
	case err != nil:
		return verdict{reply: fmt.Sprintf("ERROR %v", err)}
	case !f.Intact():
		return verdict{reply: Reply{Kind: "NACK", Seq: f.Seq}.String()}
	case f.Seq == s.expected && f.Message == Tchau:
		// A client written from the contract may frame TCHAU like any
		// message: ACK it so its stop-and-wait completes, but it is the end
		// of the session, not data.
		s.expected++
		return verdict{reply: Reply{Kind: "ACK", Seq: f.Seq}.String(), end: true}
	case f.Seq == s.expected:
		s.expected++
		return verdict{reply: Reply{Kind: "ACK", Seq: f.Seq}.String(), deliver: true, msg: f.Message}
	case f.Seq < s.expected: // a retransmission whose ACK was lost or late
		return verdict{reply: Reply{Kind: "ACK", Seq: f.Seq}.String()}
	}
	return verdict{reply: Reply{Kind: "NACK", Seq: f.Seq}.String()}
}
