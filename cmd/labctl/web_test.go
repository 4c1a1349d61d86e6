package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/topo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cliError is what `labctl netem set LAB LINK ARGS` says of bad flags,
// before it looks for a lab.
func cliError(t *testing.T, args ...string) string {
	t.Helper()
	cmd := newNetemSetCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"lab", "link"}, args...))
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	require.Error(t, err)
	return err.Error()
}

func TestWebFormIsNetemSet(t *testing.T) {
	form := netemSetForm{}
	var names []string
	for _, f := range form.Fields() {
		names = append(names, f.Name)
		assert.NotEmpty(t, f.Help, f.Name)
	}
	assert.Equal(t, []string{"delay", "jitter", "delay-corr", "distribution", "loss", "loss-corr", "loss-ge"}, names[:7])
	assert.Contains(t, names, "corrupt-fix-checksum")

	// The same one-line errors as the command line, field by field.
	for _, c := range []struct{ field, value string }{{"loss", "110%"}, {"delay", "fast"}, {"gap", "-1"}, {"loss-ge", "1%"}, {"nonsense", "1"}} {
		_, errs := form.Parse(map[string]string{c.field: c.value})
		require.Len(t, errs, 1, "%v", c)
		assert.Equal(t, c.field, errs[0].Field)
		assert.Equal(t, cliError(t, "--"+c.field+"="+c.value), errs[0].Error, "%v", c)
	}
	_, errs := form.Parse(map[string]string{"jitter": "5ms"})
	require.Len(t, errs, 1)
	assert.Equal(t, "", errs[0].Field, "a combination error belongs to no field")
	assert.Equal(t, cliError(t, "--jitter", "5ms"), errs[0].Error)

	// Every field reads back to the impairment it shows.
	full := netem.Spec{Delay: topo.Duration(20e6), Jitter: topo.Duration(2e6), DelayCorrelation: 25, Distribution: "normal",
		Duplicate: 1, DuplicateCorrelation: 2, Corrupt: 0.5, CorruptCorrelation: 3, CorruptFixChecksum: true,
		Reorder: 10, ReorderCorrelation: 4, Gap: 5, Rate: 10e6, Limit: 100,
		LossGE: &topo.GilbertElliott{P: 1, R: 30, LossBad: 90, LossGood: 1}}
	back, errs := form.Parse(form.Format(full))
	require.Empty(t, errs)
	assert.Equal(t, full, back)
	s, errs := form.Parse(map[string]string{"loss": " 10% ", "delay": "", "rate": "1mbit"})
	require.Empty(t, errs)
	assert.Equal(t, "loss 10% rate 1mbit", strings.TrimSpace(s.String()))
}
