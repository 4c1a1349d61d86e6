package topo

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const reachLab = `
switches: [s1]
links:
  - endpoints: [server, s1]
  - endpoints: [x, s1]
hosts:
  server:
    expose: [12000]
    programs:
      - name: srv
        command: labctl app xy-server --port 12000
        ready: {tcp: 12000}
        student:
          ready: {tcp: 12000, timeout: 30s}
          time_limit: 90s
          stdin: [{line: go, after: "(?i)ready"}]
  x:
    localhost: {12000: server, 8080: "server:80"}
    programs:
      - name: cl
        command: labctl app xy-client --server ${server}:12000
        stdin: [{line: "${server}", after: "address: $"}, {line: b, idle: 300ms}]
checks:
  - {name: both, points: 5, all: [{output: x/cl, contains: a}, {exit: x/cl}]}
  - {output: x/cl, contains: a, count: 1, loose: true, points: 2}
  - {manual: read it, points: 10}
`

func TestReachAndInteractiveFieldsParse(t *testing.T) {
	lab, err := Parse("reach.yaml", []byte(reachLab))
	require.NoError(t, err)
	x := lab.Node("x")
	assert.Equal(t, []Forward{{Port: 8080, Node: "server", ToPort: 80}, {Port: 12000, Node: "server", ToPort: 12000}}, x.Localhost)
	assert.True(t, lab.Node("server").Exposed(12000))
	assert.Equal(t, "address: $", x.Programs[0].Stdin[0].After)
	assert.Equal(t, 300*time.Millisecond, x.Programs[0].Stdin[1].Idle.D())
	assert.Equal(t, "all", lab.Checks[0].Kind())
	assert.Equal(t, "manual", lab.Checks[2].Kind())
	hosts := lab.HostsFile("x", "reach")
	assert.Contains(t, hosts, "# labctl lab reach, host x\n")
	assert.Contains(t, hosts, "127.0.1.1\tx\n")
	assert.Contains(t, hosts, "10.0.0.1\tserver\n")
	assert.NotContains(t, hosts, "s1")
}

func TestStudentVariantAndOverrideFlags(t *testing.T) {
	lab, err := Parse("reach.yaml", []byte(reachLab))
	require.NoError(t, err)
	require.NoError(t, lab.OverrideProgram("server=python3 server.py"))
	p := lab.Node("server").Programs[0]
	assert.Equal(t, Command{"python3", "server.py"}, p.Command)
	assert.Equal(t, 90*time.Second, p.TimeLimit.D())
	assert.Equal(t, 30*time.Second, p.Ready.Timeout.D())
	assert.Equal(t, "go", p.Stdin[0].Text)

	require.NoError(t, lab.OverrideStdin("x=typed.txt", []byte("one\r\ntwo\n"), false))
	cl := lab.Node("x").Programs[0]
	require.Len(t, cl.Stdin, 2)
	assert.Equal(t, StdinLine{Text: "two", Idle: Duration(StdinFileIdle)}, cl.Stdin[1])
	require.NoError(t, lab.OverrideStdin("x=t.yaml", []byte("- {line: hi, after: '>'}\n- plain\n"), true))
	cl = lab.Node("x").Programs[0]
	assert.Equal(t, []StdinLine{{Text: "hi", After: ">"}, {Text: "plain"}}, cl.Stdin)
	require.Error(t, lab.OverrideStdin("x=t.yaml", []byte("- {line: hi, when: x}\n"), true))

	require.NoError(t, lab.OverrideReady("server=line:listening"))
	assert.Equal(t, "listening", lab.Node("server").Programs[0].Ready.Line)
	assert.Equal(t, 30*time.Second, lab.Node("server").Programs[0].Ready.Timeout.D(), "the timeout stays")
	require.NoError(t, lab.OverrideReady("server=none"))
	assert.Nil(t, lab.Node("server").Programs[0].Ready)
	require.NoError(t, lab.OverrideTimeLimit("x/cl=5s"))
	assert.Equal(t, 5*time.Second, lab.Node("x").Programs[0].TimeLimit.D())

	for _, bad := range []func() error{
		func() error { return lab.OverrideReady("server=port:1") },
		func() error { return lab.OverrideReady("nosuch=none") },
		func() error { return lab.OverrideTimeLimit("x=soon") },
		func() error { return lab.OverrideTimeLimit("x=-1s") },
		func() error { return lab.OverrideStdin("x/nope=f", nil, false) },
	} {
		assert.Error(t, bad())
	}
}

