package console

import (
	"bytes"
	"context"
	"testing"

	"github.com/labctl/labctl/nodes"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testConsole() (*Console, *bytes.Buffer) {
	var out bytes.Buffer
	st := &nodes.State{Lab: "t", Nodes: []nodes.NodeState{
		{Name: "h1", Kind: "host", Ifaces: []nodes.IfaceState{{Name: "eth0", Addrs: []string{"10.0.0.1/8"}}}},
		{Name: "h2", Kind: "host", Ifaces: []nodes.IfaceState{{Name: "eth0", Addrs: []string{"10.0.0.2/8"}}}},
		{Name: "s1", Kind: "switch"},
	}}
	return &Console{Lab: "t", Out: &out, Err: &out, st: st, jobs: newJobTable(""), interactive: false}, &out
}

func TestSubstitute(t *testing.T) {
	c, _ := testConsole()
	for in, want := range map[string]string{
		"ping -c1 h2":             "ping -c1 10.0.0.2",
		"client --server h1:9000": "client --server 10.0.0.1:9000",
		"echo h1h2 xh1 h1:abc":    "echo h1h2 xh1 h1:abc",
		"ping  s1":                "ping  s1", // a switch has no address
		"iperf h1 h2":             "iperf 10.0.0.1 10.0.0.2",
	} {
		assert.Equal(t, want, c.substitute(in), in)
	}
}

func TestComplete(t *testing.T) {
	c, _ := testConsole()
	head, got, tail := c.complete("pin", 3)
	assert.Equal(t, "", head)
	assert.Equal(t, []string{"pingall ", "pingpair "}, got)
	assert.Equal(t, "", tail)
	head, got, _ = c.complete("h2 ping h", 9)
	assert.Equal(t, "h2 ping ", head)
	assert.Equal(t, []string{"h1 ", "h2 "}, got)
}

func TestIperfArgs(t *testing.T) {
	c, _ := testConsole()
	a, b, d, err := c.iperfArgs(nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"h1", "h2"}, []string{a, b})
	assert.Equal(t, defaultIperfTime, d)
	_, _, d, err = c.iperfArgs([]string{"h2", "h1", "-t", "2.5"})
	require.NoError(t, err)
	assert.Equal(t, "2.5s", d.String())
	_, _, _, err = c.iperfArgs([]string{"h1"})
	assert.Error(t, err)
	_, _, _, err = c.iperfArgs([]string{"h1", "s1"})
	assert.ErrorContains(t, err, `node "s1" has no address`)
	_, _, _, err = c.iperfArgs([]string{"-t", "1000"})
	assert.Error(t, err)
}

func TestBuiltinsWithoutRoot(t *testing.T) {
	c, out := testConsole()
	require.NoError(t, cmdNodes(context.Background(), c, ""))
	assert.Equal(t, "available nodes are: \nh1 h2 s1\n", out.String())
	out.Reset()
	require.NoError(t, cmdHelp(context.Background(), c, ""))
	assert.Contains(t, out.String(), "iperfudp BW [A B]")
	assert.ErrorContains(t, cmdLink(context.Background(), c, "h1 h2 sideways"), "no link between")
	_, err := c.jobs.find("3")
	assert.ErrorContains(t, err, "%N")
	assert.Equal(t, "9.56 Mbits/sec", bitsPerSec(9.56e6))
	assert.Equal(t, "1.20 Gbits/sec", bitsPerSec(1.2e9))
}
