// Package web is `labctl web`: one page, embedded in the binary, that shows
// the labs on this machine live — topology, per-link impairments and
// counters, programs, their output and the checks — and changes them
// (impairments, links down and up, program restarts).
//
// The server reads what labctl already keeps: each lab's state, plan,
// output log and result under /run/labctl/LAB/, the engine's and the
// supervisor's control sockets, and netlink counters. It pushes changes to
// the page as server-sent events, resumable with Last-Event-ID.
//
// Safety: it listens on loopback by default. Every change needs the token
// it prints at start, a POST with a JSON body and an Origin that matches
// the Host; on any other address reading needs the token too. Nothing it
// offers runs a command in a host.
package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labctl/labctl/nodes"
)

//go:embed static
var static embed.FS

// DefaultListen is where `labctl web` listens unless told otherwise.
const DefaultListen = "127.0.0.1:8350"

// Options configure a Server.
type Options struct {
	Lab   string   // serve only this lab ("": every lab on the machine)
	Token string   // "": a random one
	Spec  SpecForm // the impairment form: `labctl netem set`'s flags (required)
	Log   *slog.Logger
}

// Server serves the page and its API.
type Server struct {
	opts     Options
	addr     string // the address it listens on, host:port
	loopback bool
	token    string
	hub      *hub
	mux      *http.ServeMux
	setMu    sync.Mutex    // one change at a time: they rewrite the lab's state file
	streams  chan struct{} // one token per open event stream
	log      *slog.Logger
}

// New makes a server for a listener bound to addr (host:port, as the
// listener reports it). ctx bounds the watchers it starts.
func New(ctx context.Context, addr string, opts Options) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	if opts.Spec == nil {
		return nil, errors.New("web: no impairment form (Options.Spec)")
	}
	tok := opts.Token
	if tok == "" {
		tok = randomHex(16)
	}
	lg := opts.Log
	if lg == nil {
		lg = slog.Default()
	}
	s := &Server{opts: opts, addr: addr, loopback: IsLoopback(host), token: tok, hub: newHub(ctx, opts.Spec), log: lg,
		streams: make(chan struct{}, maxStreams)}
	s.routes()
	return s, nil
}

// IsLoopback says whether host (an IP or "localhost") is only reachable
// from this machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Token is the secret that changes need (and, off loopback, reading).
func (s *Server) Token() string { return s.token }

// URL is the address to open, with the token.
func (s *Server) URL() string {
	host, port, _ := net.SplitHostPort(s.addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "HOSTNAME"
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: "/"}
	if s.opts.Lab != "" {
		u.Fragment = "lab=" + s.opts.Lab
	}
	q := url.Values{"token": {s.token}}
	u.RawQuery = q.Encode()
	return u.String()
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) routes() {
	m := http.NewServeMux()
	sub, _ := fs.Sub(static, "static")
	files := http.FileServerFS(sub)
	m.Handle("GET /{$}", s.read(http.HandlerFunc(s.index)))
	m.Handle("GET /static/", s.read(http.StripPrefix("/static/", noCache(files))))
	m.Handle("GET /api/session", s.read(http.HandlerFunc(s.session)))
	m.Handle("GET /api/labs", s.read(http.HandlerFunc(s.labs)))
	m.Handle("GET /api/labs/{lab}", s.read(http.HandlerFunc(s.labSnapshot)))
	m.Handle("GET /api/labs/{lab}/events", s.read(http.HandlerFunc(s.events)))
	m.Handle("GET /api/labs/{lab}/links/{link}/capture", s.read(http.HandlerFunc(s.capture)))
	m.Handle("POST /api/labs/{lab}/links/{link}/netem", s.write(http.HandlerFunc(s.setNetem)))
	m.Handle("POST /api/labs/{lab}/links/{link}/down", s.write(http.HandlerFunc(s.linkDown)))
	m.Handle("POST /api/labs/{lab}/links/{link}/up", s.write(http.HandlerFunc(s.linkUp)))
	m.Handle("POST /api/labs/{lab}/programs/{host}/{prog}/restart", s.write(http.HandlerFunc(s.restart)))
	s.mux = m
}

func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

