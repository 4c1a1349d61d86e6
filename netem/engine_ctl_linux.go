package netem

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/labctl/labctl/topo"
	"golang.org/x/sys/unix"
)

// The control socket: one JSON request per connection, one JSON line back.
// "capture" then streams pcapng on the same connection until the client
// shuts its write side (or goes away).

type ctlRequest struct {
	Op     string        `json:"op"` // ping, set, show, faults, list, clear, down, up, stats, capture
	Link   string        `json:"link,omitempty"`
	Dir    string        `json:"dir,omitempty"` // a->b or b->a
	Spec   *Spec         `json:"spec,omitempty"`
	Faults []Fault       `json:"faults,omitempty"`
	For    topo.Duration `json:"for,omitempty"`
	Point  string        `json:"point,omitempty"`
}

type ctlResponse struct {
	OK      bool        `json:"ok"`
	Error   string      `json:"error,omitempty"`
	AtoB    *Spec       `json:"a_to_b,omitempty"`
	BtoA    *Spec       `json:"b_to_a,omitempty"`
	Pending []string    `json:"pending,omitempty"`
	Fired   []string    `json:"fired,omitempty"`
	Stats   []LinkStats `json:"stats,omitempty"`
}

// LinkStats are the counters of one served link.
type LinkStats struct {
	Link string   `json:"link"`
	Down bool     `json:"down"`
	AtoB DirStats `json:"a_to_b"`
	BtoA DirStats `json:"b_to_a"`
}

// DirStats count wire packets (a TCP super-frame counts as the packets it
// stands for) of one direction since the engine started.
type DirStats struct {
	Frames      uint64 `json:"frames"`  // reads from the sending TAP
	Packets     uint64 `json:"packets"` // wire packets in them
	Delivered   uint64 `json:"delivered"`
	Lost        uint64 `json:"lost"`
	Duplicated  uint64 `json:"duplicated"`
	Corrupted   uint64 `json:"corrupted"`
	Reordered   uint64 `json:"reordered"`
	QueueDrops  uint64 `json:"queue_drops"`
	DownDrops   uint64 `json:"down_drops"`
	WriteErrors uint64 `json:"write_errors"`
	Queued      int    `json:"queued"`
}

type dirStats struct {
	frames, packets, delivered, lost, duplicated, corrupted, reordered atomic.Uint64
	queueDrops, downDrops, writeErrors                                 atomic.Uint64
}

func (d *direction) stats() DirStats {
	s := &d.st
	return DirStats{
		Frames: s.frames.Load(), Packets: s.packets.Load(), Delivered: s.delivered.Load(),
		Lost: s.lost.Load(), Duplicated: s.duplicated.Load(), Corrupted: s.corrupted.Load(),
		Reordered: s.reordered.Load(), QueueDrops: s.queueDrops.Load(), DownDrops: s.downDrops.Load(),
		WriteErrors: s.writeErrors.Load(), Queued: int(d.q.n.Load()),
	}
}

// Stats returns the counters of every served link.
func (e *Engine) Stats() []LinkStats {
	var out []LinkStats
	for _, el := range e.order {
		out = append(out, LinkStats{Link: el.l.ID, Down: el.down.Load(), AtoB: el.dirs[AtoB].stats(), BtoA: el.dirs[BtoA].stats()})
	}
	return out
}

// AddFaults arms scripted faults on a link.
func (e *Engine) AddFaults(link string, fs []Fault) error {
	el, err := e.link(link)
	if err != nil {
		return err
	}
	for _, f := range fs {
		if err := f.Validate(el.l.ID, el.l.A.Node, el.l.B.Node); err != nil {
			return err
		}
	}
	for _, f := range fs {
		if err := e.addFault(el, f); err != nil {
			return err
		}
	}
	return nil
}

// SetDown takes a link down (for d, or until SetDown(false) when d is 0)
// or brings it up.
func (e *Engine) SetDown(link string, down bool, d time.Duration) error {
	el, err := e.link(link)
	if err != nil {
		return err
	}
	if !down {
		el.setDown(false)
		e.log.Info("link up", "link", link)
		return nil
	}
	return e.addFault(el, Fault{Action: FaultDown, For: topo.Duration(d)})
}

func parseDir(s string) (Dir, error) {
	switch s {
	case "a->b", "atob", "":
		return AtoB, nil
	case "b->a", "btoa":
		return BtoA, nil
	}
	return 0, fmt.Errorf("direction %q: want a->b or b->a", s)
}

