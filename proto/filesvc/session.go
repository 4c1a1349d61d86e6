package filesvc

import (
	"context"
	"errors"
	"fmt"
	"github.com/labctl/labctl/proto/internal/wire"
	"io"
	"strings"
)

// Do runs one line typed by a user (or given in a script) and prints the
// server's reply lines to out. Lines go to the server as typed, except:
//
//	get NAME          saves NAME into the download folder, then prints
//	                  "saved PATH (N bytes, sha256 HEX)"
//	put PATH [NAME]   uploads the local file PATH (as NAME, default its base name)
//
// Do reports quit after `exit`. An ERROR reply is printed, not returned.
func (c *Client) Do(ctx context.Context, line string, out io.Writer) (quit bool, err error) {
	line = strings.TrimRight(line, "\r")
	t := strings.TrimSpace(line)
	if t == "put" || strings.HasPrefix(t, "put ") {
		return false, c.doPut(ctx, strings.Fields(t)[1:], out)
	}
	cmd, perr := ParseCommand(line, 1<<62)
	if perr != nil {
		cmd = Command{Kind: Echo, Text: line} // let the server explain
	}
	switch cmd.Kind {
	case Status, List:
		lines, err := c.multi(ctx, t)
		return false, printReply(out, err, append(lines, ".")...)
	case Get:
		path, n, sum, err := c.Download(ctx, cmd.Name)
		return false, printReply(out, err, fmt.Sprintf("START %d", n), "END",
			fmt.Sprintf("saved %s (%d bytes, sha256 %s)", path, n, sum))
	case Exit:
		err := c.Exit(ctx)
		return true, printReply(out, err, "BYE")
	default:
		reply, err := c.Echo(ctx, line)
		return false, printReply(out, err, reply)
	}
}

func (c *Client) doPut(ctx context.Context, args []string, out io.Writer) error {
	if len(args) < 1 || len(args) > 2 {
		fmt.Fprintln(out, "usage: put PATH [NAME]")
		return nil
	}
	name := ""
	if len(args) == 2 {
		name = args[1]
	}
	sum, err := c.Upload(ctx, args[0], name)
	return printReply(out, err, "OK "+sum)
}

// printReply prints lines on success and the server's ERROR line on a
// ServerError (which is not fatal); other errors are returned.
func printReply(out io.Writer, err error, lines ...string) error {
	var se *ServerError
	if errors.As(err, &se) {
		fmt.Fprintln(out, wire.Escape(se.Line))
		return nil
	}
	if err != nil {
		return err
	}
	for _, l := range lines {
		fmt.Fprintln(out, wire.Escape(l))
	}
	return nil
}

// Run runs the given command lines, or (if there are none) the lines read
// from in, printing replies to out; it sends `exit` at the end unless a
// line did. The first transport error stops it.
func (c *Client) Run(ctx context.Context, cmds []string, in io.Reader, out io.Writer) error {
	fmt.Fprintln(out, c.Name)
	next := wire.LineSource(ctx, nil, cmds, in)
	for {
		line, ok := next()
		if !ok {
			break
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		quit, err := c.Do(ctx, line, out)
		if err != nil {
			return err
		}
		if quit {
			return nil
		}
	}
	if ctx.Err() != nil {
		c.Close()
		return ctx.Err()
	}
	_, err := c.Do(ctx, "exit", out)
	return err
}
