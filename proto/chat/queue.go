package chat

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labctl/labctl/proto/internal/wire"
)

// item is one unit of a client's outbound queue: lines, or a file. A
// reply (to a command, or an ERROR) is written in one write of its own, so
// a client reading with one recv gets it whole and alone.
type item struct {
	lines []string
	reply bool
	file  *os.File // /download: written as FILE <name> <size> + bytes
	name  string
	size  int64
}

// itemOverhead is what each queued line or file costs besides its bytes,
// so that a flood of tiny lines is bounded too.
const itemOverhead = 64

func (it item) cost() int {
	if it.file != nil {
		return itemOverhead + len(it.name) + 32
	}
	n := 0
	for _, l := range it.lines {
		n += itemOverhead + len(l) + 1
	}
	return n
}

// outq is a member's outbound queue, bounded in bytes (Config.QueueBytes,
// each line counting its length plus itemOverhead). One item always fits
// an empty queue, so a long listing is never refused on its own.
type outq struct {
	mu      sync.Mutex
	items   []item
	bytes   int
	max     int
	ready   chan struct{} // capacity 1: signalled when items are added
	drained chan struct{} // capacity 1: signalled when the writer takes items
}

// push adds it, or reports that it does not fit; it never waits.
func (q *outq) push(it item) bool {
	c := it.cost()
	q.mu.Lock()
	if len(q.items) > 0 && q.bytes+c > q.max {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, it)
	q.bytes += c
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// take removes and returns everything queued.
func (q *outq) take() []item {
	q.mu.Lock()
	defer q.mu.Unlock()
	its := q.items
	q.items, q.bytes = nil, 0
	select {
	case q.drained <- struct{}{}:
	default:
	}
	return its
}

// member is a joined client. Only its writer goroutine writes to c once
// joined; everyone else enqueues (senders work from a snapshot of the
// room and may race with a leave: quit ends the writer).
type member struct {
	nick string
	c    *wire.Conn
	q    *outq

	kickOnce sync.Once
	kicked   chan struct{}
	reason   string
	quit     chan struct{} // closed by the handler when the client leaves
	done     chan struct{} // closed when the writer has finished

	writeSince atomic.Int64 // UnixNano when the writer's current socket write began; 0: not in one
	midLine    bool         // the writer's: the bytes sent so far end inside a line
}

func newMember(nick string, c *wire.Conn, queueBytes int) *member {
	return &member{nick: nick, c: c,
		q:      &outq{max: queueBytes, ready: make(chan struct{}, 1), drained: make(chan struct{}, 1)},
		kicked: make(chan struct{}), quit: make(chan struct{}), done: make(chan struct{})}
}

// Pacing of a full queue (doc.go, "Slow readers"). stallAfter: a socket
// write blocked this long means the client is not taking bytes. cpuGrace:
// how long a sender yields to a member whose queue is full although its
// socket takes bytes (its writer only waits for a CPU, as when a flooder
// on loopback outruns the writers), before dropping it all the same.
const (
	stallAfter = 20 * time.Millisecond
	cpuGrace   = 100 * time.Millisecond
)

// stallDeadline is when m counts as stalled if its writer stays in the
// socket write it is in; zero when it is in none.
func (m *member) stallDeadline() time.Time {
	since := m.writeSince.Load()
	if since == 0 {
		return time.Time{}
	}
	return time.Unix(0, since).Add(stallAfter)
}

// send enqueues it. A member whose queue is full and whose socket takes no
// bytes (its writer blocked in a write for stallAfter) reads too slowly
// for the room and is disconnected at once, the item dropped: a slow or
// dead reader never holds up a sender, a broadcast or the room. Only a
// member whose socket takes bytes while its writer waits for a CPU (a
// flooder on loopback can outrun the writers) makes the sender yield, at
// most cpuGrace, and less when the write in progress reaches stallAfter.
func (m *member) send(it item) {
	if m.q.push(it) {
		return
	}
	grace := time.Now().Add(cpuGrace)
	for {
		end := grace
		if d := m.stallDeadline(); !d.IsZero() && d.Before(end) {
			end = d
		}
		wait := time.Until(end)
		if wait <= 0 {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-m.q.drained:
		case <-m.kicked:
		case <-m.done:
		case <-t.C:
		}
		t.Stop()
		if m.q.push(it) {
			return
		}
		select {
		case <-m.kicked:
		case <-m.done:
		default:
			continue
		}
		break
	}
	m.kick("outbound queue overflow (reading too slowly)")
	if it.file != nil {
		it.file.Close()
	}
}

// sockWriter is the writer's path to the socket: it records when each
// write began, for stalled.
type sockWriter struct{ m *member }

func (w sockWriter) Write(p []byte) (int, error) {
	w.m.writeSince.Store(time.Now().UnixNano())
	defer w.m.writeSince.Store(0)
	n, err := w.m.c.Write(p)
	if n > 0 {
		w.m.midLine = p[n-1] != '\n'
	}
	return n, err
}

func (m *member) kick(reason string) {
	m.kickOnce.Do(func() {
		m.reason = reason
		close(m.kicked)
		m.c.LimitWrite(0, time.Now()) // unblock the writer at once
		_ = m.c.Conn.SetWriteDeadline(time.Now())
	})
}

// writer drains m's queue onto the connection: chat lines that are queued
// together share a write; replies and FILE headers go in writes of their own.
func (s *Server) writer(m *member, log *slog.Logger) {
	defer close(m.done)
	defer m.c.Close()
	bw := bufio.NewWriterSize(sockWriter{m}, 64<<10)
	for {
		select {
		case <-m.q.ready:
		case <-m.kicked:
			s.lastWords(m)
			return
		case <-m.quit:
			if s.writeAll(m, bw, m.q.take()) == nil && bw.Flush() == nil { // what was queued before the leave
				// An ERROR before a close must not be lost to a reset
				// caused by unread input (an over-long line, a trickle).
				wire.CloseGently(m.c.Conn)
			}
			return
		}
		err := s.writeAll(m, bw, m.q.take())
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			select {
			case <-m.kicked:
				s.lastWords(m)
			default:
				log.Info("write failed", "err", err)
			}
			return
		}
	}
}

