package main

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/topo"
	"github.com/spf13/pflag"
)

// specFlags holds `netem set`'s impairment flags. They are made from the
// fields of netem.Spec (topo.Impairment) by reflection, one flag per field,
// named after the field's lab-file key with '-' for '_' and "-corr" for
// "_correlation" (loss_correlation: --loss-corr), so that a field added to
// the Spec cannot lack its flag: registering a field of a type it does not
// know, or with no help text, panics, and the unit tests build the command.
type specFlags struct {
	s netem.Spec
}

// specFlagHelp is each Spec field's help text, by lab-file key.
var specFlagHelp = map[string]string{
	"delay":                 "added one-way delay in this direction, e.g. 50ms",
	"jitter":                "delay varies by up to ± this (uniform), e.g. 5ms; needs --delay",
	"delay_correlation":     "correlation of successive jitter draws, e.g. 25%",
	"distribution":          "jitter distribution: uniform, normal, pareto, paretonormal",
	"loss":                  "random loss, e.g. 10%",
	"loss_correlation":      "loss correlation, e.g. 25%",
	"loss_ge":               "bursty Gilbert-Elliott loss, instead of --loss: P,R[,LOSS_BAD[,LOSS_GOOD]], e.g. 1%,30% (P: good to bad, R: bad to good, per packet; loss in the bad state, default 100%, and in the good state, default 0%)",
	"duplicate":             "duplicated packets, e.g. 1%",
	"duplicate_correlation": "duplicate correlation",
	"corrupt":               "packets with one bit flipped, e.g. 0.1% (the receiving kernel drops them unless UDP is sent with no checksum)",
	"corrupt_correlation":   "corruption correlation",
	"corrupt_fix_checksum":  "userspace backend: fix the checksum after the flip, so the corruption reaches the application",
	"reorder":               "packets sent at once, overtaking the delayed ones, e.g. 25%; needs --delay",
	"reorder_correlation":   "reorder correlation",
	"gap":                   "reorder after every N-1 delayed packets; needs --reorder",
	"rate":                  "rate limit, e.g. 10mbit, 512kbit, 1gbit",
	"limit":                 "queue length in packets (default: from the bandwidth-delay product)",
}

// specFlagName is the flag of a Spec field with this lab-file key.
func specFlagName(key string) string {
	if k, ok := strings.CutSuffix(key, "_correlation"); ok {
		key = k + "_corr"
	}
	return strings.ReplaceAll(key, "_", "-")
}

// specKey is the lab-file key of a Spec field.
func specKey(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return k
}

func (f *specFlags) register(fs *pflag.FlagSet) {
	v := reflect.ValueOf(&f.s).Elem()
	for i := 0; i < v.NumField(); i++ {
		sf := v.Type().Field(i)
		key := specKey(sf)
		help, ok := specFlagHelp[key]
		if key == "" || !ok {
			panic(fmt.Sprintf("netem.Spec field %s has no lab-file key or no help text in specFlagHelp", sf.Name))
		}
		fl := fs.VarPF(newSpecValue(v.Field(i), sf), specFlagName(key), "", help)
		if sf.Type.Kind() == reflect.Bool {
			fl.NoOptDefVal = "true"
		}
	}
}

// spec returns the validated Spec the flags make; unset flags are clean.
func (f *specFlags) spec() (netem.Spec, error) {
	if err := f.s.Validate(); err != nil {
		return netem.Spec{}, err
	}
	return f.s, nil
}

// specValue is a pflag.Value that parses into one Spec field with topo's
// parsers, as the lab file does.
type specValue struct {
	v   reflect.Value
	typ string
	set func(string) error
}

func (s *specValue) String() string {
	if s.v.IsZero() {
		return ""
	}
	if s.v.Kind() == reflect.Pointer {
		return fmt.Sprint(s.v.Elem().Interface())
	}
	return fmt.Sprint(s.v.Interface())
}
func (s *specValue) Set(x string) error { return s.set(x) }
func (s *specValue) Type() string       { return s.typ }

func newSpecValue(v reflect.Value, sf reflect.StructField) *specValue {
	sv := &specValue{v: v}
	switch v.Addr().Interface().(type) {
	case *topo.Duration:
		sv.typ = "duration"
		sv.set = func(x string) error {
			d, err := topo.ParseDuration(x)
			v.Set(reflect.ValueOf(d))
			return err
		}
	case *topo.Percent:
		sv.typ = "percent"
		sv.set = func(x string) error {
			p, err := topo.ParsePercent(x)
			v.Set(reflect.ValueOf(p))
			return err
		}
	case *topo.Rate:
		sv.typ = "rate"
		sv.set = func(x string) error {
			r, err := topo.ParseRate(x)
			v.Set(reflect.ValueOf(r))
			return err
		}
	case **topo.GilbertElliott:
		sv.typ = "P,R[,BAD[,GOOD]]"
		sv.set = func(x string) error {
			g, err := parseGE(x)
			if err != nil {
				return err
			}
			v.Set(reflect.ValueOf(g))
			return nil
		}
	case *string:
		sv.typ = "string"
		sv.set = func(x string) error { v.SetString(x); return nil }
	case *uint32:
		sv.typ = "uint"
		sv.set = func(x string) error {
			n, err := strconv.ParseUint(x, 10, 32)
			if err != nil {
				return fmt.Errorf("want a whole number from 0 to %d", uint32(1<<32-1))
			}
			v.SetUint(n)
			return nil
		}
	case *bool:
		sv.typ = "bool"
		sv.set = func(x string) error {
			b, err := strconv.ParseBool(x)
			if err != nil {
				return fmt.Errorf("want true or false")
			}
			v.SetBool(b)
			return nil
		}
	default:
		panic(fmt.Sprintf("netem.Spec field %s: no flag for type %s", sf.Name, sf.Type))
	}
	return sv
}

// parseGE reads --loss-ge P,R[,LOSS_BAD[,LOSS_GOOD]], tc's "loss gemodel p
// r 1-h 1-k".
func parseGE(x string) (*topo.GilbertElliott, error) {
	parts := strings.Split(x, ",")
	if len(parts) < 2 || len(parts) > 4 {
		return nil, fmt.Errorf("want P,R[,LOSS_BAD[,LOSS_GOOD]], e.g. 1%%,30%%")
	}
	var ps [4]topo.Percent
	for i, p := range parts {
		v, err := topo.ParsePercent(p)
		if err != nil {
			return nil, err
		}
		ps[i] = v
	}
	return &topo.GilbertElliott{P: ps[0], R: ps[1], LossBad: ps[2], LossGood: ps[3]}, nil
}