func (e *Engine) acceptLoop(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer c.Close()
			e.serveConn(c.(*net.UnixConn))
		}()
	}
}

func (e *Engine) serveConn(c *net.UnixConn) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var req ctlRequest
	line, err := br.ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	if err != nil {
		_ = json.NewEncoder(c).Encode(ctlResponse{Error: fmt.Sprintf("bad request: %v", err)})
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	resp, stream := e.handle(req)
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewEncoder(c).Encode(resp); err != nil || !resp.OK || !stream {
		return
	}
	_ = c.SetWriteDeadline(time.Time{})
	// Capture: stream until the client shuts its side.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, br)
		cancel()
	}()
	if _, err := e.Capture(ctx, req.Link, req.Point, c); err != nil {
		e.log.Warn("capture ended", "link", req.Link, "err", err)
	}
	_ = c.CloseWrite()
}

// handle answers one request; stream says a capture follows.
func (e *Engine) handle(req ctlRequest) (resp ctlResponse, stream bool) {
	fail := func(err error) (ctlResponse, bool) { return ctlResponse{Error: err.Error()}, false }
	ok := ctlResponse{OK: true}
	switch req.Op {
	case "ping":
		return ok, false
	case "stats":
		ok.Stats = e.Stats()
		return ok, false
	}
	el, err := e.link(req.Link)
	if err != nil {
		return fail(err)
	}
	switch req.Op {
	case "set":
		d, err := parseDir(req.Dir)
		if err != nil {
			return fail(err)
		}
		var s Spec
		if req.Spec != nil {
			s = *req.Spec
		}
		if err := e.Set(req.Link, d, s); err != nil {
			return fail(err)
		}
		return ok, false
	case "show":
		a, b, err := e.Show(req.Link)
		if err != nil {
			return fail(err)
		}
		ok.AtoB, ok.BtoA = &a, &b
		return ok, false
	case "faults":
		if err := e.AddFaults(req.Link, req.Faults); err != nil {
			return fail(err)
		}
		return ok, false
	case "list":
		ok.Pending, ok.Fired = el.listFaults()
		return ok, false
	case "clear":
		el.clearFaults()
		return ok, false
	case "down", "up":
		if err := e.SetDown(req.Link, req.Op == "down", req.For.D()); err != nil {
			return fail(err)
		}
		return ok, false
	case "capture":
		if req.Point != "" && req.Point != pointSent && req.Point != pointDelivered {
			return fail(fmt.Errorf("capture point %q: want sent or delivered", req.Point))
		}
		return ok, true
	}
	return fail(fmt.Errorf("unknown op %q", req.Op))
}

// ErrEngineDown says a lab's engine does not answer.
var ErrEngineDown = errors.New("userspace engine not running")

// dialEngine connects to a lab's control socket and sends a request.
func dialEngine(ctx context.Context, sock string, req ctlRequest) (*net.UnixConn, *bufio.Reader, ctlResponse, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, nil, ctlResponse{}, fmt.Errorf("%w: %w", ErrEngineDown, err)
	}
	uc := c.(*net.UnixConn)
	if dl, ok := ctx.Deadline(); ok {
		_ = uc.SetDeadline(dl)
	} else {
		_ = uc.SetDeadline(time.Now().Add(30 * time.Second))
	}
	b, _ := json.Marshal(req)
	br := bufio.NewReader(uc)
	var resp ctlResponse
	_, err = uc.Write(append(b, '\n'))
	if err == nil {
		var line []byte
		if line, err = br.ReadBytes('\n'); err == nil {
			err = json.Unmarshal(line, &resp)
		}
	}
	if err != nil {
		uc.Close()
		return nil, nil, resp, fmt.Errorf("%w: %w", ErrEngineDown, err)
	}
	if !resp.OK {
		uc.Close()
		return nil, nil, resp, errors.New(resp.Error)
	}
	return uc, br, resp, nil
}

// engineCall is one request and its answer.
func engineCall(ctx context.Context, lab string, req ctlRequest) (ctlResponse, error) {
	c, _, resp, err := dialEngine(ctx, EngineSocket(lab), req)
	if err != nil {
		return resp, fmt.Errorf("lab %q: engine: %w", lab, err)
	}
	c.Close()
	return resp, nil
}

