package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/nodes"
)

// liveLink finds a link of a lab that is up, or answers the error.
func (s *Server) liveLink(w http.ResponseWriter, r *http.Request) (*nodes.State, *netem.Link, bool) {
	lab, ok := s.servedLab(w, r)
	if !ok {
		return nil, nil, false
	}
	st, err := nodes.Load(lab)
	if err != nil {
		httpError(w, http.StatusNotFound, err.Error())
		return nil, nil, false
	}
	id := r.PathValue("link")
	l, ok := st.Link(id)
	if !ok {
		ids := make([]string, 0, len(st.Links))
		for _, x := range st.Links {
			ids = append(ids, strconv.Quote(x.ID))
		}
		httpError(w, http.StatusNotFound, fmt.Sprintf("lab %q: no link %q (links: %s)", lab, id, strings.Join(ids, ", ")))
		return nil, nil, false
	}
	return st, l, true
}

// netemRequest is the page's impairment form.
type netemRequest struct {
	From   string            `json:"from"` // "": both directions; else what this node sends
	Fields map[string]string `json:"fields"`
}

func (s *Server) setNetem(w http.ResponseWriter, r *http.Request) {
	var req netemRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "bad request: "+err.Error())
		return
	}
	spec, ferrs := s.opts.Spec.Parse(req.Fields)
	if len(ferrs) > 0 {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": ferrs[0].Error, "errors": ferrs})
		return
	}
	s.setMu.Lock()
	defer s.setMu.Unlock()
	st, l, ok := s.liveLink(w, r)
	if !ok {
		return
	}
	if req.From != "" && req.From != l.A.Node && req.From != l.B.Node {
		msg := fmt.Sprintf("link %q: --from %q: want %q or %q", l.ID, req.From, l.A.Node, l.B.Node)
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": msg, "errors": []FieldError{{Field: "from", Error: msg}}})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := nodes.SetImpairment(ctx, st, l, req.From, spec); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error(), "errors": []FieldError{{Error: err.Error()}}})
		return
	}
	s.log.Info("netem set", "lab", st.Lab, "link", l.ID, "from", req.From, "spec", spec.String())
	s.hub.poke(st.Lab)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "a_to_b": l.AtoB.String(), "b_to_a": l.BtoA.String()})
}

func (s *Server) linkDown(w http.ResponseWriter, r *http.Request) { s.linkState(w, r, false) }
func (s *Server) linkUp(w http.ResponseWriter, r *http.Request)   { s.linkState(w, r, true) }

// linkState takes a link down or up: both ends, as `link A B down` in the
// console and a lab's timeline do (nodes.SetLinkUp).
func (s *Server) linkState(w http.ResponseWriter, r *http.Request, up bool) {
	st, l, ok := s.liveLink(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	err := nodes.SetLinkUp(ctx, st, l.ID, up)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.hub.markDown(st.Lab, l.ID, !up)
	s.log.Info("link state", "lab", st.Lab, "link", l.ID, "up", up)
	s.hub.poke(st.Lab)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) {
	lab, ok := s.servedLab(w, r)
	if !ok {
		return
	}
	key := r.PathValue("host") + "/" + r.PathValue("prog")
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := nodes.RestartProgram(ctx, lab, key); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, nodes.ErrNoSupervisor) {
			code = http.StatusConflict
		}
		httpError(w, code, err.Error())
		return
	}
	s.log.Info("restart", "lab", lab, "program", key)
	s.hub.poke(lab)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// Capture bounds: a download lasts this long at most.
const (
	captureDefault = 10 * time.Second
	captureMax     = 60 * time.Second
)

// capture downloads a pcapng capture of a userspace link for a few
// seconds (?seconds=N, at most 60; ?point=delivered or sent).
func (s *Server) capture(w http.ResponseWriter, r *http.Request) {
	st, l, ok := s.liveLink(w, r)
	if !ok {
		return
	}
	if l.Via != netem.ViaTAP {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("lab %q: link %q is a plain veth, not a userspace engine link: capture needs the userspace backend: %v", st.Lab, l.ID, netem.ErrUnsupported))
		return
	}
	d := captureDefault
	if v := r.URL.Query().Get("seconds"); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n <= 0 || time.Duration(n*float64(time.Second)) > captureMax {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("seconds %q: want a number above 0, at most %d", v, int(captureMax.Seconds())))
			return
		}
		d = time.Duration(n * float64(time.Second))
	}
	point := r.URL.Query().Get("point")
	if point == "" {
		point = "delivered"
	}
	if point != "delivered" && point != "sent" {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("point %q: want delivered or sent", point))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	defer cancel()
	w.Header().Set("Content-Type", "application/vnd.tcpdump.pcapng")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", fmt.Sprintf("%s-%s-%s.pcapng", st.Lab, l.ID, time.Now().Format("150405"))))
	fw := &flushWriter{w: w}
	b, err := nodes.Backend(st)
	if err != nil {
		httpError(w, http.StatusBadGateway, err.Error())
		return
	}
	c, ok := b.(netem.Capturer)
	if !ok {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("lab %q: the %s backend does not capture: %v", st.Lab, b.Name(), netem.ErrUnsupported))
		return
	}
	if err := c.Capture(ctx, *l, point, fw); err != nil && !fw.wrote {
		httpError(w, http.StatusBadGateway, err.Error())
	}
}

// flushWriter remembers whether anything was sent (after which an error
// can no longer be a status code).
type flushWriter struct {
	w     io.Writer
	wrote bool
}

func (f *flushWriter) Write(p []byte) (int, error) {
	f.wrote = f.wrote || len(p) > 0
	return f.w.Write(p)
}
