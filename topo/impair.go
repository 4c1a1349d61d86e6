package topo

import (
	"errors"
	"fmt"
	"strings"
)

// Impairment is what one direction of a link does to the packets that cross
// it, with tc-netem's meaning. It is applied on the *sending* end (netem
// shapes egress only), so on a link A–B:
//
//   - `delay: 25ms` set for both directions adds 50 ms to the RTT between A
//     and B (25 ms each way); set only on A→B it adds 25 ms to the RTT.
//   - Between two hosts behind one switch, a packet from H1 to H2 crosses
//     H1's link in the H1→switch direction and H2's link in the switch→H2
//     direction: the one-way delay is the sum of those two.
//   - `loss: 10%` on both directions of a link loses 10% of the requests and
//     10% of the replies: a ping round trip fails 1-(0.9*0.9) = 19% of the time.
//
// The zero value is a clean link.
type Impairment struct {
	Delay Duration `yaml:"delay,omitempty" json:"delay,omitempty"`
	// Jitter varies each packet's delay by up to ±Jitter (uniform unless
	// Distribution says otherwise). Jittered packets may overtake each other,
	// as with tc-netem.
	Jitter           Duration `yaml:"jitter,omitempty" json:"jitter,omitempty"`
	DelayCorrelation Percent  `yaml:"delay_correlation,omitempty" json:"delay_correlation,omitempty"`
	// Distribution of the jitter: "uniform" (default), "normal", "pareto",
	// "paretonormal" (the kernel's tables).
	Distribution string `yaml:"distribution,omitempty" json:"distribution,omitempty"`

	Loss            Percent `yaml:"loss,omitempty" json:"loss,omitempty"`
	LossCorrelation Percent `yaml:"loss_correlation,omitempty" json:"loss_correlation,omitempty"`
	// LossGE is bursty loss (Gilbert–Elliott); it replaces Loss.
	LossGE *GilbertElliott `yaml:"loss_ge,omitempty" json:"loss_ge,omitempty"`

	Duplicate            Percent `yaml:"duplicate,omitempty" json:"duplicate,omitempty"`
	DuplicateCorrelation Percent `yaml:"duplicate_correlation,omitempty" json:"duplicate_correlation,omitempty"`

	// Corrupt flips one random bit in that share of packets. The kernel's
	// netem flips it after the checksum was computed, so the receiving
	// kernel drops the packet (it looks like loss) unless the sender sent
	// UDP with no checksum (SO_NO_CHECK).
	Corrupt            Percent `yaml:"corrupt,omitempty" json:"corrupt,omitempty"`
	CorruptCorrelation Percent `yaml:"corrupt_correlation,omitempty" json:"corrupt_correlation,omitempty"`
	// CorruptFixChecksum (userspace backend only) recomputes the L4
	// checksum after the flip, so the corruption reaches the application.
	CorruptFixChecksum bool `yaml:"corrupt_fix_checksum,omitempty" json:"corrupt_fix_checksum,omitempty"`

	// Reorder sends that share of packets at once (not delayed), so they
	// overtake the delayed ones; it needs a Delay. With Gap N, every Nth
	// packet is sent at once instead.
	Reorder            Percent `yaml:"reorder,omitempty" json:"reorder,omitempty"`
	ReorderCorrelation Percent `yaml:"reorder_correlation,omitempty" json:"reorder_correlation,omitempty"`
	Gap                uint32  `yaml:"gap,omitempty" json:"gap,omitempty"`

	// Rate limits the direction to this many bits per second.
	Rate Rate `yaml:"rate,omitempty" json:"rate,omitempty"`
	// Limit is the queue length in packets. Zero means: computed from the
	// bandwidth-delay product, never netem's silent 1000-packet default.
	Limit uint32 `yaml:"limit,omitempty" json:"limit,omitempty"`
}

// GilbertElliott is the two-state bursty loss model (tc's "loss gemodel").
type GilbertElliott struct {
	P        Percent `yaml:"p" json:"p"`                                     // good → bad, per packet
	R        Percent `yaml:"r" json:"r"`                                     // bad → good, per packet
	LossBad  Percent `yaml:"loss_bad,omitempty" json:"loss_bad,omitempty"`   // 1-h: loss in the bad state (default 100%)
	LossGood Percent `yaml:"loss_good,omitempty" json:"loss_good,omitempty"` // 1-k: loss in the good state (default 0%)
}

