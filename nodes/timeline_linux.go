package nodes

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/topo"
)

// playTimeline acts on the lab at the times the lab file gives, counted
// from the start of the programs.
func (s *Supervisor) playTimeline(ctx context.Context) {
	events := append([]topo.Event(nil), s.plan.Timeline...)
	sort.SliceStable(events, func(i, j int) bool { return events[i].At < events[j].At })
	for _, e := range events {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(s.start.Add(e.At.D()))):
		}
		what, err := s.act(ctx, e)
		msg := fmt.Sprintf("timeline at %s: %s", e.At, what)
		if err != nil {
			msg += ": FAILED: " + err.Error()
		}
		s.emit("labctl", "sys", msg)
	}
}

func (s *Supervisor) act(ctx context.Context, e topo.Event) (string, error) {
	switch e.Kind() {
	case "netem":
		return s.actNetem(ctx, e.Netem)
	case "kill":
		p := s.byKey[e.Kill]
		sig := parseSignal(e.Signal)
		p.line("sys", "timeline: sending "+signalName(sig))
		p.mu.Lock()
		p.labSignal = true
		p.mu.Unlock()
		p.signalGroup(sig)
		return fmt.Sprintf("kill %s (%s)", e.Kill, signalName(sig)), nil
	case "restart":
		p := s.byKey[e.Restart]
		p.mu.Lock()
		running := p.state == StateRunning || p.state == StateReady
		if running {
			p.restart, p.labSignal = true, true
		}
		p.mu.Unlock()
		p.line("sys", "timeline: restart")
		if running {
			p.signalGroup(syscall.SIGTERM)
		} else {
			go p.loop(ctx)
		}
		return "restart " + e.Restart, nil
	case "link_down", "link_up":
		id := e.LinkDown + e.LinkUp
		return e.Kind() + " " + id, s.setLinkState(id, e.Kind() == "link_up")
	}
	return "?", fmt.Errorf("unknown event")
}

func parseSignal(name string) syscall.Signal {
	switch strings.TrimPrefix(strings.ToUpper(name), "SIG") {
	case "TERM":
		return syscall.SIGTERM
	case "INT":
		return syscall.SIGINT
	case "HUP":
		return syscall.SIGHUP
	case "STOP":
		return syscall.SIGSTOP
	case "CONT":
		return syscall.SIGCONT
	}
	return syscall.SIGKILL
}

func (s *Supervisor) actNetem(ctx context.Context, a *topo.NetemAction) (string, error) {
	st, err := Load(s.plan.Lab)
	if err != nil {
		return "netem", err
	}
	l, ok := st.Link(a.Link)
	if !ok {
		return "netem", fmt.Errorf("no link %q", a.Link)
	}
	spec := a.Set
	if a.Reset {
		spec = netem.Spec{}
	}
	what := fmt.Sprintf("netem %s: %s", a.Link, spec)
	if a.From != "" {
		what = fmt.Sprintf("netem %s from %s: %s", a.Link, a.From, spec)
	}
	return what, SetImpairment(ctx, st, l, a.From, spec)
}

// setLinkState takes both ends of a link down or up.
func (s *Supervisor) setLinkState(id string, up bool) error {
	return SetLinkUp(context.Background(), s.st, id, up)
}
