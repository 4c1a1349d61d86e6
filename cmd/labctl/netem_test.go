package main

import (
	"testing"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/topo"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNetemSetFlags(t *testing.T) {
	var f specFlags
	fs := pflag.NewFlagSet("set", pflag.ContinueOnError)
	f.register(fs)
	require.NoError(t, fs.Parse([]string{"--delay", "50ms", "--jitter", "5ms", "--loss", "10%", "--duplicate", "1%",
		"--corrupt", "0.1%", "--reorder", "25%", "--gap", "5", "--rate", "10mbit", "--limit", "200", "--loss-corr", "25"}))
	s, err := f.spec()
	require.NoError(t, err)
	assert.Equal(t, netem.Spec{Delay: topo.Duration(50 * time.Millisecond), Jitter: topo.Duration(5 * time.Millisecond),
		Loss: 10, LossCorrelation: 25, Duplicate: 1, Corrupt: 0.1, Reorder: 25, Gap: 5, Rate: 10_000_000, Limit: 200}, s)
	// The set command carries the same flags, and --from.
	cmd := newNetemSetCmd()
	for _, n := range []string{"delay", "jitter", "loss", "duplicate", "corrupt", "reorder", "gap", "rate", "limit", "from"} {
		assert.NotNil(t, cmd.Flags().Lookup(n), n)
	}
}

func TestNetemSpecErrors(t *testing.T) {
	for _, c := range []struct {
		f    specFlags
		want string
	}{
		{specFlags{loss: "110%"}, "--loss"},
		{specFlags{delay: "50"}, "--delay"},
		{specFlags{rate: "10 furlongs"}, "--rate"},
		{specFlags{reorder: "5%"}, "reorder needs a delay"},
		{specFlags{jitter: "5ms"}, "jitter needs a delay"},
		{specFlags{delay: "1ms", jitter: "1ms", dist: "weird"}, "distribution"},
	} {
		_, err := c.f.spec()
		require.Error(t, err, "%+v", c.f)
		assert.Contains(t, err.Error(), c.want)
	}
	s, err := (&specFlags{}).spec()
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
