package measure

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/labctl/labctl/netem"
)

// Report is what `labctl verify --json` prints: every measured link and
// every verdict line.
type Report struct {
	Lab     string       `json:"lab"`
	Backend string       `json:"backend"`
	Links   []LinkResult `json:"links"`
	Checks  []Check      `json:"checks"`
	Verdict string       `json:"verdict"` // PASS or FAIL
}

// LinkResult is one measured link.
type LinkResult struct {
	ID      string                    `json:"id"`
	Probe   ProbeResult               `json:"probe"`
	Goodput map[string]*GoodputResult `json:"goodput,omitempty"` // by direction
}

// VerifyOptions tune Verify.
type VerifyOptions struct {
	All      bool          // measure clean links too
	Probes   int           // UDP probes per link (PlanProbes may send fewer)
	RateTime time.Duration // length of each TCP goodput transfer
	Slack    time.Duration // widens every delay tolerance
	// OnLink, if set, is called after each link is measured, with its
	// verdict lines (so a caller can print as it goes).
	OnLink func(LinkResult, []Check)
}

// Verify measures the impaired links (all of them with o.All) one at a
// time and judges each against its Spec. The verdict is FAIL if any line
// fails.
func Verify(ctx context.Context, lab, backend string, links []netem.Link, o VerifyOptions) (Report, error) {
	rep := Report{Lab: lab, Backend: backend, Verdict: Pass, Links: []LinkResult{}, Checks: []Check{}}
	for _, l := range links {
		if !o.All && !l.Impaired() {
			continue
		}
		lr, checks, err := VerifyLink(ctx, l, o)
		if err != nil {
			return rep, err
		}
		rep.Links = append(rep.Links, lr)
		rep.Checks = append(rep.Checks, checks...)
		if o.OnLink != nil {
			o.OnLink(lr, checks)
		}
	}
	for _, c := range rep.Checks {
		if c.Verdict == Fail {
			rep.Verdict = Fail
		}
	}
	return rep, nil
}

// VerifyLink measures one link: probes both ways and, per rate-limited
// direction, a TCP transfer. The temporary probe addresses are removed
// whatever happens.
func VerifyLink(ctx context.Context, l netem.Link, o VerifyOptions) (lr LinkResult, checks []Check, err error) {
	a, b, undo, err := AttachProbeAddrs(l)
	if err != nil {
		return lr, nil, err
	}
	defer func() { err = errors.Join(err, undo()) }()
	po := PlanProbes(l, o.Probes, 5*time.Second)
	po.Slack = o.Slack
	r, err := Probe(ctx, a, b, po)
	if err != nil {
		return lr, nil, fmt.Errorf("link %q: %w", l.ID, err)
	}
	lr = LinkResult{ID: l.ID, Probe: r, Goodput: map[string]*GoodputResult{}}
	good := map[netem.Dir]*GoodputResult{}
	for _, d := range []netem.Dir{netem.AtoB, netem.BtoA} {
		if l.Spec(d).Rate == 0 {
			continue
		}
		from, to := a, b
		if d == netem.BtoA {
			from, to = b, a
		}
		g, err := Goodput(ctx, from, to, o.RateTime)
		if err != nil {
			return lr, nil, fmt.Errorf("link %q %s: %w", l.ID, d, err)
		}
		good[d], lr.Goodput[d.String()] = &g, &g
	}
	return lr, Judge(l, r, good, po), nil
}
