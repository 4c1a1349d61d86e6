package web

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/nodes"
)

// Bounds of what the server keeps per lab watched (docs/web.md).
const (
	ringMax      = 512      // events kept for Last-Event-ID resume
	logTailMax   = 1000     // output lines a fresh page gets
	logBatchMax  = 32 << 10 // bytes of output in one "log" event
	lineMax      = 4 << 10  // longer output lines are cut (the logs keep them whole)
	logBackfill  = 1 << 20  // how far back in output.log a watcher starts
	idleStop     = 30 * time.Second
	maxWatches   = 64 // labs watched at once
	sampleEvery  = time.Second
	tailEvery    = 200 * time.Millisecond
	callDeadline = 900 * time.Millisecond
)

type event struct {
	seq  uint64
	name string
	data []byte
}

// hub runs one watcher per lab that some page looks at.
type hub struct {
	mu      sync.Mutex
	watches map[string]*labWatch
	form    SpecForm
	ctx     context.Context
	cancel  context.CancelFunc // ends every watcher
	wg      sync.WaitGroup     // the watchers' goroutines
}

func newHub(ctx context.Context, form SpecForm) *hub {
	ctx, cancel := context.WithCancel(ctx)
	return &hub{watches: map[string]*labWatch{}, form: form, ctx: ctx, cancel: cancel}
}

// errTooManyLabs refuses a watcher beyond maxWatches.
var errTooManyLabs = errors.New("too many labs watched at once")

// acquire returns the lab's watcher, starting it if needed. exists says
// whether the lab has state now: a lab with neither state nor a watcher is
// not watched (a page asking for one that went down gets a 404).
func (h *hub) acquire(lab string, exists bool) (*labWatch, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.watches[lab]
	if w == nil && !exists {
		return nil, fmt.Errorf("lab %q: %w", lab, nodes.ErrNoLab)
	}
	if w == nil && len(h.watches) >= maxWatches {
		return nil, fmt.Errorf("lab %q: %w (%d)", lab, errTooManyLabs, maxWatches)
	}
	if w == nil {
		ctx, cancel := context.WithCancel(h.ctx)
		w = &labWatch{lab: lab, form: h.form, epoch: randomHex(4), notify: make(chan struct{}), poke: make(chan struct{}, 1),
			cancel: cancel, started: make(chan struct{})}
		h.watches[lab] = w
		h.wg.Add(1)
		go func() { defer h.wg.Done(); w.run(ctx) }()
	}
	w.refs++
	if w.idle != nil {
		w.idle.Stop()
		w.idle = nil
	}
	return w, nil
}

func (h *hub) release(w *labWatch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w.refs--
	if w.refs > 0 {
		return
	}
	w.idle = time.AfterFunc(idleStop, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if w.refs == 0 && h.watches[w.lab] == w {
			delete(h.watches, w.lab)
			w.cancel()
		}
	})
}

// markDown records that this server took a link down (or brought it up),
// so the page shows it at once: netem.Counts cannot say so, and a quiet
// link counts no drops while down.
func (h *hub) markDown(lab, link string, down bool) {
	h.mu.Lock()
	w := h.watches[lab]
	h.mu.Unlock()
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.downMarks == nil {
		w.downMarks = map[string]bool{}
	}
	if down {
		w.downMarks[link] = true
	} else {
		delete(w.downMarks, link)
	}
}

