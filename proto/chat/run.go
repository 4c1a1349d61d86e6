package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/labctl/labctl/proto/internal/wire"
)

// Run joins and then sends lines: the given ones, or else those read from
// in. With nick empty, the first line is the nickname, and after an ERROR
// the next line is tried. Lines go to the server as typed, except these
// client-side commands (for scripts and labs):
//
//	/upload PATH [NAME]  send the local file PATH (as NAME, default its base name)
//	/sleep DURATION      pause, e.g. /sleep 500ms
//	/wait TEXT           wait (up to WaitTimeout) for a received line containing TEXT
//
// When the input ends, Run sends /quit and waits for the server to close.
func (c *Client) Run(ctx context.Context, nick string, lines []string, in io.Reader) error {
	next := wire.LineSource(ctx, c.ended, lines, in)
	if err := c.runJoin(ctx, nick, next); err != nil {
		c.Close()
		return err
	}
	waitFrom := 0
	for first := true; ; first = false {
		if !first && c.cfg.Delay > 0 {
			if err := sleep(ctx, c.cfg.Delay); err != nil {
				break
			}
		}
		var line string
		var ok bool
		select {
		case <-c.ended:
			return c.endErr()
		default:
			line, ok = next()
		}
		if !ok {
			break
		}
		quit, err := c.runLine(ctx, line, &waitFrom)
		if err != nil {
			var se *ServerError
			if !errors.As(err, &se) {
				c.outMu.Lock()
				fmt.Fprintln(c.cfg.Diag, "error: "+err.Error())
				c.outMu.Unlock()
			}
			if errors.Is(err, errSend) {
				return err
			}
		}
		if quit {
			return nil
		}
	}
	select {
	case <-c.ended:
		return c.endErr()
	default:
	}
	if ctx.Err() != nil {
		c.Close()
		return nil
	}
	return c.Quit(ctx)
}

var errSend = errors.New("connection lost")

func (c *Client) endErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readErr == nil || errors.Is(c.readErr, io.EOF) {
		return nil
	}
	return fmt.Errorf("connection: %w", c.readErr)
}

func (c *Client) runJoin(ctx context.Context, nick string, next func() (string, bool)) error {
	if nick != "" {
		return c.Join(ctx, nick)
	}
	for try := 0; try < maxNickTries; try++ {
		line, ok := next()
		if !ok {
			return errors.New("no nickname given")
		}
		err := c.Join(ctx, strings.TrimSpace(line))
		if err == nil || !strings.Contains(err.Error(), "ERROR") {
			return err
		}
	}
	return errors.New("too many nickname attempts")
}

// runLine handles one input line; quit means the session is over.
func (c *Client) runLine(ctx context.Context, line string, waitFrom *int) (bool, error) {
	t := strings.TrimSpace(line)
	word, rest, _ := strings.Cut(t, " ")
	rest = strings.TrimSpace(rest)
	switch word {
	case "/sleep":
		d, err := time.ParseDuration(rest)
		if err != nil {
			return false, fmt.Errorf("/sleep: %w", err)
		}
		return false, sleep(ctx, d)
	case "/wait":
		_, pos, err := c.await(ctx, *waitFrom, c.cfg.WaitTimeout, func(l string) bool { return strings.Contains(l, rest) })
		if err != nil {
			return false, fmt.Errorf("/wait %q: %w", rest, err)
		}
		*waitFrom = pos
		return false, nil
	case "/upload":
		args := strings.Fields(rest)
		if len(args) < 1 || len(args) > 2 {
			return false, errors.New("usage: /upload PATH [NAME]")
		}
		name := ""
		if len(args) == 2 {
			name = args[1]
		}
		return false, c.Upload(ctx, args[0], name)
	case "/get":
		return false, c.Get(ctx, rest)
	case "/quit":
		return true, c.Quit(ctx)
	}
	return false, c.Send(line)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