func TestReachAndCheckErrors(t *testing.T) {
	base := "switches: [s1]\nlinks: [{endpoints: [a, s1]}, {endpoints: [b, s1]}]\n"
	for _, tc := range []struct{ body, want string }{
		{"hosts: {a: {localhost: {x: b}}, b: {}}", `hosts.a.localhost: "x": want a port`},
		{"hosts: {a: {localhost: {80: nosuch}}, b: {}}", `no node "nosuch"`},
		{"hosts: {a: {localhost: {80: a}}, b: {}}", "is this host"},
		{"hosts: {a: {localhost: {80: 'b:0'}}, b: {}}", "want NODE or NODE:PORT"},
		{"hosts: {a: {expose: [0]}, b: {}}", "want a port 1-65535"},
		{"hosts: {a: {expose: [80, 80]}, b: {}}", "80 given twice"},
		{"path: [bin]\nhosts: {a: {}, b: {}}", `path: "bin": want an absolute folder`},
		{"hosts: {a: {programs: [{command: x, path: [rel]}]}, b: {}}", "want an absolute folder"},
		{"hosts: {a: {programs: [{command: x, stdin: [{line: y, after: '('}]}]}, b: {}}", "bad regular expression"},
		{"hosts: {a: {programs: [{command: x, stdin: ['${nosuch}']}]}, b: {}}", `no host "nosuch"`},
		{"hosts: {a: {programs: [{command: x}]}, b: {}}\nchecks: [{exit: a/x, count: 1}]", "count (0 or more) goes with"},
		{"hosts: {a: {programs: [{command: x}]}, b: {}}\nchecks: [{all: [{exit: a/x, points: 1}]}]", "points go on the all: check"},
		{"hosts: {a: {programs: [{command: x}]}, b: {}}\nchecks: [{exit: a/x, points: -1}]", "want 0 or more points"},
		{"hosts: {a: {programs: [{command: x}]}, b: {}}\nchecks: [{manual: m, exit: a/x}]", "give exactly one of"},
	} {
		_, err := Parse("bad.yaml", []byte(base+tc.body))
		if assert.Error(t, err, tc.body) {
			assert.Contains(t, err.Error(), tc.want, tc.body)
		}
	}
}

func TestLooseText(t *testing.T) {
	for in, want := range map[string]string{
		"From Server:  X: Alice!":  "from server x alice",
		"  ...Client X connected ": "client x connected",
		"Y:Bob":                    "y bob",
		"ÉCOLE, été":               "école été",
		"":                         "",
	} {
		assert.Equal(t, want, LooseText(in), "%q", in)
	}
}

func TestLooseRegexp(t *testing.T) {
	for _, tc := range []struct {
		re, line string
		match    bool
	}{
		{`^X: \w+ received before Y: \w+$`, "From Server: x: Alice received before y: Bob.", false},
		{`^(.* )?X: \w+ received before Y: \w+$`, "From Server: x: Alice received before y: Bob.", true},
		{`^(.* )?X: \w+ received before Y: \w+$`, "X: Alice received before Y: Bob", true},
		{`^(.* )?X: \w+ received before Y: \w+$`, "X: Alice received after Y: Bob", false},
		{`^client [xy] connected$`, "CLIENT   Y -- CONNECTED!!", true},
		{`^Client X: Alice$`, "Alice", false},
		{`^(Client X: )?Alice$`, "Alice", true},
	} {
		rx, err := LooseRegexp(tc.re)
		require.NoError(t, err)
		assert.Equal(t, tc.match, rx.MatchString(LooseText(tc.line)), "/%s/ on %q", tc.re, tc.line)
	}
	_, err := LooseRegexp("(")
	assert.Error(t, err)
}
