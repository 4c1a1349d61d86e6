package topo

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as Go or tc writes it: "25ms", "1.5s",
// "200us". A bare number is refused: it is too easy to mean ms and get ns.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// ParseDuration reads "25ms", "1.5s", "100us" (tc's "usec"/"msec"/"sec" too).
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	r := strings.NewReplacer("usecs", "us", "usec", "us", "msecs", "ms", "msec", "ms", "secs", "s", "sec", "s")
	v, err := time.ParseDuration(r.Replace(s))
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: want a number and a unit, like 25ms, 1.5s or 200us", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("bad duration %q: negative", s)
	}
	return Duration(v), nil
}

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Percent is a probability in percent, 0 to 100: "10%", "0.5%" or 10.
type Percent float64

// ParsePercent reads "10%", "10" or "0.5%"; values outside 0–100 are errors.
func ParsePercent(s string) (Percent, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "%")
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) {
		return 0, fmt.Errorf("bad percentage %q: want a number from 0 to 100, like 10%% or 0.5%%", s)
	}
	if v < 0 || v > 100 {
		return 0, fmt.Errorf("bad percentage %q: outside 0-100%%", s)
	}
	return Percent(v), nil
}

// Fraction is the probability as a number from 0 to 1.
func (p Percent) Fraction() float64 { return float64(p) / 100 }

func (p Percent) String() string { return strconv.FormatFloat(float64(p), 'g', -1, 64) + "%" }

func (p *Percent) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParsePercent(n.Value)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

func (p Percent) MarshalYAML() (any, error) { return p.String(), nil }

// Rate is a bit rate in bits per second, written with tc's units: "10mbit",
// "1gbit", "512kbit", "100bit"; tc's byte units ("mbps" = megabytes per
// second) are accepted with tc's meaning, which is a classic trap, so
// String() always prints bits.
type Rate uint64

var rateUnits = []struct {
	suffix string
	mult   float64
}{
	// Longest suffixes first so "kbit" is not read as "bit".
	{"tibit", 1 << 40}, {"gibit", 1 << 30}, {"mibit", 1 << 20}, {"kibit", 1 << 10},
	{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1},
	{"tbps", 8e12}, {"gbps", 8e9}, {"mbps", 8e6}, {"kbps", 8e3}, {"bps", 8},
}

// ParseRate reads a tc-style rate such as "10mbit" or "1gbit".
func ParseRate(s string) (Rate, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for _, u := range rateUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				break
			}
			return Rate(v * u.mult), nil
		}
	}
	return 0, fmt.Errorf("bad rate %q: want a number and a tc unit, like 10mbit, 1gbit or 512kbit", s)
}

func (r Rate) String() string {
	switch {
	case r == 0:
		return "0bit"
	case r%1e9 == 0:
		return strconv.FormatUint(uint64(r)/1e9, 10) + "gbit"
	case r%1e6 == 0:
		return strconv.FormatUint(uint64(r)/1e6, 10) + "mbit"
	case r%1e3 == 0:
		return strconv.FormatUint(uint64(r)/1e3, 10) + "kbit"
	}
	return strconv.FormatUint(uint64(r), 10) + "bit"
}

func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseRate(n.Value)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

func (r Rate) MarshalYAML() (any, error) { return r.String(), nil }

// Size is a byte count: "10MB", "1MiB", "512KB", "0", or a bare number of
// bytes. KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10},
	{"gb", 1e9}, {"mb", 1e6}, {"kb", 1e3}, {"b", 1}, {"", 1},
}

// ParseSize reads a byte count such as "10MB" or "1MiB".
func ParseSize(s string) (Size, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || v < 0 || math.IsNaN(v) || v*float64(u.mult) > 1<<40 {
				break
			}
			return Size(v * float64(u.mult)), nil
		}
	}
	return 0, fmt.Errorf("bad size %q: want bytes, like 1500, 10MB or 1MiB (at most 1 TiB)", s)
}

func (z *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return err
	}
	*z = v
	return nil
}

// JSON uses the lab file's spelling ("25ms", "10%", "10mbit"), so the state
// document (`labctl inspect --json`) reads like the lab file. Numbers are
// accepted on input too: nanoseconds, percent, bits per second, bytes.

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	return unmarshalJSONUnit(b, func(s string) error {
		v, err := ParseDuration(s)
		*d = v
		return err
	}, func(f float64) { *d = Duration(f) })
}

func (p Percent) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

func (p *Percent) UnmarshalJSON(b []byte) error {
	return unmarshalJSONUnit(b, func(s string) error {
		v, err := ParsePercent(s)
		*p = v
		return err
	}, func(f float64) { *p = Percent(f) })
}

func (r Rate) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

func (r *Rate) UnmarshalJSON(b []byte) error {
	return unmarshalJSONUnit(b, func(s string) error {
		v, err := ParseRate(s)
		*r = v
		return err
	}, func(f float64) { *r = Rate(f) })
}

func unmarshalJSONUnit(b []byte, str func(string) error, num func(float64)) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		return str(s)
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("want a string such as \"25ms\" or a number, got %s", b)
	}
	num(f)
	return nil
}
