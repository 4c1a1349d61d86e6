package stopwait

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/labctl/labctl/proto/internal/wire"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults for the zero values of Client's fields.
const (
	DefaultTimeout  = time.Second
	DefaultMaxTries = 10
)

// ErrGaveUp: a message (or TCHAU) got no ACK (BYE) within MaxTries.
var ErrGaveUp = errors.New("gave up")

// Client is the stop-and-wait sender.
type Client struct {
	Out      io.Writer     // program output: each message's outcome, then BYE
	Logger   *slog.Logger  // diagnostics: faults, NACKs, timeouts, retransmissions
	Timeout  time.Duration // retransmission timer
	MaxTries int           // transmissions per message before giving up
	Faults   Faults        // simulated faulty channel; off by default
}

// Run sends the messages read from input over conn as one session (see the
// package documentation) and closes conn when it returns. conn is a TCP
// connection, or a connected UDP socket for datagrams; on UDP it first
// turns the UDP checksum off (DisableUDPChecksum).
func (c *Client) Run(ctx context.Context, conn net.Conn, input io.Reader) error {
	if err := c.Faults.Validate(); err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r := c.newRun(conn)
	defer r.quitDelayed()
	if r.datagram {
		if sc, ok := conn.(syscall.Conn); ok {
			if err := DisableUDPChecksum(sc); err != nil {
				r.log.Warn("udp checksum stays on", "err", err)
			}
		}
	}

	sc := bufio.NewScanner(input)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var seq uint64
	for sc.Scan() {
		msgs, tchau := SplitMessages(sc.Text())
		for _, m := range msgs {
			if err := r.deliver(ctx, seq, m); err != nil {
				return ctxErr(ctx, err)
			}
			seq++
		}
		if tchau {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	return ctxErr(ctx, r.tchau(ctx))
}

// clientRun is one session's state.
type clientRun struct {
	*Client
	link     *link
	datagram bool
	log      *slog.Logger
	out      io.Writer
	rng      *rand.Rand
	delayed  sync.WaitGroup
	quit     chan struct{}
	quitOnce sync.Once
}

func (c *Client) newRun(conn net.Conn) *clientRun {
	cc := *c
	if cc.Timeout <= 0 {
		cc.Timeout = DefaultTimeout
	}
	if cc.MaxTries <= 0 {
		cc.MaxTries = DefaultMaxTries
	}
	if cc.Faults.MaxDelay <= 0 {
		cc.Faults.MaxDelay = 2 * cc.Timeout
	}
	r := &clientRun{Client: &cc, log: cc.Logger, out: cc.Out, quit: make(chan struct{})}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.out == nil {
		r.out = io.Discard
	}
	r.rng = rand.New(rand.NewPCG(cc.Faults.Seed, cc.Faults.Seed^0x5eed))
	r.datagram = strings.HasPrefix(conn.LocalAddr().Network(), "udp")
	r.link = newLink(conn, r.datagram)
	return r
}

// deliver sends one message until it is ACKed or MaxTries is spent.
func (r *clientRun) deliver(ctx context.Context, seq uint64, msg string) error {
	if len(msg) > MaxMessage {
		return fmt.Errorf("message %d: %w: %d bytes (max %d)", seq, ErrMessageBad, len(msg), MaxMessage)
	}
	for try := 1; try <= r.MaxTries; try++ {
		wire, err := r.transmit(seq, msg)
		if err != nil {
			return fmt.Errorf("message %d: send: %w", seq, err)
		}
		acked, err := r.await(ctx, seq, wire)
		if err != nil {
			return fmt.Errorf("message %d: %w", seq, err)
		}
		if acked {
			fmt.Fprintf(r.out, "delivered %d %q (%s)\n", seq, msg, tries(try))
			return nil
		}
	}
	fmt.Fprintf(r.out, "not delivered %d %q (%s)\n", seq, msg, tries(r.MaxTries))
	return fmt.Errorf("message %d %q: no ACK after %s: %w", seq, clip(msg), tries(r.MaxTries), ErrGaveUp)
}

func tries(n int) string {
	if n == 1 {
		return "1 try"
	}
	return fmt.Sprintf("%d tries", n)
}

// transmit sends one copy of the frame through the simulated channel and
// returns the seq it carried.
func (r *clientRun) transmit(seq uint64, msg string) (uint64, error) {
	fr := NewFrame(seq, msg)
	f := r.Faults.pick(r.rng)
	switch f {
	case faultCorrupt:
		r.log.Info("fault", "seq", seq, "fault", f)
		return seq, r.link.send(corrupt(fr, r.rng))
	case faultWrongSeq:
		fr.Seq = seq + 2 + r.rng.Uint64N(8)
		r.log.Info("fault", "seq", seq, "fault", f, "sent_seq", fr.Seq)
	case faultDrop:
		r.log.Info("fault", "seq", seq, "fault", f)
		return seq, nil
	case faultDelay:
		d := time.Duration(1 + r.rng.Int64N(int64(r.Faults.MaxDelay)))
		r.log.Info("fault", "seq", seq, "fault", f, "delay", d)
		r.later(d, fr.String())
		return seq, nil
	}
	return fr.Seq, r.link.send(fr.String())
}

// later sends line after d, unless the session ends first.
func (r *clientRun) later(d time.Duration, line string) {
	r.delayed.Add(1)
	go func() {
		defer r.delayed.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			_ = r.link.send(line)
		case <-r.quit:
		}
	}()
}

func (r *clientRun) quitDelayed() {
	r.quitOnce.Do(func() { close(r.quit) })
	r.delayed.Wait()
}

// await waits one timer period for the answer to the transmission that
// carried wire. It reports true on ACK <seq>; false means retransmit.
func (r *clientRun) await(ctx context.Context, seq, wire uint64) (bool, error) {
	deadline := time.Now().Add(r.Timeout)
	for { // ends by the deadline at the latest
		line, err := r.link.recv(deadline)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return false, ctx.Err()
		case isTimeout(err):
			r.log.Info("timeout, retransmitting", "seq", seq)
			return false, nil
		case r.datagram: // e.g. ICMP port unreachable: as good as a loss
			r.log.Info("receive failed, retransmitting", "seq", seq, "err", err)
			return false, nil
		default:
			return false, fmt.Errorf("receive: %w", err)
		}
		rep, err := ParseReply(line)
		switch {
		case err != nil:
			r.log.Info("ignoring bad reply", "err", err)
		case rep.Kind == "ACK" && rep.Seq == seq:
			return true, nil
		case rep.Kind == "NACK" && rep.Seq == wire:
			r.log.Info("NACK, retransmitting", "seq", seq)
			return false, nil
		case rep.Kind == "ERROR":
			r.log.Warn("server error, retransmitting", "seq", seq, "reply", line)
			return false, nil
		default: // a late answer to an earlier transmission
			r.log.Debug("ignoring stale reply", "seq", seq, "reply", line)
		}
	}
}

