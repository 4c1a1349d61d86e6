package chat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/labctl/labctl/proto/internal/filestore"
	"github.com/labctl/labctl/proto/internal/wire"
)

// serveMember reads m's lines until it leaves; it returns why.
func (s *Server) serveMember(ctx context.Context, m *member, mr *wire.MessageReader) string {
	for ctx.Err() == nil {
		m.c.LimitRead(s.cfg.IdleTimeout, time.Time{})
		line, err := mr.ReadMessage(ctx, time.Now().Add(s.cfg.IdleTimeout))
		switch {
		case errors.Is(err, wire.ErrLineTooLong):
			s.reply(m, "ERROR line too long (limit "+strconv.Itoa(s.cfg.MaxLine)+" bytes)")
			continue
		case errors.Is(err, wire.ErrDiscardLimit):
			s.reply(m, s.tooLongClosing())
			return "line too long"
		case ctx.Err() != nil:
			return "server stopping"
		case errors.Is(err, io.EOF):
			return "closed by client"
		case wire.IsTimeout(err):
			s.reply(m, "ERROR idle timeout")
			return "idle timeout"
		case err != nil:
			return "read failed: " + err.Error()
		}
		if done, why := s.line(ctx, m, mr.Reader(), line); done {
			return why
		}
	}
	return "server stopping"
}

// reply queues a command's reply (one line, or a listing) for m.
func (s *Server) reply(m *member, lines ...string) { m.send(item{lines: lines, reply: true}) }

// line acts on one line; done means the connection ends.
func (s *Server) line(ctx context.Context, m *member, br *bufio.Reader, text string) (bool, string) {
	l, err := ParseLine(text, s.cfg.MaxFileSize)
	if err != nil {
		return s.refuse(m, br, err)
	}
	switch l.Kind {
	case Empty:
	case Say:
		line := m.nick + ": " + Escape(l.Text)
		s.broadcast(m, line)
		s.println(line)
	case Who:
		s.reply(m, append(s.Nicks(), ".")...)
	case Msg:
		s.mu.RLock()
		to := s.members[l.Nick]
		s.mu.RUnlock()
		if to != nil {
			to.send(item{lines: []string{"[private] " + m.nick + ": " + Escape(l.Text)}})
			s.reply(m, "OK sent to "+l.Nick)
		} else {
			s.reply(m, "ERROR no such nickname "+Escape(l.Nick))
		}
	case Files:
		names, err := s.store.List()
		if err != nil {
			s.cfg.Logger.Error("list failed", "err", err)
			s.reply(m, "ERROR cannot list the files")
		} else { // names that could read as another line are not shared
			names = slices.DeleteFunc(names, func(n string) bool { return ValidateFileName(n) != nil })
			s.reply(m, append(names, ".")...)
		}
	case Download:
		f, size, err := s.store.Open(l.Name)
		if err != nil {
			s.reply(m, "ERROR "+filestore.Reason(err))
		} else {
			m.send(item{file: f, name: l.Name, size: size})
		}
	case GetUDP:
		s.getUDP(ctx, m, l.Name)
	case Upload:
		return s.upload(m, br, l.Name, l.Size)
	case Quit:
		s.reply(m, "BYE")
		return true, "quit"
	}
	return false, ""
}

func (s *Server) refuse(m *member, br *bufio.Reader, err error) (bool, string) {
	var pe *ParseError
	if !errors.As(err, &pe) {
		pe = &ParseError{Reason: err.Error()}
	}
	if pe.Follow < 0 {
		s.reply(m, "ERROR "+pe.Reason+"; closing, the upload cannot be skipped")
		return true, "bad upload header"
	}
	if pe.Follow > 0 { // skip the payload of a refused upload to stay in step
		if done, why := s.skip(m, br, pe.Follow); done {
			return done, why
		}
	}
	s.reply(m, "ERROR "+pe.Reason)
	return false, ""
}

// rate is the trickle rule for one payload (docs/PROTOCOLS.md section 4):
// after a grace of one RateWindow, every RateWindow must carry MinRate ×
// RateWindow bytes; IOTimeout still bounds each read and write.
func (s *Server) rate(m *member) wire.MinRate {
	m.c.LimitRead(s.cfg.IOTimeout, time.Time{})
	return wire.MinRate{Rate: s.cfg.MinRate, Window: s.cfg.RateWindow}
}

// skip reads and drops the n payload bytes of a refused upload, under the
// same trickle rule as an accepted one.
func (s *Server) skip(m *member, br *bufio.Reader, n int64) (bool, string) {
	if _, err := io.CopyN(io.Discard, wire.NewRateReader(br, m.c, s.rate(m)), n); err != nil {
		return s.cutShort(m, err)
	}
	return false, ""
}

// cutShort ends the connection after a payload that stopped or trickled.
func (s *Server) cutShort(m *member, err error) (bool, string) {
	switch {
	case errors.Is(err, wire.ErrTooSlow):
		s.reply(m, fmt.Sprintf("ERROR upload too slow (under %d bytes/s over %v); closing", s.cfg.MinRate, s.cfg.RateWindow))
		return true, "upload too slow"
	case wire.IsTimeout(err):
		s.reply(m, "ERROR upload timed out")
		return true, "upload timed out"
	}
	return true, "upload cut short"
}

func (s *Server) upload(m *member, br *bufio.Reader, name string, size int64) (bool, string) {
	up, err := s.store.Begin(name, size)
	if err != nil {
		s.cfg.Logger.Error("upload: cannot start", "nick", m.nick, "name", name, "err", err)
		if done, why := s.skip(m, br, size); done {
			return done, why
		}
		s.reply(m, "ERROR "+filestore.Reason(err))
		return false, ""
	}
	if _, err := up.ReadFrom(wire.NewRateReader(br, m.c, s.rate(m))); err != nil {
		up.Abort()
		return s.cutShort(m, err)
	}
	if wire.ExtraBytes(br, m.c, s.cfg.UploadQuiet) {
		up.Abort()
		s.reply(m, "ERROR upload longer than announced; closing")
		return true, "upload longer than announced"
	}
	sum, err := up.Commit()
	if err != nil {
		s.cfg.Logger.Error("upload: commit failed", "nick", m.nick, "name", name, "err", err)
		s.reply(m, "ERROR cannot store the file")
		return false, ""
	}
	s.cfg.Logger.Info("upload", "nick", m.nick, "name", name, "size", size, "sha256", sum)
	s.reply(m, "OK "+sum)
	return false, ""
}
