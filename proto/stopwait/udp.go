package stopwait

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// udpSession is a session keyed by the client's address.
type udpSession struct {
	session
	last time.Time
	log  *slog.Logger
}

// ServePacket runs UDP sessions on pc until ctx is cancelled; see the
// package documentation for how a UDP session begins and ends. It closes
// pc before it returns; a clean stop returns nil.
func (s *Server) ServePacket(ctx context.Context, pc net.PacketConn) error {
	srv := s.withDefaults()
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	defer pc.Close()
	srv.println("Server is started")
	srv.log.Info("listening", "net", "udp", "addr", pc.LocalAddr().String())

	u := &udpServer{server: srv, pc: pc, sessions: map[string]*udpSession{}, ended: map[string]time.Time{}}
	srv.log.Info("ended sessions remembered", "age", srv.EndedAge, "max", srv.MaxEnded)
	buf := make([]byte, MaxFrame+3)
	tick := min(srv.IdleTimeout/2, time.Second)
	lastSweep := time.Now()
	failures := 0
	for {
		if err := pc.SetReadDeadline(time.Now().Add(tick)); err != nil {
			return ctxOr(ctx, fmt.Errorf("set deadline: %w", err))
		}
		n, addr, err := pc.ReadFrom(buf)
		if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
			return nil
		}
		if now := time.Now(); now.Sub(lastSweep) >= tick {
			u.sweep(now)
			lastSweep = now
		}
		switch {
		case err == nil:
			failures = 0
			u.handle(buf[:n], addr)
		case isTimeout(err):
		default:
			// Transient errors (e.g. a queued ICMP error) are logged; a
			// socket that keeps failing ends the loop.
			failures++
			srv.log.Warn("read failed", "err", err)
			if failures > 100 {
				return fmt.Errorf("read: %w", err)
			}
		}
	}
}

type udpServer struct {
	*server
	pc       net.PacketConn
	sessions map[string]*udpSession
	// ended holds the sessions that ended by TCHAU less than EndedAge ago,
	// like TCP's TIME-WAIT; endedOrder is the same keys oldest first, so
	// that expiry costs only what expires.
	ended      map[string]time.Time
	endedOrder []endedKey
}

type endedKey struct {
	key string
	at  time.Time
}

func (u *udpServer) handle(datagram []byte, addr net.Addr) {
	if len(datagram) > MaxFrame+2 || len(trimEOL(datagram)) > MaxFrame {
		u.reply(addr, fmt.Sprintf("ERROR frame too long (max %d bytes)", MaxFrame))
		return
	}
	line := string(trimEOL(datagram))
	key := addr.String()
	sess := u.sessions[key]
	if sess == nil {
		if line == Tchau { // a retransmitted TCHAU whose BYE was lost
			u.reply(addr, Bye)
			return
		}
		if _, ok := u.ended[key]; ok {
			if f, err := ParseFrame(line); err == nil && f.Intact() && f.Message == Tchau {
				// A framed TCHAU retransmitted because its ACK was lost.
				u.reply(addr, Reply{Kind: "ACK", Seq: f.Seq}.String())
				return
			}
			// A late duplicate of the ended session must not open a new
			// one and be delivered twice.
			u.reply(addr, "ERROR session ended")
			return
		}
		if _, err := ParseFrame(line); errors.Is(err, ErrBadSeq) {
			u.reply(addr, fmt.Sprintf("ERROR %v", err)) // garbage opens no session
			return
		}
		if len(u.sessions) >= u.MaxSessions || len(u.ended) >= u.MaxEnded {
			u.sweep(time.Now())
		}
		if len(u.sessions) >= u.MaxSessions || len(u.ended) >= u.MaxEnded {
			// At MaxEnded too: forgetting an ended session early could
			// deliver its late duplicate twice, so newcomers wait instead.
			// No answer: the client's timer retransmits, so it waits
			// until a session ends, like a TCP client in the backlog.
			u.log.Debug("sessions full, frame ignored", "remote", key)
			return
		}
		sess = &udpSession{log: u.log.With("net", "udp", "remote", key)}
		u.sessions[key] = sess
		sess.log.Info("session started")
	}
	sess.last = time.Now()
	v := sess.handle(line)
	if v.deliver {
		u.deliver(v.msg)
	}
	if v.end {
		delete(u.sessions, key)
		u.remember(key, time.Now())
		sess.log.Info("session ended", "reason", "TCHAU", "delivered", sess.expected)
	}
	sess.log.Debug("frame", "reply", v.reply)
	u.reply(addr, v.reply)
}

func (u *udpServer) reply(addr net.Addr, line string) {
	if _, err := u.pc.WriteTo([]byte(line+"\n"), addr); err != nil {
		u.log.Info("reply not sent", "remote", addr.String(), "err", err)
	}
}

// remember records key as an ended session for EndedAge.
func (u *udpServer) remember(key string, now time.Time) {
	u.ended[key] = now
	u.endedOrder = append(u.endedOrder, endedKey{key, now})
}

// sweep ends sessions idle for IdleTimeout and forgets ended sessions older
// than EndedAge. An expired session that delivered anything is remembered
// like one ended by TCHAU: a late copy of its frame 0 must not open a new
// session and be delivered again. (So the ended table may pass MaxEnded by
// at most MaxSessions.)
func (u *udpServer) sweep(now time.Time) {
	for key, sess := range u.sessions {
		if now.Sub(sess.last) >= u.IdleTimeout {
			delete(u.sessions, key)
			if sess.expected > 0 {
				u.remember(key, now)
			}
			sess.log.Info("session expired", "idle", u.IdleTimeout, "next_seq", sess.expected)
		}
	}
	i := 0
	for ; i < len(u.endedOrder) && now.Sub(u.endedOrder[i].at) >= u.EndedAge; i++ {
		if e := u.endedOrder[i]; u.ended[e.key].Equal(e.at) {
			delete(u.ended, e.key)
		}
	}
	if i > 0 {
		u.endedOrder = append(u.endedOrder[:0:0], u.endedOrder[i:]...)
	}
}

func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}
