package netem

// The userspace backend: each link that goes through the engine is a TAP
// device at each end, joined by the lab's engine process (`labctl engine
// LAB`), which applies the Spec per direction. It needs no sch_netem, and
// it adds what netem cannot: the same fates from the same seed on every
// run, scripted per-packet faults, and per-link capture.
//
// Which links go through the engine (policy):
//   - a link impaired in the lab file, or with scripted faults, always;
//   - an unimpaired link too, when the lab has at most MaxEngineLinks
//     links, so that `labctl netem set` can impair it live;
//   - otherwise an unimpaired link is a plain veth pair (kernel speed, no
//     engine thread pair per direction), and `netem set` on it says why it
//     cannot change.
// The lab's size is read from its state file, which nodes writes (phase
// "deploying") before it creates any link; without one (a test) the lab
// counts as small.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// MaxEngineLinks is the lab size up to which clean links go through the
// engine too.
const MaxEngineLinks = 64

type userspace struct {
	lab    string
	once   sync.Once
	nlinks int
}

// NewUserspace returns the TAP + engine backend for a lab.
func NewUserspace(lab string) Backend { return &userspace{lab: lab} }

// UserspaceAvailable reports whether TAP devices can be made here.
func UserspaceAvailable() error {
	fd, err := unix.Open(tunPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", tunPath, err)
	}
	unix.Close(fd)
	return nil
}

func (*userspace) Name() string { return BackendUserspace }

// linkCount reads how many links the lab's state file lists.
func (u *userspace) linkCount() int {
	u.once.Do(func() {
		b, err := os.ReadFile(filepath.Join(EngineRoot, u.lab, "state.json"))
		if err != nil {
			return
		}
		var st struct {
			Links []json.RawMessage `json:"links"`
		}
		if json.Unmarshal(b, &st) == nil {
			u.nlinks = len(st.Links)
		}
	})
	return u.nlinks
}

// viaEngine applies the policy above.
func (u *userspace) viaEngine(l Link) bool {
	return l.Impaired() || len(l.Faults) > 0 || u.linkCount() <= MaxEngineLinks
}

// Create makes the link's two TAP ends (or a veth pair, by the policy);
// the engine, started once all links exist, joins the TAPs.
func (u *userspace) Create(ctx context.Context, l *Link) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, d := range []Dir{AtoB, BtoA} {
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
		l.Via = ViaVeth
		return CreateVeth(ctx, *l)
	}
	if err := createTAPLink(*l); err != nil {
		return err
	}
	l.Via = ViaTAP
	return nil
}

// errVeth explains why a clean link of a large lab cannot change.
func (u *userspace) errVeth(l Link) error {
	return fmt.Errorf("link %q is a plain veth pair: the lab has more than %d links, so links left clean in the lab file do not go through the userspace engine; impair it in the lab file to change it live: %w",
		l.ID, MaxEngineLinks, ErrUnsupported)
}

// Set replaces one direction's impairment in the running engine. It does
// not change the lab file or the state file.
func (u *userspace) Set(ctx context.Context, l Link, d Dir, s Spec) error {
	if l.Via != ViaTAP {
		return u.errVeth(l)
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("link %q: %s: %w", l.ID, d, err)
	}
	_, err := engineCall(ctx, u.lab, ctlRequest{Op: "set", Link: l.ID, Dir: d.String(), Spec: &s})
	return err
}

// Show reads back the impairments in force in the engine; a veth link of
// this backend is clean.
func (u *userspace) Show(ctx context.Context, l Link) (Spec, Spec, error) {
	if l.Via != ViaTAP {
		return Spec{}, Spec{}, nil
	}
	r, err := engineCall(ctx, u.lab, ctlRequest{Op: "show", Link: l.ID})
	if err != nil {
		return Spec{}, Spec{}, err
	}
	if r.AtoB == nil || r.BtoA == nil {
		return Spec{}, Spec{}, errors.New("engine answered show without specs")
	}
	return *r.AtoB, *r.BtoA, nil
}

// DeleteTAPLink removes both TAP ends of a link (deleting the namespaces
// removes them too).
func DeleteTAPLink(l Link) error {
	return errors.Join(deleteTAP(l.A), deleteTAP(l.B))
}

// RunEngine serves a lab's TAP links until ctx is done (the body of
// `labctl engine LAB`).
func RunEngine(ctx context.Context, cfg EngineConfig) error {
	e, err := NewEngine(cfg)
	if err != nil {
		return err
	}
	return e.Serve(ctx)
}
