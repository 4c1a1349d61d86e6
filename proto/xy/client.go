package xy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/labctl/labctl/proto/internal/wire"
	"io"
	"net"
	"strings"
	"time"
)

// ErrServer wraps an ERROR line from the server.
var ErrServer = errors.New("server error")

// Client is one X/Y client: it learns its letter, sends its name, and
// prints what it sent and what came back.
type Client struct {
	Name    string        // the name to send; if empty it is read from In
	In      io.Reader     // where a missing name is typed (one line)
	Prompt  io.Writer     // where the question for the name goes (nil: nowhere)
	Out     io.Writer     // program output: the server's lines and the line sent
	Timeout time.Duration // longest wait for each server line; 0 waits until ctx is done
	// Bare sends the seed figures' form: the name alone, with no newline,
	// as a student's client does (send(name.encode())), instead of the
	// text's "Client X: <name>\n".
	Bare  bool
	Pause time.Duration // quiet time that ends a server line sent without a newline (0: wire.DefaultPause; <0: lines only)
}

// Run talks to the server on conn and closes conn when it returns. It
// returns an error wrapping ErrServer if the server answers ERROR.
func (c *Client) Run(ctx context.Context, conn net.Conn) error {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	out := c.Out
	if out == nil {
		out = io.Discard
	}
	mr := wire.NewMessageReader(conn, MaxLine, c.Pause)

	line, err := c.readLine(ctx, mr)
	if err != nil {
		return fmt.Errorf("wait for partner: %w", err)
	}
	fmt.Fprintln(out, line)
	letter, err := ParseConnected(line)
	if err != nil {
		return err
	}
	name, err := c.name(letter)
	if err != nil {
		return err
	}
	msg, wireMsg := MessageLine(letter, name), MessageLine(letter, name)+"\n"
	if c.Bare {
		msg, wireMsg = name, name
	}
	if err := conn.SetWriteDeadline(time.Now().Add(DefaultWriteTimeout)); err != nil {
		return err
	}
	if _, err := io.WriteString(conn, wireMsg); err != nil { // one write: one segment
		return fmt.Errorf("send %q: %w", msg, ctxErr(ctx, err))
	}
	fmt.Fprintln(out, msg)

	reply, err := c.readLine(ctx, mr)
	if err != nil {
		return fmt.Errorf("wait for acknowledgment: %w", err)
	}
	fmt.Fprintln(out, reply)
	return nil
}

// readLine reads one server line (or what arrived before a pause); an
// ERROR line becomes an error. What it returns is escaped for printing.
func (c *Client) readLine(ctx context.Context, mr *wire.MessageReader) (string, error) {
	var deadline time.Time
	if c.Timeout > 0 {
		deadline = time.Now().Add(c.Timeout)
	}
	line, err := mr.ReadMessage(ctx, deadline)
	if err != nil {
		return "", ctxErr(ctx, err)
	}
	line = wire.Escape(line)
	if strings.HasPrefix(line, "ERROR") {
		if c.Out != nil {
			fmt.Fprintln(c.Out, line)
		}
		return "", fmt.Errorf("%w: %s", ErrServer, line)
	}
	return line, nil
}

func (c *Client) name(letter byte) (string, error) {
	name := strings.TrimSpace(c.Name)
	if name == "" {
		if c.In == nil {
			return "", fmt.Errorf("%w: no name given", ErrBadMessage)
		}
		if c.Prompt != nil {
			fmt.Fprintf(c.Prompt, "Client %c, enter a name: ", letter)
		}
		sc := bufio.NewScanner(io.LimitReader(c.In, MaxLine+2))
		if !sc.Scan() {
			return "", fmt.Errorf("read name: %w", errors.Join(sc.Err(), io.ErrUnexpectedEOF))
		}
		name = strings.TrimSpace(sc.Text())
	}
	if err := CheckName(name); err != nil {
		return "", err
	}
	return name, nil
}

// ctxErr prefers the context's error: a read on a connection closed by
// cancellation reports that, not "use of closed network connection".
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
