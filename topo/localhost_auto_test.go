package topo

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLocalhostAutoAloneOrBesidePorts(t *testing.T) {
	lab, err := Parse("auto.yaml", []byte(`
hosts:
  a: {}
  b: {localhost: auto}
  c: {localhost: {12000: a, auto: true}}
  d: {localhost: {12000: a}}
switches: [s1]
links:
  - endpoints: [a, s1]
  - endpoints: [b, s1]
  - endpoints: [c, s1]
  - endpoints: [d, s1]
`))
	require.NoError(t, err)
	require.NoError(t, lab.Build())
	assert.True(t, lab.Node("b").LocalhostAuto)
	assert.Empty(t, lab.Node("b").Localhost)
	assert.True(t, lab.Node("c").LocalhostAuto)
	assert.Equal(t, []Forward{{Port: 12000, Node: "a", ToPort: 12000}}, lab.Node("c").Localhost)
	assert.False(t, lab.Node("d").LocalhostAuto)

	for _, bad := range []struct{ body, want string }{
		{"localhost: all", `"all": want auto, or a mapping of ports to NODE or NODE:PORT`},
		{"localhost: {auto: maybe}", `auto: "maybe": want true or false`},
	} {
		_, err := Parse("bad.yaml", []byte("hosts:\n  a: {}\n  b: {"+bad.body+"}\nlinks:\n  - endpoints: [a, b]\n"))
		require.Error(t, err, bad.body)
		assert.Contains(t, err.Error(), bad.want)
		assert.Contains(t, err.Error(), "hosts.b", "the error names the field")
	}
}