func (s *Server) cookieName() string {
	_, port, _ := net.SplitHostPort(s.addr)
	return "labctl_token_" + port
}

// hasToken says whether the request carries the token: the cookie the
// page got when opened with ?token=, or an X-Labctl-Token header.
func (s *Server) hasToken(r *http.Request) bool {
	given := r.Header.Get("X-Labctl-Token")
	if given == "" {
		if c, err := r.Cookie(s.cookieName()); err == nil {
			given = c.Value
		}
	}
	return given != "" && subtle.ConstantTimeCompare([]byte(given), []byte(s.token)) == 1
}

// hostOK refuses, on loopback, a Host header naming another machine: a
// page from elsewhere that rebinds its DNS name to 127.0.0.1 gets nothing.
func (s *Server) hostOK(r *http.Request) bool {
	if !s.loopback {
		return true
	}
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		return false
	}
	_, myPort, _ := net.SplitHostPort(s.addr)
	return port == myPort && IsLoopback(strings.Trim(host, "[]"))
}

func (s *Server) read(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		if !s.hostOK(r) {
			httpError(w, http.StatusForbidden, fmt.Sprintf("host %q: this server answers only to its loopback address", r.Host))
			return
		}
		if r.URL.Path == "/" && r.URL.Query().Has("token") {
			s.login(w, r)
			return
		}
		if !s.loopback && !s.hasToken(r) {
			httpError(w, http.StatusUnauthorized, "this server needs the token `labctl web` printed: open the URL it printed")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// login turns ?token= into a cookie and sends the page away from the URL
// that holds it.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) != 1 {
		httpError(w, http.StatusUnauthorized, "wrong token: open the URL `labctl web` printed")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: s.token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// write guards a change: the token, a JSON body, and an Origin that is
// this server (a page from elsewhere cannot post here in the user's name).
func (s *Server) write(h http.Handler) http.Handler {
	return s.read(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hasToken(r) {
			httpError(w, http.StatusUnauthorized, "changes need the token `labctl web` printed: open the URL it printed")
			return
		}
		origin := r.Header.Get("Origin")
		if origin == "" || (origin != "http://"+r.Host && origin != "https://"+r.Host) {
			httpError(w, http.StatusForbidden, fmt.Sprintf("origin %q: changes are accepted only from this server's own page", origin))
			return
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			httpError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q: want application/json", ct))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		h.ServeHTTP(w, r)
	}))
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	b, err := static.ReadFile("static/index.html")
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")
	_, _ = w.Write(b)
}

func (s *Server) session(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"write": s.hasToken(r), "lab": s.opts.Lab, "loopback": s.loopback, "fields": s.opts.Spec.Fields()})
}

// labInfo is one line of the lab list.
type labInfo struct {
	Lab     string    `json:"lab"`
	Phase   string    `json:"phase"`
	Backend string    `json:"backend"`
	Source  string    `json:"source"`
	Nodes   int       `json:"nodes"`
	Links   int       `json:"links"`
	Created time.Time `json:"created"`
	Error   string    `json:"error,omitempty"`
}

func (s *Server) labNames() ([]string, error) {
	if s.opts.Lab != "" {
		return []string{s.opts.Lab}, nil
	}
	return nodes.List()
}

func (s *Server) labs(w http.ResponseWriter, r *http.Request) {
	names, err := s.labNames()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []labInfo{}
	for _, n := range names {
		st, err := nodes.Load(n)
		if err != nil {
			if s.opts.Lab != "" {
				out = append(out, labInfo{Lab: n, Phase: "down", Error: err.Error()})
			} else {
				out = append(out, labInfo{Lab: n, Error: err.Error()})
			}
			continue
		}
		out = append(out, labInfo{Lab: st.Lab, Phase: st.Phase, Backend: st.Backend, Source: st.Source,
			Nodes: len(st.Nodes), Links: len(st.Links), Created: st.Created})
	}
	writeJSON(w, http.StatusOK, out)
}

