package engine

// The userspace backend: each link that goes through the engine is a TAP
// device at each end, joined by the lab's engine process, which applies the
// Spec per direction. It needs no sch_netem, and it adds what netem cannot:
// the same fates from the same seed on every run, scripted per-packet
// faults, per-link capture and counters split by cause.
//
// Which links go through the engine (policy):
//   - a link impaired in the lab file, or with scripted faults, always;
//   - an unimpaired link too, when the lab has at most MaxEngineLinks
//     links (Options.Links), so that `labctl netem set` can impair it live;
//   - otherwise an unimpaired link is a plain veth pair (kernel speed, no
//     engine thread pair per direction), and a live change on it says why
//     it cannot change.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/topo"
	"golang.org/x/sys/unix"
)

// MaxEngineLinks is the lab size up to which clean links go through the
// engine too.
const MaxEngineLinks = 64

// Options are what the userspace backend of one lab is given.
type Options struct {
	Lab string
	// Dir is the lab's folder (the caller owns it): the engine keeps its
	// control socket (engine.sock) and its configuration (engine.json) there.
	Dir string
	// Seed seeds every fate the engine draws.
	Seed int64
	// Links is how many links the lab has, for the policy above.
	Links int
	// Launch starts the engine process, which must call Serve(ctx, Dir, …)
	// (labctl runs `labctl engine LAB`). It returns a function that says
	// whether the process still runs, for a clear error when it dies at
	// start. Only Start needs it.
	Launch func() (alive func() bool, err error)
	Log    *slog.Logger
}

// Socket is the engine's control socket in a lab's folder.
func Socket(dir string) string { return filepath.Join(dir, "engine.sock") }

func configPath(dir string) string { return filepath.Join(dir, "engine.json") }

type userspace struct{ o Options }

// NewBackend returns the TAP + engine backend for a lab.
func NewBackend(o Options) netem.Backend {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &userspace{o: o}
}

// Candidate is the userspace backend as netem.Select chooses it.
func Candidate(o Options) netem.Candidate {
	return netem.Candidate{
		Name:      netem.BackendUserspace,
		Available: func(context.Context) error { return Available() },
		New:       func() netem.Backend { return NewBackend(o) },
	}
}

// Available reports whether TAP devices can be made here.
func Available() error {
	fd, err := unix.Open(tunPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", tunPath, err)
	}
	unix.Close(fd)
	return nil
}

func (*userspace) Name() string { return netem.BackendUserspace }

// viaEngine applies the policy above.
func (u *userspace) viaEngine(l netem.Link) bool {
	return l.Impaired() || len(l.Faults) > 0 || u.o.Links <= MaxEngineLinks
}

// Create makes the link's two TAP ends (or a veth pair, by the policy);
// the engine, started once all links exist (Start), joins the TAPs.
func (u *userspace) Create(ctx context.Context, l *netem.Link) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, d := range []netem.Dir{netem.AtoB, netem.BtoA} {
		if err := l.Spec(d).Validate(); err != nil {
			return fmt.Errorf("link %q: %s: %w", l.ID, d, err)
		}
	}
	for _, f := range l.Faults {
		if err := f.Validate(l.ID, l.A.Node, l.B.Node); err != nil {
			return err
		}
	}
	if !u.viaEngine(*l) {
		l.Via = netem.ViaVeth
		return netem.CreateVeth(ctx, *l)
	}
	if err := createTAPLink(*l); err != nil {
		return err
	}
	l.Via = netem.ViaTAP
	return nil
}

// served says why a link cannot be asked of the engine, if it cannot.
func (u *userspace) served(l netem.Link) error {
	if l.Via == netem.ViaTAP {
		return nil
	}
	return fmt.Errorf("link %q is a plain veth pair: the lab has more than %d links, so links left clean in the lab file do not go through the userspace engine; impair it in the lab file to change, fault, capture or count it live: %w",
		l.ID, MaxEngineLinks, netem.ErrUnsupported)
}

// Set replaces one direction's impairment in the running engine. It does
// not change the lab file or the lab's state.
func (u *userspace) Set(ctx context.Context, l netem.Link, d netem.Dir, s netem.Spec) error {
	if err := u.served(l); err != nil {
		return err
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("link %q: %s: %w", l.ID, d, err)
	}
	_, err := u.call(ctx, ctlRequest{Op: "set", Link: l.ID, Dir: d.String(), Spec: &s})
	return err
}

// Show reads back the impairments in force in the engine; a veth link of
// this backend is clean.
func (u *userspace) Show(ctx context.Context, l netem.Link) (netem.Spec, netem.Spec, error) {
	if l.Via != netem.ViaTAP {
		return netem.Spec{}, netem.Spec{}, nil
	}
	r, err := u.call(ctx, ctlRequest{Op: "show", Link: l.ID})
	if err != nil {
		return netem.Spec{}, netem.Spec{}, err
	}
	if r.AtoB == nil || r.BtoA == nil {
		return netem.Spec{}, netem.Spec{}, errors.New("engine answered show without specs")
	}
	return *r.AtoB, *r.BtoA, nil
}

// engineFile is what Start hands the engine process, in Dir/engine.json.
type engineFile struct {
	Lab   string       `json:"lab"`
	Seed  int64        `json:"seed"`
	Links []netem.Link `json:"links"`
}