// tchau ends the session: delayed frames go out first (so none arrives
// after the session ended), then TCHAU is sent until BYE comes back.
func (r *clientRun) tchau(ctx context.Context) error {
	r.delayed.Wait()
	for try := 1; try <= r.MaxTries; try++ {
		if err := r.link.send(Tchau); err != nil {
			return fmt.Errorf("send TCHAU: %w", err)
		}
		deadline := time.Now().Add(r.Timeout)
		for {
			line, err := r.link.recv(deadline)
			if err != nil {
				if isTimeout(err) || (r.datagram && ctx.Err() == nil) {
					break
				}
				return fmt.Errorf("wait for BYE: %w", err)
			}
			if line == Bye {
				fmt.Fprintln(r.out, Bye)
				return nil
			}
		}
	}
	return fmt.Errorf("TCHAU: no BYE after %s: %w", tries(r.MaxTries), ErrGaveUp)
}

func ctxErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// link carries lines over a stream (one per `\n`) or datagrams (one each).
type link struct {
	conn net.Conn
	mr   *wire.MessageReader // streams only: a line, or what came before a pause
	buf  []byte              // datagrams only
}

func newLink(conn net.Conn, datagram bool) *link {
	if datagram {
		return &link{conn: conn, buf: make([]byte, MaxFrame+3)}
	}
	return &link{conn: conn, mr: wire.NewMessageReader(conn, MaxFrame, 0)}
}

// send writes one line; the delayed-fault goroutines may call it too (a
// Write on a net.Conn is whole even when concurrent).
func (l *link) send(line string) error {
	return writeLine(l.conn, DefaultWriteTimeout, line)
}

func (l *link) recv(deadline time.Time) (string, error) {
	if l.mr != nil {
		return l.mr.ReadMessage(context.Background(), deadline)
	}
	if err := l.conn.SetReadDeadline(deadline); err != nil {
		return "", err
	}
	n, err := l.conn.Read(l.buf)
	if err != nil {
		return "", err
	}
	return string(trimEOL(l.buf[:n])), nil
}
