package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labctl/labctl/netem"
	"golang.org/x/sys/unix"
)

// The engine: one process per lab serves all of the lab's TAP links. For
// each link and direction a reader goroutine takes frames from the sending
// end's TAP, decides each packet's fate, and either writes it to the other
// TAP at once or hands it to the direction's writer, a goroutine on a locked
// OS thread with 1 ns timer slack that writes each packet when it is due.

// Config says what an engine serves.
type Config struct {
	Lab  string
	Seed int64
	// Links of the lab; those with Via == "tap" are served, with their
	// AtoB/BtoA impairments and Faults.
	Links []netem.Link
	// Socket is the control socket's path (see Socket).
	Socket string
	Logger *slog.Logger
}

// Engine serves a lab's TAP links.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	links  map[string]*engLink
	order  []*engLink
	stopfd int // eventfd, readable once the engine stops
	start  time.Time

	wg       sync.WaitGroup
	stopOnce sync.Once
	stopped  chan struct{}
}

// epoch is the engine's time origin: nowNs reads the monotonic clock.
var epoch = time.Now()

func nowNs() int64 { return int64(time.Since(epoch)) }

// New opens the TAP ends of the lab's TAP links. It serves nothing
// until Serve.
func New(cfg Config) (e *Engine, err error) {
	if cfg.Socket == "" {
		return nil, fmt.Errorf("lab %q: engine: no control socket path", cfg.Lab)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e = &Engine{cfg: cfg, log: cfg.Logger.With("lab", cfg.Lab), links: map[string]*engLink{}, stopped: make(chan struct{})}
	e.stopfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("lab %q: engine: eventfd: %w", cfg.Lab, err)
	}
	defer func() {
		if err != nil {
			e.closeFds()
		}
	}()
	for _, l := range cfg.Links {
		if l.Via != netem.ViaTAP {
			continue
		}
		el, err := e.openLink(l)
		if err != nil {
			return nil, err
		}
		e.links[l.ID] = el
		e.order = append(e.order, el)
	}
	return e, nil
}

func (e *Engine) openLink(l netem.Link) (*engLink, error) {
	el := &engLink{l: l, fdA: -1, fdB: -1}
	var err error
	if el.fdA, err = attachTAP(l.A, l.Tag); err != nil {
		return nil, fmt.Errorf("link %q: %w", l.ID, err)
	}
	if el.fdB, err = attachTAP(l.B, l.Tag); err != nil {
		unix.Close(el.fdA)
		return nil, fmt.Errorf("link %q: %w", l.ID, err)
	}
	for _, d := range []netem.Dir{netem.AtoB, netem.BtoA} {
		src, dst := el.fdA, el.fdB
		if d == netem.BtoA {
			src, dst = dst, src
		}
		dr, err := newDirection(e, el, d, src, dst)
		if err != nil {
			el.close()
			return nil, fmt.Errorf("link %q: %s: %w", l.ID, d, err)
		}
		el.dirs[d] = dr
		if err := dr.set(l.Spec(d)); err != nil {
			el.close()
			return nil, fmt.Errorf("link %q: %s: %w", l.ID, d, err)
		}
	}
	return el, nil
}

// Serve forwards frames and answers the control socket until ctx is done;
// then it stops everything and closes the TAP fds (the devices stay). The
// socket appears, by an atomic rename, only once the engine forwards: a
// client that connects is served.
func (e *Engine) Serve(ctx context.Context) error {
	e.start = time.Now()
	defer e.closeFds()
	for _, el := range e.order {
		for _, d := range el.dirs {
			e.wg.Add(2)
			go func() { defer e.wg.Done(); d.readLoop() }()
			go func() { defer e.wg.Done(); d.writeLoop() }()
		}
		for _, f := range el.l.Faults {
			if err := e.addFault(el, f); err != nil {
				e.log.Warn("lab-file fault refused", "link", el.l.ID, "err", err)
			}
		}
	}
	ln, err := e.listen()
	if err != nil {
		e.stop()
		e.wg.Wait()
		return err
	}
	e.log.Info("engine serving", "links", len(e.order), "socket", e.cfg.Socket, "seed", e.cfg.Seed)
	e.wg.Add(1)
	go func() { defer e.wg.Done(); e.acceptLoop(ln) }()
	select {
	case <-ctx.Done():
	case <-e.stopped:
	}
	e.stop()
	ln.Close()
	_ = os.Remove(e.cfg.Socket)
	e.wg.Wait()
	e.log.Info("engine stopped")
	return nil
}

