package xy

import (
	"context"
	"errors"
	"fmt"
	"github.com/labctl/labctl/proto/internal/wire"
	"io"
	"net"
	"sync"
	"time"
)

// peer is one accepted client.
type peer struct {
	conn    net.Conn
	lr      *wire.LineReader
	remote  string
	letter  byte
	release func() // frees the connection slot
	once    sync.Once

	// Set while the peer waits alone in the lobby.
	claimed  chan struct{} // closed when a partner (or shutdown) takes it
	watched  chan struct{} // closed when its watcher has returned
	watchErr error         // why the watcher's Peek returned
}

func newPeer(conn net.Conn, release func()) *peer {
	return &peer{conn: conn, lr: newLineReader(conn, MaxLine), remote: conn.RemoteAddr().String(), release: release}
}

func (p *peer) close() {
	p.once.Do(func() {
		p.conn.Close()
		p.release()
	})
}

// lobby holds the client that connected first and waits for a partner.
type lobby struct {
	mu sync.Mutex
	p  *peer
}

func (l *lobby) put(p *peer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p = p
}

// remove takes p out if it is still the one waiting.
func (l *lobby) remove(p *peer) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.p != p {
		return false
	}
	l.p = nil
	return true
}

// take claims the waiting client, if any, after stopping its watcher. A
// client found gone is closed and nil returned.
func (l *lobby) take() *peer {
	l.mu.Lock()
	p := l.p
	l.p = nil
	l.mu.Unlock()
	if p == nil {
		return nil
	}
	close(p.claimed)
	_ = p.conn.SetReadDeadline(time.Now()) // wakes the watcher's Peek
	<-p.watched
	if err := p.watchErr; err != nil && !isTimeout(err) && !errors.Is(err, errWaitedTooLong) {
		p.close()
		return nil
	}
	return p
}

// result is what one client of a pair sent, in arrival order.
type result struct {
	p    *peer
	name string
	err  error
}

// runPair serves one pair and reports whether it was acknowledged.
func (srv *server) runPair(ctx context.Context, x, y *peer) bool {
	defer x.close()
	defer y.close()
	x.letter, y.letter = 'X', 'Y'
	peers := []*peer{x, y}
	srv.log.Info("pair formed", "x", x.remote, "y", y.remote)

	// Cancelling pairCtx (first failure or shutdown) wakes both reads.
	pairCtx, abort := context.WithCancel(ctx)
	defer abort()
	stop := context.AfterFunc(pairCtx, func() {
		for _, p := range peers {
			_ = p.conn.SetReadDeadline(time.Now())
		}
	})
	defer stop()

	for _, p := range peers {
		if err := writeLine(p.conn, srv.WriteTimeout, ConnectedLine(p.letter)); err != nil {
			srv.log.Info("client left before the pair formed", "remote", p.remote, "err", err)
			srv.endPair(ctx, peers, []result{{p: p, err: err}})
			return false
		}
	}

	arrivals := make(chan result, 2)
	for _, p := range peers {
		go func() { arrivals <- srv.readMessage(pairCtx, p) }()
	}
	var got []result
	failed := false
	for range peers {
		r := <-arrivals
		got = append(got, r)
		if r.err != nil && !failed {
			failed = true
			abort()
		}
		if r.err == nil {
			srv.out.println(MessageLine(r.p.letter, r.name))
		}
	}
	if failed || ctx.Err() != nil {
		srv.endPair(ctx, peers, got)
		return false
	}
	ack := AckLine(got[0].p.letter, got[0].name, got[1].p.letter, got[1].name)
	sent := true
	for _, p := range peers { // to both, even if one has left
		if err := writeLine(p.conn, srv.WriteTimeout, ack); err != nil {
			srv.log.Warn("acknowledgment not sent", "remote", p.remote, "err", err)
			sent = false
		}
	}
	if sent {
		srv.out.println("Sent acknowledgment to both X and Y")
	}
	return sent
}

// readMessage reads one client's "Client X: <name>" within IdleTimeout.
func (srv *server) readMessage(ctx context.Context, p *peer) result {
	if err := p.conn.SetReadDeadline(time.Now().Add(srv.IdleTimeout)); err != nil {
		return result{p: p, err: err}
	}
	if ctx.Err() != nil { // checked after setting the deadline: see runPair's AfterFunc
		return result{p: p, err: ctx.Err()}
	}
	line, err := p.lr.ReadLine()
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return result{p: p, err: err}
	}
	name, err := ParseMessage(line, p.letter)
	return result{p: p, name: name, err: err}
}

// endPair tells each client of a failed pair why, in one ERROR line: its
// own fault, or its partner's.
func (srv *server) endPair(ctx context.Context, peers []*peer, got []result) {
	var first *result
	own := map[*peer]error{}
	for i := range got {
		if got[i].err != nil && !errors.Is(got[i].err, context.Canceled) {
			own[got[i].p] = got[i].err
			if first == nil {
				first = &got[i]
			}
		}
	}
	lines := map[*peer]string{}
	for _, p := range peers {
		err, ok := own[p]
		if ok && gone(err) {
			p.close()
			continue
		}
		line := "ERROR pair not acknowledged"
		switch {
		case ctx.Err() != nil:
			line = "ERROR server shutting down"
		case ok:
			line = srv.ownReason(err)
		case first != nil:
			line = fmt.Sprintf("ERROR client %c %s; pair not acknowledged", first.p.letter, srv.partnerReason(first.err))
		}
		lines[p] = line
	}
	srv.failAll(lines)
}

func (srv *server) ownReason(err error) string {
	switch {
	case errors.Is(err, ErrLineTooLong):
		return fmt.Sprintf("ERROR line too long (max %d bytes)", MaxLine)
	case isTimeout(err):
		return fmt.Sprintf("ERROR no message within %v", srv.IdleTimeout)
	}
	return "ERROR " + err.Error()
}

func (srv *server) partnerReason(err error) string {
	switch {
	case errors.Is(err, ErrLineTooLong):
		return "sent a line too long"
	case isTimeout(err):
		return fmt.Sprintf("sent nothing within %v", srv.IdleTimeout)
	case errors.Is(err, ErrBadMessage):
		return "sent a bad message"
	}
	return "left"
}

// gone reports whether err means the client is no longer there to read.
func gone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		(!isTimeout(err) && !errors.Is(err, ErrLineTooLong) && !errors.Is(err, ErrBadMessage))
}
