package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/topo"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// parseSpec parses `netem set` flags into a Spec, as the command does.
func parseSpec(t *testing.T, args ...string) (netem.Spec, error) {
	t.Helper()
	var f specFlags
	fs := pflag.NewFlagSet("set", pflag.ContinueOnError)
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return netem.Spec{}, err
	}
	return f.spec()
}

func TestNetemSetFlags(t *testing.T) {
	s, err := parseSpec(t, "--delay", "50ms", "--jitter", "5ms", "--loss", "10%", "--duplicate", "1%",
		"--corrupt", "0.1%", "--reorder", "25%", "--gap", "5", "--rate", "10mbit", "--limit", "200", "--loss-corr", "25")
	require.NoError(t, err)
	assert.Equal(t, netem.Spec{Delay: topo.Duration(50 * time.Millisecond), Jitter: topo.Duration(5 * time.Millisecond),
		Loss: 10, LossCorrelation: 25, Duplicate: 1, Corrupt: 0.1, Reorder: 25, Gap: 5, Rate: 10_000_000, Limit: 200}, s)

	s, err = parseSpec(t, "--loss-ge", "1%,30%", "--corrupt", "1%", "--corrupt-fix-checksum")
	require.NoError(t, err)
	assert.Equal(t, netem.Spec{LossGE: &topo.GilbertElliott{P: 1, R: 30}, Corrupt: 1, CorruptFixChecksum: true}, s)
	s, err = parseSpec(t, "--loss-ge", "1%,30%,70%,0.5%")
	require.NoError(t, err)
	assert.Equal(t, &topo.GilbertElliott{P: 1, R: 30, LossBad: 70, LossGood: 0.5}, s.LossGE)

	// The set command carries the same flags, and --from and --lab.
	cmd := newNetemSetCmd()
	for _, n := range []string{"delay", "jitter", "loss", "loss-ge", "duplicate", "corrupt", "reorder", "gap", "rate", "limit", "from", "lab"} {
		assert.NotNil(t, cmd.Flags().Lookup(n), n)
	}
}

// TestNetemSetHasAFlagPerSpecField sets each Spec field through its flag
// alone and checks that exactly that field changed: a field added to the
// Spec without a flag, or a flag wired to the wrong field, fails here.
func TestNetemSetHasAFlagPerSpecField(t *testing.T) {
	samples := map[reflect.Type]string{
		reflect.TypeOf(topo.Duration(0)):            "20ms",
		reflect.TypeOf(topo.Percent(0)):             "12.5%",
		reflect.TypeOf(topo.Rate(0)):                "3mbit",
		reflect.TypeOf(""):                          "normal",
		reflect.TypeOf(uint32(0)):                   "7",
		reflect.TypeOf(false):                       "true",
		reflect.TypeOf((*topo.GilbertElliott)(nil)): "2%,40%",
	}
	cmd := newNetemSetCmd()
	typ := reflect.TypeOf(netem.Spec{})
	for i := 0; i < typ.NumField(); i++ {
		sf := typ.Field(i)
		name := specFlagName(specKey(sf))
		fl := cmd.Flags().Lookup(name)
		require.NotNil(t, fl, "Spec field %s has no flag --%s", sf.Name, name)
		assert.NotEmpty(t, fl.Usage, "--%s has no help", name)
		sample, ok := samples[sf.Type]
		require.True(t, ok, "no sample value for field %s of type %s", sf.Name, sf.Type)

		var f specFlags
		fs := pflag.NewFlagSet("set", pflag.ContinueOnError)
		f.register(fs)
		require.NoError(t, fs.Parse([]string{"--" + name + "=" + sample}), sf.Name)
		got := reflect.ValueOf(f.s)
		for j := 0; j < typ.NumField(); j++ {
			assert.Equal(t, i == j, !got.Field(j).IsZero(), "--%s=%s: field %s", name, sample, typ.Field(j).Name)
		}
	}
	// Names kept from before the flags were generated.
	for _, n := range []string{"delay-corr", "duplicate-corr", "corrupt-corr", "reorder-corr", "distribution", "corrupt-fix-checksum"} {
		assert.NotNil(t, cmd.Flags().Lookup(n), n)
	}
}

func TestNetemSpecErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--loss", "110%"}, "--loss"},
		{[]string{"--delay", "50"}, "--delay"},
		{[]string{"--rate", "10 furlongs"}, "--rate"},
		{[]string{"--gap", "-1"}, "--gap"},
		{[]string{"--loss-ge", "1%"}, "--loss-ge"},
		{[]string{"--reorder", "5%"}, "reorder needs a delay"},
		{[]string{"--jitter", "5ms"}, "jitter needs a delay"},
		{[]string{"--loss", "1%", "--loss-ge", "1%,30%"}, "exclusive"},
		{[]string{"--delay", "1ms", "--jitter", "1ms", "--distribution", "weird"}, "distribution"},
	} {
		_, err := parseSpec(t, c.args...)
		require.Error(t, err, "%v", c.args)
		assert.Contains(t, err.Error(), c.want)
	}
	s, err := parseSpec(t)
	require.NoError(t, err)
	assert.True(t, s.IsZero(), "no flags: clean")
}

func TestDirsFrom(t *testing.T) {
	l := &netem.Link{ID: "h1-s1", A: netem.End{Node: "h1"}, B: netem.End{Node: "s1"}}
	d, err := dirsFrom(l, "")
	require.NoError(t, err)
	assert.Equal(t, []netem.Dir{netem.AtoB, netem.BtoA}, d)
	d, err = dirsFrom(l, "s1")
	require.NoError(t, err)
	assert.Equal(t, []netem.Dir{netem.BtoA}, d)
	_, err = dirsFrom(l, "h9")
	assert.ErrorContains(t, err, `--from "h9"`)
}