// poke asks a lab's watcher, if any, to sample now (after a change).
func (h *hub) poke(lab string) {
	h.mu.Lock()
	w := h.watches[lab]
	h.mu.Unlock()
	if w != nil {
		select {
		case w.poke <- struct{}{}:
		default:
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// labWatch samples one lab and keeps the events pages read.
type labWatch struct {
	lab     string
	form    SpecForm
	epoch   string // changes when a watcher restarts: older event ids mean nothing
	cancel  context.CancelFunc
	poke    chan struct{}
	started chan struct{} // closed once the first sample is in
	refs    int           // under hub.mu
	idle    *time.Timer   // under hub.mu

	mu        sync.Mutex
	seq       uint64
	ring      []event
	notify    chan struct{} // closed and replaced at each event
	topology  json.RawMessage
	programs  json.RawMessage
	checks    json.RawMessage
	counters  json.RawMessage
	down      json.RawMessage
	downMarks map[string]bool // links this server took down through the engine
	history   map[string][2][]float64
	logTail   []logWire
}

// logWire is one output line: time (Unix ms), host/program, stream (out,
// err, in, sys), text.
type logWire struct {
	T int64  `json:"t"`
	K string `json:"k"`
	S string `json:"s"`
	X string `json:"x"`
}

func (w *labWatch) emitLocked(name string, b []byte) {
	w.seq++
	w.ring = append(w.ring, event{seq: w.seq, name: name, data: b})
	if len(w.ring) > ringMax {
		w.ring = append(w.ring[:0:0], w.ring[len(w.ring)-ringMax:]...)
	}
	close(w.notify)
	w.notify = make(chan struct{})
}

// snapshot is everything a page needs to draw the lab from scratch.
type snapshot struct {
	Lab      string                  `json:"lab"`
	Topology json.RawMessage         `json:"topology"`
	Programs json.RawMessage         `json:"programs"`
	Checks   json.RawMessage         `json:"checks"`
	Counters json.RawMessage         `json:"counters"`
	Down     json.RawMessage         `json:"down"`
	History  map[string][2][]float64 `json:"history"`
	Log      []logWire               `json:"log"`
}

func (w *labWatch) snapshotLocked() snapshot {
	return snapshot{Lab: w.lab, Topology: orNull(w.topology), Programs: orNull(w.programs), Checks: orNull(w.checks),
		Counters: orNull(w.counters), Down: orNull(w.down), History: w.history, Log: append([]logWire(nil), w.logTail...)}
}

func orNull(b json.RawMessage) json.RawMessage {
	if b == nil {
		return json.RawMessage("null")
	}
	return b
}

// topoWire is a lab's graph and impairments, as the page draws them.
type topoWire struct {
	Lab     string     `json:"lab"`
	ID      string     `json:"id"`
	Phase   string     `json:"phase"`
	Backend string     `json:"backend"`
	Source  string     `json:"source"`
	Created time.Time  `json:"created"`
	Nodes   []nodeWire `json:"nodes"`
	Links   []linkTopo `json:"links"`
}

type nodeWire struct {
	Name   string             `json:"name"`
	Kind   string             `json:"kind"`
	NS     string             `json:"netns"`
	Ifaces []nodes.IfaceState `json:"interfaces"`
	Routes []string           `json:"routes,omitempty"`
}

type linkTopo struct {
	ID      string            `json:"id"`
	A       netem.End         `json:"a"`
	B       netem.End         `json:"b"`
	Via     string            `json:"via"`
	AtoB    string            `json:"a_to_b"` // as `labctl netem show` prints it
	BtoA    string            `json:"b_to_a"`
	AFields map[string]string `json:"a_fields"` // the form's fields
	BFields map[string]string `json:"b_fields"`
	Capture bool              `json:"capture"` // through the engine: capture works
}

func topologyOf(st *nodes.State, form SpecForm) topoWire {
	t := topoWire{Lab: st.Lab, ID: st.ID, Phase: st.Phase, Backend: st.Backend, Source: st.Source, Created: st.Created}
	for _, n := range st.Nodes {
		t.Nodes = append(t.Nodes, nodeWire{Name: n.Name, Kind: n.Kind, NS: n.NS, Ifaces: n.Ifaces, Routes: n.Routes})
	}
	for _, l := range st.Links {
		t.Links = append(t.Links, linkTopo{ID: l.ID, A: l.A, B: l.B, Via: l.Via, AtoB: l.AtoB.String(), BtoA: l.BtoA.String(),
			AFields: form.Format(l.AtoB), BFields: form.Format(l.BtoA), Capture: l.Via == netem.ViaTAP})
	}
	return t
}

// programWire is one program: from the plan, with its state.
type programWire struct {
	Program string `json:"program"` // host/program
	Host    string `json:"host"`
	Service bool   `json:"service,omitempty"`
	Command string `json:"command"`
	nodes.ProgramStatus
}

// countersWire is one sample of every link.
type countersWire struct {
	T     int64               `json:"t"` // Unix ms
	Links map[string]linkWire `json:"links"`
	Gone  []string            `json:"gone,omitempty"` // nodes whose namespace is missing
	Error string              `json:"error,omitempty"`
}

type fileMark struct {
	mod  time.Time
	size int64
}

func markOf(path string) (fileMark, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileMark{}, false
	}
	return fileMark{fi.ModTime(), fi.Size()}, true
}

// run samples the lab until ctx ends: the state file (topology,
// impairments, phase), counters, programs and checks every second, the
// output log five times a second.
func (w *labWatch) run(ctx context.Context) {
	hs := newHandles()
	defer hs.close()
	rk := newRateKeeper()
	var (
		st        *nodes.State
		stMark    fileMark
		resMark   fileMark
		plan      *nodes.Plan
		logf      *os.File
		logRd     *bufio.Reader
		partial   string
		wantProgs = true
	)
	defer func() {
		if logf != nil {
			logf.Close()
		}
	}()
	lastID := ""
	// forget drops what belonged to the deployment that is gone: a lab that
	// comes back under the same name is a new one.
	forget := func() {
		hs.close()
		rk = newRateKeeper()
		plan, partial, resMark = nil, "", fileMark{}
		if logf != nil {
			logf.Close()
			logf, logRd = nil, nil
		}
		w.mu.Lock()
		w.programs, w.checks, w.counters, w.history, w.logTail, w.downMarks = nil, nil, nil, nil, nil, nil
		w.mu.Unlock()
	}
	loadState := func() {
		m, ok := markOf(nodes.Dir(w.lab) + "/state.json")
		if !ok {
			if st != nil || w.down == nil {
				st = nil
				forget()
				b, _ := json.Marshal(map[string]string{"reason": "lab " + w.lab + " is down (it has no state on this machine)"})
				w.mu.Lock()
				w.down = b
				w.emitLocked("down", b)
				w.mu.Unlock()
			}
			return
		}
		if st != nil && m == stMark {
			return
		}
		s, err := nodes.Load(w.lab)
		if err != nil {
			return // being written: next time
		}
		if lastID != "" && s.ID != lastID {
			forget()
		}
		lastID = s.ID
		st, stMark = s, m
		b, _ := json.Marshal(topologyOf(s, w.form))
		w.mu.Lock()
		w.down = nil
		if string(b) != string(w.topology) {
			w.topology = b
			w.emitLocked("topology", b)
		}
		w.mu.Unlock()
	}
	sampleCounters := func() {
		if st == nil {
			return
		}
		// A namespace that is gone (the lab going down) is let go at once:
		// an open netlink socket would keep it, and its links, alive.
		var gone []string
		for _, n := range st.Nodes {
			if _, err := os.Stat(nsdo.Path(n.NS)); err != nil {
				gone = append(gone, n.Name)
				hs.drop(n.NS)
			}
		}
		if len(gone) == len(st.Nodes) {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, callDeadline)
		counts, down, err := readCounters(cctx, st, hs)
		cancel()
		w.mu.Lock()
		for id := range w.downMarks {
			c, now := counts[id]
			prev, had := rk.last[id]
			if now && had && (c[0].Delivered > prev[0].Delivered || c[1].Delivered > prev[1].Delivered) {
				delete(w.downMarks, id) // it delivers: up again, from elsewhere
				continue
			}
			down[id] = true
		}
		w.mu.Unlock()
		now := time.Now()
		cw := countersWire{T: now.UnixMilli(), Links: rk.sample(now, counts, down), Gone: gone}
		if err != nil {
			cw.Error = err.Error()
		}
		b, _ := json.Marshal(cw)
		w.mu.Lock()
		w.counters = b
		w.history = rk.historyCopy()
		w.emitLocked("counters", b)
		w.mu.Unlock()
	}
	samplePrograms := func() {
		if st == nil {
			return
		}
		if plan == nil {
			p, err := nodes.LoadPlan(w.lab)
			if err != nil {
				return // no programs (yet)
			}
			plan = p
		}
		cctx, cancel := context.WithTimeout(ctx, callDeadline)
		states, err := nodes.ProgramStates(cctx, w.lab)
		cancel()
		if err != nil {
			if res, rerr := nodes.LoadResult(w.lab); rerr == nil {
				states = res.Programs
			}
		}
		byKey := map[string]nodes.ProgramStatus{}
		for _, s := range states {
			byKey[s.Program] = s
		}
		var ps []programWire
		for _, h := range plan.Hosts {
			for _, p := range h.Programs {
				key := h.Name + "/" + p.Name
				s, ok := byKey[key]
				if !ok {
					s = nodes.ProgramStatus{Program: key, State: nodes.StateWaiting}
					if err != nil {
						s.State = "unknown"
						s.Detail = "the supervisor does not answer"
					}
				}
				ps = append(ps, programWire{Program: key, Host: h.Name, Service: p.Service, Command: strings.Join(p.Command, " "), ProgramStatus: s})
			}
		}
		b, _ := json.Marshal(ps)
		w.mu.Lock()
		if string(b) != string(w.programs) {
			w.programs = b
			w.emitLocked("programs", b)
		}
		w.mu.Unlock()
	}
	sampleChecks := func() {
		m, ok := markOf(nodes.ResultPath(w.lab))
		if !ok || m == resMark {
			return
		}
		res, err := nodes.LoadResult(w.lab)
		if err != nil {
			return
		}
		resMark = m
		b, _ := json.Marshal(res)
		w.mu.Lock()
		if string(b) != string(w.checks) {
			w.checks = b
			w.emitLocked("checks", b)
		}
		w.mu.Unlock()
	}
	// tail reads new output lines; backfill fills the tail without events.
	tail := func(backfill bool) {
		if st == nil {
			return
		}
		if logf == nil {
			f, err := os.Open(nodes.OutputLog(w.lab))
			if err != nil {
				return
			}
			logf, logRd = f, bufio.NewReaderSize(f, 64<<10)
			if fi, err := f.Stat(); err == nil && fi.Size() > logBackfill {
				_, _ = f.Seek(fi.Size()-logBackfill, io.SeekStart)
				logRd.Reset(f)
				_, _ = logRd.ReadString('\n') // a partial line
			}
			backfill = true
		}
		var batch []logWire
		size := 0
		flush := func() {
			if len(batch) == 0 {
				return
			}
			w.mu.Lock()
			w.logTail = append(w.logTail, batch...)
			if len(w.logTail) > logTailMax {
				w.logTail = append(w.logTail[:0:0], w.logTail[len(w.logTail)-logTailMax:]...)
			}
			if !backfill {
				b, _ := json.Marshal(batch)
				w.emitLocked("log", b)
			}
			w.mu.Unlock()
			batch, size = nil, 0
		}
		for {
			s, err := logRd.ReadString('\n')
			if err != nil {
				partial += s
				if len(partial) > 1<<20 { // a runaway line: bounded
					partial = partial[:1<<20]
				}
				break
			}
			l, ok := parseOutput(strings.TrimSuffix(partial+s, "\n"))
			partial = ""
			if !ok {
				continue
			}
			if l.S == "sys" {
				wantProgs = true
			}
			batch = append(batch, l)
			size += len(l.X) + len(l.K) + 32
			if size >= logBatchMax {
				flush()
			}
		}
		flush()
	}
	loadState()
	tail(true)
	samplePrograms()
	sampleChecks()
	sampleCounters()
	close(w.started)
	sample := time.NewTicker(sampleEvery)
	defer sample.Stop()
	tailT := time.NewTicker(tailEvery)
	defer tailT.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tailT.C:
			tail(false)
			if wantProgs {
				wantProgs = false
				samplePrograms()
				sampleChecks()
			}
		case <-w.poke:
			loadState()
			sampleCounters()
			samplePrograms()
		case <-sample.C:
			loadState()
			sampleCounters()
			samplePrograms()
			sampleChecks()
		}
	}
}

// parseOutput reads one line of output.log: TIME KEY STREAM TEXT.
func parseOutput(s string) (logWire, bool) {
	f := strings.SplitN(s, " ", 4)
	if len(f) < 3 {
		return logWire{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, f[0])
	if err != nil {
		return logWire{}, false
	}
	l := logWire{T: t.UnixMilli(), K: f[1], S: f[2]}
	if len(f) == 4 {
		l.X = f[3]
	}
	if len(l.X) > lineMax {
		l.X = l.X[:lineMax] + " …(cut; the full line is in labctl logs)"
	}
	return l, true
}

// errNoLab is returned for a lab the server does not serve.
var errNoLab = errors.New("no such lab")