// Start runs the lab's engine once every link exists: it writes the links
// to the lab's folder, launches the engine process and waits, bounded in
// time, until it serves them and their TAP ends are up. With no TAP link
// it does nothing.
func (u *userspace) Start(ctx context.Context, links []netem.Link) error {
	tap := false
	for _, l := range links {
		tap = tap || l.Via == netem.ViaTAP
	}
	if !tap {
		return nil
	}
	if u.o.Launch == nil {
		return fmt.Errorf("lab %q: the userspace backend was given no way to launch its engine", u.o.Lab)
	}
	if err := writeConfig(u.o.Dir, engineFile{Lab: u.o.Lab, Seed: u.o.Seed, Links: links}); err != nil {
		return fmt.Errorf("lab %q: engine: %w", u.o.Lab, err)
	}
	alive, err := u.o.Launch()
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := waitSocket(wctx, Socket(u.o.Dir)); err != nil {
		if !alive() {
			return fmt.Errorf("lab %q: the link engine stopped at start (see its log in %s): %w", u.o.Lab, u.o.Dir, err)
		}
		return fmt.Errorf("lab %q: the link engine is not serving: %w", u.o.Lab, err)
	}
	if err := waitTAPsUp(ctx, links); err != nil {
		if ctx.Err() != nil {
			return err
		}
		// The kernel is slow to pass carrier on (linkwatch needs RTNL, which
		// a machine deleting many namespaces holds for long): the links will
		// forward shortly, and programs retry; a failed up helps no one.
		u.o.Log.Warn("links are slow to come up; going on", "lab", u.o.Lab, "err", err)
	}
	return nil
}

// Stop asks the lab's engine to stop and waits, bounded by ctx, until its
// socket is gone. An engine that does not run is not an error.
func (u *userspace) Stop(ctx context.Context) error {
	sock := Socket(u.o.Dir)
	c, _, _, err := dialEngine(ctx, sock, ctlRequest{Op: "stop"})
	if errors.Is(err, ErrEngineDown) {
		return RemoveSocket(u.o.Dir)
	}
	if err != nil {
		return fmt.Errorf("lab %q: stop engine: %w", u.o.Lab, err)
	}
	c.Close()
	for {
		if _, err := os.Stat(sock); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab %q: stop engine: %w", u.o.Lab, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func writeConfig(dir string, f engineFile) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	tmp := configPath(dir) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, configPath(dir))
}

// Serve is the engine process: it reads what Start wrote in dir and serves
// those links until ctx is done or Stop asks it to end.
func Serve(ctx context.Context, dir string, log *slog.Logger) error {
	b, err := os.ReadFile(configPath(dir))
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	var f engineFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("engine: %s: %w", configPath(dir), err)
	}
	e, err := New(Config{Lab: f.Lab, Seed: f.Seed, Links: f.Links, Socket: Socket(dir), Logger: log})
	if err != nil {
		return err
	}
	return e.Serve(ctx)
}

// AddFaults arms scripted faults on a link of a running lab.
func (u *userspace) AddFaults(ctx context.Context, l netem.Link, fs []netem.Fault) error {
	if err := u.served(l); err != nil {
		return err
	}
	_, err := u.call(ctx, ctlRequest{Op: "faults", Link: l.ID, Faults: fs})
	return err
}

// ListFaults returns a link's pending and fired faults.
func (u *userspace) ListFaults(ctx context.Context, l netem.Link) (pending, fired []string, err error) {
	if err := u.served(l); err != nil {
		return nil, nil, err
	}
	r, err := u.call(ctx, ctlRequest{Op: "list", Link: l.ID})
	return r.Pending, r.Fired, err
}

// ClearFaults disarms a link's pending faults and brings it up.
func (u *userspace) ClearFaults(ctx context.Context, l netem.Link) error {
	if err := u.served(l); err != nil {
		return err
	}
	_, err := u.call(ctx, ctlRequest{Op: "clear", Link: l.ID})
	return err
}

// LinkDown takes a link down for d (0: until LinkUp).
func (u *userspace) LinkDown(ctx context.Context, l netem.Link, d time.Duration) error {
	if err := u.served(l); err != nil {
		return err
	}
	_, err := u.call(ctx, ctlRequest{Op: "down", Link: l.ID, For: topo.Duration(d)})
	return err
}

// LinkUp brings a link back up.
func (u *userspace) LinkUp(ctx context.Context, l netem.Link) error {
	if err := u.served(l); err != nil {
		return err
	}
	_, err := u.call(ctx, ctlRequest{Op: "up", Link: l.ID})
	return err
}

// Capture streams a pcapng capture of a link to w until ctx ends.
func (u *userspace) Capture(ctx context.Context, l netem.Link, point string, w io.Writer) error {
	if err := u.served(l); err != nil {
		return err
	}
	return capture(ctx, Socket(u.o.Dir), u.o.Lab, l.ID, point, w)
}

// Counters reads a link's counters from the engine (since it started).
func (u *userspace) Counters(ctx context.Context, l netem.Link) (atob, btoa netem.Counts, err error) {
	if err := u.served(l); err != nil {
		return atob, btoa, err
	}
	r, err := u.call(ctx, ctlRequest{Op: "stats", Link: l.ID})
	if err != nil {
		return atob, btoa, err
	}
	for _, s := range r.Stats {
		if s.Link == l.ID {
			return s.AtoB.Counts(), s.BtoA.Counts(), nil
		}
	}
	return atob, btoa, fmt.Errorf("link %q: %w", l.ID, ErrNotEngineLink)
}

// call is one request to the lab's engine and its answer.
func (u *userspace) call(ctx context.Context, req ctlRequest) (ctlResponse, error) {
	c, _, resp, err := dialEngine(ctx, Socket(u.o.Dir), req)
	if err != nil {
		return resp, fmt.Errorf("lab %q: engine: %w", u.o.Lab, err)
	}
	c.Close()
	return resp, nil
}

// DeleteTAPLink removes both TAP ends of a link (deleting the namespaces
// removes them too).
func DeleteTAPLink(l netem.Link) error {
	return errors.Join(deleteTAP(l.A), deleteTAP(l.B))
}