// listen binds the control socket under a temporary name and renames it
// into place once it accepts.
func (e *Engine) listen() (net.Listener, error) {
	tmp := e.cfg.Socket + ".tmp"
	_ = os.Remove(tmp)
	if err := os.MkdirAll(filepath.Dir(e.cfg.Socket), 0o755); err != nil {
		return nil, fmt.Errorf("lab %q: engine socket: %w", e.cfg.Lab, err)
	}
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("lab %q: engine socket %q: %w", e.cfg.Lab, tmp, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("lab %q: engine socket: %w", e.cfg.Lab, err)
	}
	if err := os.Rename(tmp, e.cfg.Socket); err != nil {
		ln.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("lab %q: engine socket %q: %w", e.cfg.Lab, e.cfg.Socket, err)
	}
	return ln, nil
}

// stop tells every loop to end.
func (e *Engine) stop() {
	e.stopOnce.Do(func() {
		var one [8]byte
		one[0] = 1
		_, _ = unix.Write(e.stopfd, one[:])
		close(e.stopped)
		for _, el := range e.order {
			el.stopTimers()
		}
	})
}

func (e *Engine) closeFds() {
	for _, el := range e.order {
		el.close()
	}
	if e.stopfd >= 0 {
		unix.Close(e.stopfd)
		e.stopfd = -1
	}
}

func (e *Engine) link(id string) (*engLink, error) {
	el, ok := e.links[id]
	if !ok {
		return nil, fmt.Errorf("link %q: %w", id, ErrNotEngineLink)
	}
	return el, nil
}

// ErrNotEngineLink says the engine does not serve that link (it is not in
// the lab, or it is a plain veth).
var ErrNotEngineLink = errors.New("not served by the userspace engine")

// Set replaces the impairment of one direction of a link.
func (e *Engine) Set(link string, d netem.Dir, s netem.Spec) error {
	el, err := e.link(link)
	if err != nil {
		return err
	}
	if err := el.dirs[d].set(s); err != nil {
		return fmt.Errorf("link %q: %s: %w", link, d, err)
	}
	e.log.Info("impairment set", "link", link, "dir", d.String(), "spec", s.String())
	return nil
}

// Show returns the impairments in force.
func (e *Engine) Show(link string) (atob, btoa netem.Spec, err error) {
	el, err := e.link(link)
	if err != nil {
		return netem.Spec{}, netem.Spec{}, err
	}
	return el.dirs[netem.AtoB].cfg.Load().spec, el.dirs[netem.BtoA].cfg.Load().spec, nil
}

// engLink is one served link.
type engLink struct {
	l        netem.Link
	fdA, fdB int
	dirs     [2]*direction

	// busy counts the reasons frames must leave the fast path: pending
	// packet faults, captures, the link being down.
	busy atomic.Int32
	down atomic.Bool

	mu     sync.Mutex
	faults []*faultState
	fired  []string
	timers []*time.Timer
	caps   atomic.Pointer[[]*capSink]
}

func (el *engLink) close() {
	for _, d := range el.dirs {
		if d != nil {
			d.q.close()
		}
	}
	if el.fdA >= 0 {
		unix.Close(el.fdA)
		el.fdA = -1
	}
	if el.fdB >= 0 {
		unix.Close(el.fdB)
		el.fdB = -1
	}
}

func (el *engLink) stopTimers() {
	el.mu.Lock()
	defer el.mu.Unlock()
	for _, t := range el.timers {
		t.Stop()
	}
	el.timers = nil
}

// setDown takes the link down (both directions drop everything, as a cut
// cable; the interfaces keep their carrier, addresses and routes) or up.
func (el *engLink) setDown(down bool) {
	if el.down.Swap(down) == down {
		return
	}
	if down {
		el.busy.Add(1)
	} else {
		el.busy.Add(-1)
	}
}
