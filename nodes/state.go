package nodes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/labctl/labctl/netem"
)

// StateRoot holds one folder per lab: its state file, logs and sockets.
var StateRoot = "/run/labctl"

// ErrNoLab is returned for a lab with no state on this machine.
var ErrNoLab = errors.New("no such lab")

// Phases of a lab's life, recorded in its state file.
const (
	PhaseDeploying  = "deploying" // write-ahead: what is listed may or may not exist yet
	PhaseUp         = "up"
	PhaseDestroying = "destroying"
)

// State is what labctl knows of a deployed lab. It is written before the
// objects it lists are created (phase "deploying"), so that `down` can
// remove the leftovers of an `up` that crashed at any point.
type State struct {
	Lab        string       `json:"lab"`
	ID         string       `json:"id"`  // random, per deployment
	Tag        string       `json:"tag"` // alias set on every interface labctl made
	Phase      string       `json:"phase"`
	Created    time.Time    `json:"created"`
	Source     string       `json:"source"` // lab file, builtin:NAME or topo:SPEC
	Backend    string       `json:"backend"`
	Seed       int64        `json:"seed,omitempty"`
	Namespaces []string     `json:"namespaces"`
	Nodes      []NodeState  `json:"nodes"`
	Links      []netem.Link `json:"links"`
	Daemons    []Daemon     `json:"daemons,omitempty"`
}

// NodeState is one node: its namespace and interfaces.
type NodeState struct {
	Name   string       `json:"name"`
	Kind   string       `json:"kind"` // host, switch, router
	NS     string       `json:"netns"`
	Ifaces []IfaceState `json:"interfaces"`
	Routes []string     `json:"routes,omitempty"`
}

// IfaceState is one interface of a node.
type IfaceState struct {
	Name  string   `json:"name"`
	Link  string   `json:"link"`            // link id
	Peer  string   `json:"peer"`            // node at the other end
	Addrs []string `json:"addrs,omitempty"` // CIDR
	MAC   string   `json:"mac,omitempty"`
}

// Daemon is a long-running labctl process that serves a lab (the programs
// supervisor, the userspace link engine). PID plus start time identify it,
// so a recycled PID is never killed.
type Daemon struct {
	Role      string `json:"role"`
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"` // field 22 of /proc/PID/stat
}

// Dir is the lab's state folder.
func Dir(lab string) string { return filepath.Join(StateRoot, lab) }

func statePath(lab string) string { return filepath.Join(Dir(lab), "state.json") }

// Node returns the named node's state.
func (s *State) Node(name string) (*NodeState, bool) {
	for i := range s.Nodes {
		if s.Nodes[i].Name == name {
			return &s.Nodes[i], true
		}
	}
	return nil, false
}

// Link returns the link with this id.
func (s *State) Link(id string) (*netem.Link, bool) {
	for i := range s.Links {
		if s.Links[i].ID == id {
			return &s.Links[i], true
		}
	}
	return nil, false
}

// save writes the state atomically: a temporary file of its own (so that
// two writers never share one), fsync, rename over state.json, fsync of the
// folder. Only a holder of the lab's lock may call it (Deploy, Destroy,
// UpdateState): the lock makes each change one read-modify-write, and
// keeps a writer from recreating the state of a lab that `down` removed.
func (s *State) save() error {
	if err := os.MkdirAll(Dir(s.Lab), 0o755); err != nil {
		return fmt.Errorf("lab %q: state folder: %w", s.Lab, err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("lab %q: encode state: %w", s.Lab, err)
	}
	if err := replaceFile(statePath(s.Lab), append(b, '\n')); err != nil {
		return fmt.Errorf("lab %q: write state: %w", s.Lab, err)
	}
	return nil
}

// replaceFile puts b at path through a uniquely named temporary file in the
// same folder, synced before and after the rename, so a reader (or a crash)
// sees the old content or the new, never a mix.
func replaceFile(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// UpdateState is the one way to change a lab that is up: under the lab's
// lock it reads the current state, runs fn on it and, if fn succeeds,
// writes it back. It waits for the lock as long as ctx allows. It returns
// ErrNoLab (wrapped) when the lab is not up, so that a change racing
// `down` never brings the state of a removed lab back.
func UpdateState(ctx context.Context, lab string, fn func(*State) error) error {
	unlock, err := lockLab(ctx, lab)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := Load(lab)
	if err != nil {
		return err
	}
	switch st.Phase {
	case PhaseUp:
	case PhaseDestroying:
		return fmt.Errorf("lab %q is being taken down: %w", lab, ErrNoLab)
	default:
		return fmt.Errorf("lab %q: a previous run left it %s: run `labctl down %s` first", lab, st.Phase, lab)
	}
	if err := fn(st); err != nil {
		return err
	}
	return st.save()
}

// Load reads a lab's state; ErrNoLab when it has none.
func Load(lab string) (*State, error) {
	if err := checkLabName(lab); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(statePath(lab))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lab %q: %w", lab, ErrNoLab)
	}
	if err != nil {
		return nil, fmt.Errorf("lab %q: %w", lab, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("lab %q: state file %s is empty", lab, statePath(lab))
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("lab %q: state file %s: %w", lab, statePath(lab), err)
	}
	return &s, nil
}

// List returns the names of the labs that have state on this machine.
func List() ([]string, error) {
	ents, err := os.ReadDir(StateRoot)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var labs []string
	for _, e := range ents {
		if _, err := os.Stat(statePath(e.Name())); e.IsDir() && err == nil {
			labs = append(labs, e.Name())
		}
	}
	sort.Strings(labs)
	return labs, nil
}
