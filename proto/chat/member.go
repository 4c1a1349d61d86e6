package chat

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/labctl/labctl/proto/internal/filestore"
	"github.com/labctl/labctl/proto/internal/wire"
)

// serveMember reads m's lines until it leaves; it returns why.
func (s *Server) serveMember(ctx context.Context, m *member, br *bufio.Reader) string {
	for ctx.Err() == nil {
		m.c.LimitRead(s.cfg.IdleTimeout, time.Now().Add(s.cfg.IdleTimeout))
		line, err := wire.ReadLine(br, s.cfg.MaxLine)
		switch {
		case errors.Is(err, wire.ErrLineTooLong):
			m.send(item{lines: []string{"ERROR line too long (limit " + strconv.Itoa(s.cfg.MaxLine) + " bytes)"}})
			continue
		case errors.Is(err, io.EOF):
			return "closed by client"
		case wire.IsTimeout(err):
			m.send(item{lines: []string{"ERROR idle timeout"}})
			return "idle timeout"
		case err != nil:
			return "read failed: " + err.Error()
		}
		if done, why := s.line(ctx, m, br, line); done {
			return why
		}
	}
	return "server stopping"
}

func (s *Server) reply(m *member, lines ...string) { m.send(item{lines: lines}) }

// line acts on one line; done means the connection ends.
func (s *Server) line(ctx context.Context, m *member, br *bufio.Reader, text string) (bool, string) {
	l, err := ParseLine(text, s.cfg.MaxFileSize)
	if err != nil {
		return s.refuse(m, br, err)
	}
	switch l.Kind {
	case Empty:
	case Say:
		s.broadcast(m, m.nick+": "+l.Text)
		s.println(m.nick + ": " + l.Text)
	case Who:
		s.reply(m, append(s.Nicks(), ".")...)
	case Msg:
		s.mu.RLock()
		to := s.members[l.Nick]
		s.mu.RUnlock()
		if to != nil {
			to.send(item{lines: []string{"[private] " + m.nick + ": " + l.Text}})
		} else {
			s.reply(m, "ERROR no such nickname "+l.Nick)
		}
	case Files:
		names, err := s.store.List()
		if err != nil {
			s.cfg.Logger.Error("list failed", "err", err)
			s.reply(m, "ERROR cannot list the files")
		} else {
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
		m.c.LimitRead(s.cfg.IOTimeout, wire.TransferCap(pe.Follow, s.cfg.IOTimeout, s.cfg.MinRate))
		if _, err := io.CopyN(io.Discard, br, pe.Follow); err != nil {
			return true, "upload cut short"
		}
	}
	s.reply(m, "ERROR "+pe.Reason)
	return false, ""
}

func (s *Server) upload(m *member, br *bufio.Reader, name string, size int64) (bool, string) {
	m.c.LimitRead(s.cfg.IOTimeout, wire.TransferCap(size, s.cfg.IOTimeout, s.cfg.MinRate))
	up, err := s.store.Begin(name, size)
	if err != nil {
		s.cfg.Logger.Error("upload: cannot start", "nick", m.nick, "name", name, "err", err)
		if _, err := io.CopyN(io.Discard, br, size); err != nil {
			return true, "upload cut short"
		}
		s.reply(m, "ERROR "+filestore.Reason(err))
		return false, ""
	}
	if _, err := up.ReadFrom(br); err != nil {
		up.Abort()
		if wire.IsTimeout(err) {
			s.reply(m, "ERROR upload timed out")
		}
		return true, "upload cut short"
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