// IsZero reports whether the impairment leaves the link clean.
func (m Impairment) IsZero() bool {
	return m == Impairment{}
}

// Validate says what is wrong with the combination of fields.
func (m Impairment) Validate() error {
	var errs []error
	if m.Jitter > 0 && m.Delay == 0 {
		errs = append(errs, errors.New("jitter needs a delay"))
	}
	if m.Reorder > 0 && m.Delay == 0 {
		errs = append(errs, errors.New("reorder needs a delay (packets are reordered by sending some of them without it)"))
	}
	if m.Gap > 0 && m.Reorder == 0 {
		errs = append(errs, errors.New("gap needs reorder"))
	}
	if m.Loss > 0 && m.LossGE != nil {
		errs = append(errs, errors.New("loss and loss_ge are exclusive"))
	}
	if m.LossGE != nil && m.LossGE.R == 0 && m.LossGE.P > 0 {
		errs = append(errs, errors.New("loss_ge: r must be above 0, or the bad state never ends"))
	}
	switch m.Distribution {
	case "", "uniform", "normal", "pareto", "paretonormal":
	default:
		errs = append(errs, fmt.Errorf("distribution %q: want uniform, normal, pareto or paretonormal", m.Distribution))
	}
	if m.Distribution != "" && m.Jitter == 0 {
		errs = append(errs, errors.New("distribution needs a jitter"))
	}
	for _, c := range []struct {
		name string
		corr Percent
		base bool
	}{
		{"delay_correlation", m.DelayCorrelation, m.Jitter > 0},
		{"loss_correlation", m.LossCorrelation, m.Loss > 0},
		{"duplicate_correlation", m.DuplicateCorrelation, m.Duplicate > 0},
		{"corrupt_correlation", m.CorruptCorrelation, m.Corrupt > 0},
		{"reorder_correlation", m.ReorderCorrelation, m.Reorder > 0},
	} {
		if c.corr > 0 && !c.base {
			errs = append(errs, fmt.Errorf("%s without %s", c.name, strings.TrimSuffix(strings.Replace(c.name, "delay_", "jitter_", 1), "_correlation")))
		}
	}
	if m.CorruptFixChecksum && m.Corrupt == 0 {
		errs = append(errs, errors.New("corrupt_fix_checksum needs corrupt"))
	}
	return errors.Join(errs...)
}

// String renders the impairment in tc-netem's words ("delay 25ms loss 10%"),
// or "clean".
func (m Impairment) String() string {
	var b []string
	add := func(f string, a ...any) { b = append(b, fmt.Sprintf(f, a...)) }
	if m.Delay > 0 {
		add("delay %s", m.Delay)
		if m.Jitter > 0 {
			add("%s", m.Jitter)
			if m.DelayCorrelation > 0 {
				add("%s", m.DelayCorrelation)
			}
			if m.Distribution != "" {
				add("distribution %s", m.Distribution)
			}
		}
	}
	if m.Loss > 0 {
		add("loss %s", m.Loss)
		if m.LossCorrelation > 0 {
			add("%s", m.LossCorrelation)
		}
	}
	if g := m.LossGE; g != nil {
		add("loss gemodel %s %s %s %s", g.P, g.R, g.LossBad, g.LossGood)
	}
	if m.Duplicate > 0 {
		add("duplicate %s", m.Duplicate)
	}
	if m.Corrupt > 0 {
		add("corrupt %s", m.Corrupt)
		if m.CorruptFixChecksum {
			add("(checksum fixed)")
		}
	}
	if m.Reorder > 0 {
		add("reorder %s", m.Reorder)
		if m.Gap > 0 {
			add("gap %d", m.Gap)
		}
	}
	if m.Rate > 0 {
		add("rate %s", m.Rate)
	}
	if m.Limit > 0 {
		add("limit %d", m.Limit)
	}
	if len(b) == 0 {
		return "clean"
	}
	return strings.Join(b, " ")
}