// servedLab returns the lab named in the path, if this server serves it.
// A lab that went down is still served (its page says so).
func (s *Server) servedLab(w http.ResponseWriter, r *http.Request) (string, bool) {
	lab := r.PathValue("lab")
	if s.opts.Lab != "" && lab != s.opts.Lab || lab == "" || strings.ContainsAny(lab, "/\\") || lab == "." || lab == ".." {
		httpError(w, http.StatusNotFound, fmt.Sprintf("lab %q: %v", lab, errNoLab))
		return "", false
	}
	return lab, true
}

func (s *Server) labSnapshot(w http.ResponseWriter, r *http.Request) {
	lab, ok := s.servedLab(w, r)
	if !ok {
		return
	}
	_, err := nodes.Load(lab)
	if err != nil {
		httpError(w, http.StatusNotFound, err.Error())
		return
	}
	lw, err := s.hub.acquire(lab, true)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer s.hub.release(lw)
	waitStarted(r.Context(), lw)
	lw.mu.Lock()
	snap := lw.snapshotLocked()
	lw.mu.Unlock()
	writeJSON(w, http.StatusOK, snap)
}

func waitStarted(ctx context.Context, lw *labWatch) {
	select {
	case <-lw.started:
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
	}
}

// Streams: at most maxStreams pages at once; one that does not take an
// event within streamWriteTimeout is dropped.
const (
	maxStreams         = 128
	streamWriteTimeout = 30 * time.Second
)

type flushFunc func()

func (f flushFunc) Flush() { f() }

// events streams a lab's events. A page that reconnects with a
// Last-Event-ID still in the ring gets what it missed; any other gets a
// "snapshot" event first, then the live events.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	lab, ok := s.servedLab(w, r)
	if !ok {
		return
	}
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		httpError(w, http.StatusServiceUnavailable, fmt.Sprintf("already %d pages open: close one", maxStreams))
		return
	}
	rc := http.NewResponseController(w)
	fl := flushFunc(func() {
		// A page that stops reading is let go rather than held forever.
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		_ = rc.Flush()
	})
	_, lerr := nodes.Load(lab)
	lw, err := s.hub.acquire(lab, lerr == nil)
	if err != nil {
		code := http.StatusServiceUnavailable
		if errors.Is(err, nodes.ErrNoLab) {
			code = http.StatusNotFound
		}
		httpError(w, code, err.Error())
		return
	}
	defer s.hub.release(lw)
	waitStarted(r.Context(), lw)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last")
	}
	var cursor uint64
	resumed := false
	lw.mu.Lock()
	if ep, seqStr, ok := strings.Cut(last, "-"); ok && ep == lw.epoch {
		if n, err := strconv.ParseUint(seqStr, 10, 64); err == nil && n <= lw.seq && (len(lw.ring) == 0 || n+1 >= lw.ring[0].seq) {
			cursor, resumed = n, true
		}
	}
	var snap []byte
	if !resumed {
		cursor = lw.seq
		snap, _ = json.Marshal(lw.snapshotLocked())
	}
	lw.mu.Unlock()
	_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if snap != nil {
		fmt.Fprintf(w, "retry: 1000\nid: %s-%d\nevent: snapshot\ndata: %s\n\n", lw.epoch, cursor, snap)
	}
	fl.Flush()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		lw.mu.Lock()
		var pending []event
		if len(lw.ring) > 0 && cursor < lw.seq {
			i := 0
			if cursor >= lw.ring[0].seq {
				i = int(cursor - lw.ring[0].seq + 1)
			}
			pending = append(pending, lw.ring[i:]...)
		}
		ch := lw.notify
		lw.mu.Unlock()
		if len(pending) > 0 && pending[0].seq > cursor+1 {
			// Fell behind the ring: start this page afresh.
			lw.mu.Lock()
			cursor = lw.seq
			snap, _ := json.Marshal(lw.snapshotLocked())
			lw.mu.Unlock()
			fmt.Fprintf(w, "id: %s-%d\nevent: snapshot\ndata: %s\n\n", lw.epoch, cursor, snap)
			fl.Flush()
			continue
		}
		for _, e := range pending {
			if _, err := fmt.Fprintf(w, "id: %s-%d\nevent: %s\ndata: %s\n\n", lw.epoch, e.seq, e.name, e.data); err != nil {
				return
			}
			cursor = e.seq
		}
		if len(pending) > 0 {
			fl.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-ch:
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}