func (s *Server) writeAll(m *member, bw *bufio.Writer, its []item) error {
	for i, it := range its {
		if err := s.write(m, bw, it); err != nil {
			for _, rest := range its[i+1:] {
				if rest.file != nil {
					rest.file.Close()
				}
			}
			return err
		}
	}
	return nil
}

// lastWords tries, briefly, to tell a kicked client why.
func (s *Server) lastWords(m *member) {
	m.c.LimitWrite(200*time.Millisecond, time.Now().Add(200*time.Millisecond))
	msg := "ERROR disconnected: " + m.reason + "\n"
	if m.midLine { // cut off inside a line (or a file): end it first
		msg = "\n" + msg
	}
	_, _ = io.WriteString(m.c, msg)
}

func (s *Server) write(m *member, bw *bufio.Writer, it item) error {
	if it.reply || it.file != nil { // what went before goes first, on its own
		if err := bw.Flush(); err != nil {
			if it.file != nil {
				it.file.Close()
			}
			return err
		}
	}
	if it.file == nil {
		for _, l := range it.lines {
			if _, err := bw.WriteString(l + "\n"); err != nil {
				return err
			}
		}
		if it.reply {
			return bw.Flush()
		}
		return nil
	}
	defer it.file.Close()
	m.c.LimitWrite(s.cfg.IOTimeout, time.Time{})
	defer m.c.LimitWrite(s.cfg.IOTimeout, time.Time{})
	if _, err := fmt.Fprintf(bw, "FILE %s %d\n", it.name, it.size); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil { // the header in a write of its own
		return err
	}
	// A reader that drains the file too slowly (the upload's trickle rule,
	// mirrored) ends the connection: the FILE header promised the bytes.
	rw := wire.NewRateWriter(sockWriter{m}, m.c, wire.MinRate{Rate: s.cfg.MinRate, Window: s.cfg.RateWindow})
	if _, err := io.CopyN(rw, it.file, it.size); err != nil {
		return fmt.Errorf("send %q: %w", it.name, err)
	}
	return nil
}
