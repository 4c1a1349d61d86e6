package xy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/labctl/labctl/proto/internal/wire"
)

// peer is one accepted client.
type peer struct {
	conn   net.Conn // closing it frees its connection slot (wire.Serve)
	mr     *wire.MessageReader
	remote string
	letter byte
	once   sync.Once

	// Set while the peer waits alone in the lobby.
	stopWatch context.CancelFunc // a partner (or shutdown) claims it
	watched   chan struct{}      // closed when its watcher has returned
	watchErr  error              // why the watcher returned
	early     *early             // the message it sent while waiting, if any
}

// early is a message read while its sender waited for a partner: it
// arrived before any message of the partner.
type early struct {
	msg string
	err error
}

func (srv *server) newPeer(conn net.Conn) *peer {
	return &peer{conn: conn, mr: wire.NewMessageReader(conn, MaxLine, srv.Pause), remote: conn.RemoteAddr().String()}
}

func (p *peer) close() { p.once.Do(func() { p.conn.Close() }) }

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
// client that has left (seen by the watcher, or by a last short probe) is
// forgotten, and nil returned: a newcomer is never paired with a ghost.
func (srv *server) take() *peer {
	l := &srv.lobby
	l.mu.Lock()
	p := l.p
	l.p = nil
	l.mu.Unlock()
	if p == nil {
		return nil
	}
	p.stopWatch()
	<-p.watched
	err := p.watchErr
	if !departed(err) {
		// The watcher may have been stopped a moment before the client's
		// FIN arrived: look once more, briefly.
		err = p.mr.Wait(context.Background(), time.Now().Add(probeTime))
	}
	if departed(err) {
		srv.forget(p, err)
		return nil
	}
	return p
}

// probeTime is how long take looks for a FIN from a waiting client.
const probeTime = 5 * time.Millisecond

// departed reports whether err, from a waiting client's connection, means
// it has gone (EOF, reset), as opposed to a deadline or a claim.
func departed(err error) bool {
	return err != nil && !isTimeout(err) && !errors.Is(err, context.Canceled) && !errors.Is(err, errWaitedTooLong)
}

// forget drops a lone client that left, and says so on the server's output.
func (srv *server) forget(p *peer, err error) {
	srv.log.Info("lone client left", "remote", p.remote, "err", err)
	srv.out.println(LeftLine)
	p.close()
}

// LeftLine is what the server prints when a client that waited alone for a
// partner disconnects: it is forgotten and never paired.
const LeftLine = "A waiting client left before a partner connected; forgotten"

// watch reads what a waiting client sends: its message (kept as early), and
// after that a few more, dropped, so that its leaving is seen at once. A
// client that keeps sending after its message (more than maxExtra
// messages, or an over-long one) is no longer read: it waits for its
// partner or its deadline like a silent one, and cannot make the server
// read a flood while it waits.
func (srv *server) watch(ctx context.Context, p *peer, deadline time.Time) error {
	for extra := 0; extra <= maxExtra; {
		if err := p.mr.Wait(ctx, deadline); err != nil {
			return err
		}
		msg, err := p.mr.ReadMessage(ctx, deadline)
		switch {
		case ctx.Err() != nil:
			return ctx.Err() // claimed mid-message: the pair reads the rest
		case isTimeout(err):
			return errWaitedTooLong
		case err == nil || errors.Is(err, ErrLineTooLong) || errors.Is(err, wire.ErrDiscardLimit):
			if p.early == nil {
				p.early = &early{msg: msg, err: tooLong(err)}
			} else {
				extra++
			}
			if err != nil { // over-long: read no further
				extra = maxExtra + 1
			}
		default:
			return err
		}
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errWaitedTooLong
	}
}

// maxExtra is how many messages after its first a waiting client may send
// and still be read (and so be seen leaving at once).
const maxExtra = 16

func tooLong(err error) error {
	if errors.Is(err, wire.ErrDiscardLimit) {
		return ErrLineTooLong
	}
	return err
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

	for _, p := range peers {
		if err := writeLine(p.conn, srv.WriteTimeout, ConnectedLine(p.letter)); err != nil {
			srv.log.Info("client left before the pair formed", "remote", p.remote, "err", err)
			srv.endPair(ctx, peers, []result{{p: p, err: err}})
			return false
		}
	}

	// Cancelling pairCtx (first failure or shutdown) ends both reads.
	pairCtx, abort := context.WithCancel(ctx)
	defer abort()
	arrivals := make(chan result, 2)
	for _, p := range peers {
		if p.early != nil { // it arrived while waiting: before anything else
			arrivals <- srv.parse(p, p.early.msg, p.early.err)
		}
	}
	for _, p := range peers {
		if p.early == nil {
			go func() { arrivals <- srv.readMessage(pairCtx, p) }()
		}
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
			srv.out.println(MessageLine(r.p.letter, wire.Escape(r.name)))
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

// readMessage reads one client's message within IdleTimeout.
func (srv *server) readMessage(ctx context.Context, p *peer) result {
	msg, err := p.mr.ReadMessage(ctx, time.Now().Add(srv.IdleTimeout))
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return result{p: p, err: tooLong(err)}
	}
	return srv.parse(p, msg, nil)
}

func (srv *server) parse(p *peer, msg string, err error) result {
	if err != nil {
		return result{p: p, err: err}
	}
	name, err := ParseMessage(msg, p.letter)
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
