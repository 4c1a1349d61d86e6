package web

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/topo"
)

// SpecFields are the impairment fields the page offers, named as the flags
// of `labctl netem set` (and in its order).
var SpecFields = []string{
	"delay", "jitter", "delay-corr", "distribution", "loss", "loss-corr",
	"duplicate", "duplicate-corr", "corrupt", "corrupt-corr", "corrupt-fix-checksum",
	"reorder", "reorder-corr", "gap", "rate", "limit",
}

// FieldError is what is wrong with one field ("" for the combination).
type FieldError struct {
	Field string `json:"field"`
	Error string `json:"error"`
}

// ParseSpec reads an impairment from the page's fields, with the parsing
// and validation of `labctl netem set` and the same messages ("--loss: bad
// percentage ..."). Empty fields are clean, as flags not given are. It
// returns every field error, or the combination's error with Field "".
func ParseSpec(fields map[string]string) (netem.Spec, []FieldError) {
	var s netem.Spec
	var errs []FieldError
	known := map[string]bool{}
	for _, f := range SpecFields {
		known[f] = true
	}
	for k := range fields {
		if !known[k] {
			errs = append(errs, FieldError{Field: k, Error: fmt.Sprintf("--%s: unknown impairment field", k)})
		}
	}
	get := func(name string) string { return strings.TrimSpace(fields[name]) }
	bad := func(name string, err error) {
		errs = append(errs, FieldError{Field: name, Error: fmt.Sprintf("--%s: %v", name, err)})
	}
	dur := func(name string, dst *topo.Duration) {
		if v := get(name); v != "" {
			d, err := topo.ParseDuration(v)
			if err != nil {
				bad(name, err)
			}
			*dst = d
		}
	}
	pct := func(name string, dst *topo.Percent) {
		if v := get(name); v != "" {
			p, err := topo.ParsePercent(v)
			if err != nil {
				bad(name, err)
			}
			*dst = p
		}
	}
	u32 := func(name string, dst *uint32) {
		if v := get(name); v != "" {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				bad(name, fmt.Errorf("invalid argument %q for %q flag: %w", v, "--"+name, err))
			}
			*dst = uint32(n)
		}
	}
	dur("delay", &s.Delay)
	dur("jitter", &s.Jitter)
	pct("delay-corr", &s.DelayCorrelation)
	s.Distribution = get("distribution")
	pct("loss", &s.Loss)
	pct("loss-corr", &s.LossCorrelation)
	pct("duplicate", &s.Duplicate)
	pct("duplicate-corr", &s.DuplicateCorrelation)
	pct("corrupt", &s.Corrupt)
	pct("corrupt-corr", &s.CorruptCorrelation)
	pct("reorder", &s.Reorder)
	pct("reorder-corr", &s.ReorderCorrelation)
	u32("gap", &s.Gap)
	u32("limit", &s.Limit)
	switch v := get("corrupt-fix-checksum"); v {
	case "", "false", "off", "0":
	case "true", "on", "1":
		s.CorruptFixChecksum = true
	default:
		bad("corrupt-fix-checksum", fmt.Errorf("want true or false, not %q", v))
	}
	if v := get("rate"); v != "" {
		r, err := topo.ParseRate(v)
		if err != nil {
			bad("rate", err)
		}
		s.Rate = r
	}
	if len(errs) > 0 {
		return netem.Spec{}, errs
	}
	if err := s.Validate(); err != nil {
		return netem.Spec{}, []FieldError{{Error: err.Error()}}
	}
	return s, nil
}

// fieldsOf is the inverse of ParseSpec, to fill the page's form.
func fieldsOf(s netem.Spec) map[string]string {
	m := map[string]string{}
	setD := func(k string, d topo.Duration) {
		if d != 0 {
			m[k] = d.String()
		}
	}
	setP := func(k string, p topo.Percent) {
		if p != 0 {
			m[k] = p.String()
		}
	}
	setD("delay", s.Delay)
	setD("jitter", s.Jitter)
	setP("delay-corr", s.DelayCorrelation)
	if s.Distribution != "" {
		m["distribution"] = s.Distribution
	}
	setP("loss", s.Loss)
	setP("loss-corr", s.LossCorrelation)
	setP("duplicate", s.Duplicate)
	setP("duplicate-corr", s.DuplicateCorrelation)
	setP("corrupt", s.Corrupt)
	setP("corrupt-corr", s.CorruptCorrelation)
	if s.CorruptFixChecksum {
		m["corrupt-fix-checksum"] = "true"
	}
	setP("reorder", s.Reorder)
	setP("reorder-corr", s.ReorderCorrelation)
	if s.Gap != 0 {
		m["gap"] = strconv.FormatUint(uint64(s.Gap), 10)
	}
	if s.Rate != 0 {
		m["rate"] = s.Rate.String()
	}
	if s.Limit != 0 {
		m["limit"] = strconv.FormatUint(uint64(s.Limit), 10)
	}
	return m
}
