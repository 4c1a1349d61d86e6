package engine

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
	"slices"
	"sync/atomic"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/topo"
	"golang.org/x/sys/unix"
)

// The control socket: one JSON request per connection, one JSON line back.
// "capture" then streams pcapng on the same connection until the client
// shuts its write side (or goes away).

type ctlRequest struct {
	Op     string        `json:"op"` // ping, set, show, faults, list, clear, down, up, stats, capture, stop
	Link   string        `json:"link,omitempty"`
	Dir    string        `json:"dir,omitempty"` // a->b or b->a
	Spec   *netem.Spec   `json:"spec,omitempty"`
	Faults []netem.Fault `json:"faults,omitempty"`
	For    topo.Duration `json:"for,omitempty"`
	Point  string        `json:"point,omitempty"`
}

type ctlResponse struct {
	OK      bool        `json:"ok"`
	Error   string      `json:"error,omitempty"`
	AtoB    *netem.Spec `json:"a_to_b,omitempty"`
	BtoA    *netem.Spec `json:"b_to_a,omitempty"`
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
	Bytes       uint64 `json:"bytes"`   // their wire bytes (Ethernet header on, FCS off)
	Delivered   uint64 `json:"delivered"`
	Lost        uint64 `json:"lost"`
	Duplicated  uint64 `json:"duplicated"`
	Corrupted   uint64 `json:"corrupted"`
	Reordered   uint64 `json:"reordered"`
	QueueDrops  uint64 `json:"queue_drops"`
	DownDrops   uint64 `json:"down_drops"`
	WriteErrors uint64 `json:"write_errors"`
	Queued      int    `json:"queued"` // wire packets held (delay line and rate)
}

type dirStats struct {
	frames, packets, bytes, delivered, lost, duplicated, corrupted atomic.Uint64
	reordered                                                      atomic.Uint64
	queueDrops, downDrops, writeErrors                             atomic.Uint64
}

func (d *direction) stats() DirStats {
	s := &d.st
	return DirStats{
		Frames: s.frames.Load(), Packets: s.packets.Load(), Bytes: s.bytes.Load(), Delivered: s.delivered.Load(),
		Lost: s.lost.Load(), Duplicated: s.duplicated.Load(), Corrupted: s.corrupted.Load(),
		Reordered: s.reordered.Load(), QueueDrops: s.queueDrops.Load(), DownDrops: s.downDrops.Load(),
		WriteErrors: s.writeErrors.Load(), Queued: int(d.q.segs.Load()),
	}
}

// Counts are the engine's counters in the form every backend gives
// (netem.Counter): drops split by cause. A packet that was duplicated and
// lost counts in both (one copy went on).
func (s DirStats) Counts() netem.Counts {
	return netem.Counts{
		Packets: s.Packets, Bytes: s.Bytes, Delivered: s.Delivered,
		Dropped: s.Lost + s.QueueDrops + s.DownDrops + s.WriteErrors,
		Lost:    s.Lost, QueueDrops: s.QueueDrops, Corrupted: s.Corrupted,
		Duplicated: s.Duplicated, Reordered: s.Reordered, DownDrops: s.DownDrops,
		Queued: s.Queued, Split: true,
	}
}

// Stats returns the counters of every served link.
func (e *Engine) Stats() []LinkStats {
	var out []LinkStats
	for _, el := range e.order {
		out = append(out, LinkStats{Link: el.l.ID, Down: el.down.Load(), AtoB: el.dirs[netem.AtoB].stats(), BtoA: el.dirs[netem.BtoA].stats()})
	}
	return out
}

// AddFaults arms scripted faults on a link.
func (e *Engine) AddFaults(link string, fs []netem.Fault) error {
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
	return e.addFault(el, netem.Fault{Action: netem.FaultDown, For: topo.Duration(d)})
}

func parseDir(s string) (netem.Dir, error) {
	switch s {
	case "a->b", "atob", "":
		return netem.AtoB, nil
	case "b->a", "btoa":
		return netem.BtoA, nil
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
	err = json.NewEncoder(c).Encode(resp)
	if req.Op == "stop" {
		e.log.Info("asked to stop")
		e.stop()
		return
	}
	if err != nil || !resp.OK || !stream {
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
		if req.Link != "" {
			// One link's counters (Counters asks per link): answer only it,
			// so that counting every link of a lab is not quadratic.
			ok.Stats = slices.DeleteFunc(ok.Stats, func(s LinkStats) bool { return s.Link != req.Link })
		}
		return ok, false
	case "stop":
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
		var s netem.Spec
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

// RemoveSocket removes a lab's stale control socket (after its engine was
// killed) from the lab's folder; a missing one is not an error.
func RemoveSocket(dir string) error {
	for _, p := range []string{Socket(dir), Socket(dir) + ".tmp"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("engine socket: %w", err)
		}
	}
	return nil
}

// capture streams a pcapng capture of a link to w until ctx ends, then
// asks the engine to finish the file and copies the rest.
func capture(ctx context.Context, sock, lab, link, point string, w io.Writer) error {
	c, br, _, err := dialEngine(ctx, sock, ctlRequest{Op: "capture", Link: link, Point: point})
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