// WaitEngine returns once the lab's engine answers on its control socket,
// or ctx ends (give it a deadline: a dead engine never answers). It does
// not poll: it watches the lab's folder with inotify and tries again when
// the socket is renamed into place.
func WaitEngine(ctx context.Context, lab string) error {
	if err := waitSocket(ctx, EngineSocket(lab)); err != nil {
		return fmt.Errorf("lab %q: engine not ready: %w", lab, err)
	}
	return nil
}

func waitSocket(ctx context.Context, sock string) error {
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	defer unix.Close(ifd)
	dir := filepath.Dir(sock)
	if _, err := unix.InotifyAddWatch(ifd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		return fmt.Errorf("watch %q: %w", dir, err)
	}
	buf := make([]byte, 4096)
	for {
		ping := func() error {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			c, _, _, err := dialEngine(pctx, sock, ctlRequest{Op: "ping"})
			if err == nil {
				c.Close()
			}
			return err
		}
		lastErr := ping()
		if lastErr == nil {
			return nil
		}
		// Wait for the next change in the folder; wake up now and then
		// only to notice a cancelled context.
		for {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("%w (last try: %v)", err, lastErr)
			}
			t := unix.NsecToTimespec(int64(100 * time.Millisecond))
			fds := []unix.PollFd{{Fd: int32(ifd), Events: unix.POLLIN}}
			n, err := unix.Ppoll(fds, &t, nil)
			if err != nil && !errors.Is(err, unix.EINTR) {
				return fmt.Errorf("watch %q: %w", dir, err)
			}
			if n > 0 {
				for {
					if _, err := unix.Read(ifd, buf); err != nil {
						break
					}
				}
				break
			}
		}
	}
}

// RemoveEngineSocket removes a lab's stale control socket (after its
// engine was killed); a missing one is not an error.
func RemoveEngineSocket(lab string) error {
	for _, p := range []string{EngineSocket(lab), EngineSocket(lab) + ".tmp"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("lab %q: %w", lab, err)
		}
	}
	return nil
}

// AddFaults arms scripted faults on a link of a running lab.
func AddFaults(ctx context.Context, lab, link string, fs []Fault) error {
	_, err := engineCall(ctx, lab, ctlRequest{Op: "faults", Link: link, Faults: fs})
	return err
}

// ListFaults returns a link's pending and fired faults.
func ListFaults(ctx context.Context, lab, link string) (pending, fired []string, err error) {
	r, err := engineCall(ctx, lab, ctlRequest{Op: "list", Link: link})
	return r.Pending, r.Fired, err
}

// ClearFaults disarms a link's pending faults and brings it up.
func ClearFaults(ctx context.Context, lab, link string) error {
	_, err := engineCall(ctx, lab, ctlRequest{Op: "clear", Link: link})
	return err
}

// LinkDown takes a link down for d (0: until LinkUp); LinkUp brings it up.
func LinkDown(ctx context.Context, lab, link string, d time.Duration) error {
	_, err := engineCall(ctx, lab, ctlRequest{Op: "down", Link: link, For: topo.Duration(d)})
	return err
}

// LinkUp brings a link back up.
func LinkUp(ctx context.Context, lab, link string) error {
	_, err := engineCall(ctx, lab, ctlRequest{Op: "up", Link: link})
	return err
}

// EngineStats returns the counters of a lab's engine.
func EngineStats(ctx context.Context, lab string) ([]LinkStats, error) {
	r, err := engineCall(ctx, lab, ctlRequest{Op: "stats"})
	return r.Stats, err
}

// Capture streams a pcapng capture of a link to w until ctx ends, then
// asks the engine to finish the file and copies the rest.
func Capture(ctx context.Context, lab, link, point string, w io.Writer) error {
	c, br, _, err := dialEngine(ctx, EngineSocket(lab), ctlRequest{Op: "capture", Link: link, Point: point})
	if err != nil {
		return fmt.Errorf("lab %q: link %q: capture: %w", lab, link, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(w, br)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("lab %q: link %q: capture: %w", lab, link, err)
		}
		return fmt.Errorf("lab %q: link %q: capture: %w", lab, link, ErrEngineDown)
	case <-ctx.Done():
	}
	_ = c.CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := <-done; err != nil {
		return fmt.Errorf("lab %q: link %q: capture: finish: %w", lab, link, err)
	}
	return nil
}
