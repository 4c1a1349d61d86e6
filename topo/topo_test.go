package topo

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGenerateMatchesMininet(t *testing.T) {
	for _, tc := range []struct {
		spec                  string
		hosts, switches, link int
	}{
		{"minimal", 2, 1, 2},
		{"single,3", 3, 1, 3},
		{"linear,4", 4, 4, 7},
		{"tree,2,3", 9, 4, 12},
		{"tree,3,2", 8, 7, 14},
		{"single,1000", 1000, 1, 1000},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			lab, err := Generate(tc.spec)
			require.NoError(t, err)
			var h, s int
			for _, n := range lab.Nodes {
				switch n.Kind {
				case Host:
					h++
				case Switch:
					s++
				}
			}
			assert.Equal(t, tc.hosts, h)
			assert.Equal(t, tc.switches, s)
			assert.Len(t, lab.Links, tc.link)
			assert.Equal(t, "10.0.0.1", lab.Node("h1").Addr(), "Mininet numbering: h1 is 10.0.0.1")
			assert.Equal(t, "10.0.0.1/8", lab.Node("h1").Ifaces[0].Addr)
			assert.Equal(t, "eth0", lab.Node("h1").Ifaces[0].Name)
		})
	}
	lab, err := Generate("single,1000")
	require.NoError(t, err)
	assert.Equal(t, "10.0.3.232", lab.Node("h1000").Addr())

	// Mininet's TreeTopo numbers switches depth-first: s1 is the root, s2 its
	// first child; hosts h1,h2 hang off s2.
	lab, err = Generate("tree,2,2")
	require.NoError(t, err)
	assert.Equal(t, "s2", lab.Node("h1").Ifaces[0].Peer.Name)
	assert.Equal(t, "s3", lab.Node("h3").Ifaces[0].Peer.Name)
	assert.Equal(t, "tree-2-2", lab.Name)
}

func TestGenerateErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"ring,3":     "want minimal, single,N, linear,N or tree,DEPTH,FANOUT",
		"single":     "want single,N",
		"linear,0":   "not a positive whole number",
		"linear,x":   "not a positive whole number",
		"tree,2":     "want tree,DEPTH,FANOUT",
		"tree,9,9":   "more than 4096",
		"single,1,2": "want single,N",
	} {
		_, err := Generate(spec)
		require.Error(t, err, spec)
		assert.Contains(t, err.Error(), want, spec)
	}
}

const goodLab = `
name: demo
backend: userspace
seed: 7
hosts:
  server:
    programs:
      - command: labctl app xy-server --port 12000
        service: true
        ready: {tcp: 12000, timeout: 5s}
  x:
    programs:
      - name: client
        command: ["labctl", "app", "xy-client", "--name", "Alice"]
        after: [server/xy-server]
        stdin: ["hello", {line: bye, delay: 1s}]
  y: {}
switches: [s1]
links:
  - endpoints: [server, s1]
  - endpoints: ["x:e1", s1]
    netem: {delay: 25ms, jitter: 2ms, loss: 1%, rate: 10mbit}
    egress:
      s1: {delay: 5ms}
  - endpoints: [{node: y, ip: 10.0.0.50/8}, s1]
checks:
  - output: x/client
    contains: "Client X connected"
    matches: ['^X: \w+ received before Y: \w+$']
    in_order: true
  - exit: x/client
  - before:
      - {output: x/client, matches: "connected"}
      - {output: server/xy-server, matches: "Sent"}
timeline:
  - at: 2s
    netem: {link: x-s1, from: x, set: {loss: 30%}}
  - at: 5s
    kill: server/xy-server
`

func TestParseGoodLab(t *testing.T) {
	lab, err := Parse("demo.yaml", []byte(goodLab))
	require.NoError(t, err)
	assert.Equal(t, "demo", lab.Name)
	assert.Equal(t, int64(7), lab.Seed)
	require.Len(t, lab.Nodes, 4)
	assert.Equal(t, []Kind{Host, Host, Host, Switch}, []Kind{lab.Nodes[0].Kind, lab.Nodes[1].Kind, lab.Nodes[2].Kind, lab.Nodes[3].Kind})
	x := lab.Node("x")
	assert.Equal(t, "e1", x.Ifaces[0].Name)
	assert.Equal(t, "10.0.0.2/8", x.Ifaces[0].Addr)
	assert.Equal(t, "10.0.0.50", lab.Node("y").Addr())
	l := lab.Link("x-s1")
	require.NotNil(t, l)
	assert.Equal(t, 25*time.Millisecond, l.Spec("x").Delay.D())
	assert.Equal(t, Rate(10e6), l.Spec("x").Rate)
	assert.Equal(t, Percent(1), l.Spec("x").Loss)
	assert.Equal(t, 5*time.Millisecond, l.Spec("s1").Delay.D(), "egress replaces netem for that sender")
	srv := lab.Node("server").Programs[0]
	assert.Equal(t, "xy-server", srv.Name, "name derived from labctl app NAME")
	assert.Equal(t, "12000", srv.Ready.TCP)
	cl := x.Programs[0]
	assert.Equal(t, []StdinLine{{Text: "hello"}, {Text: "bye", Delay: Duration(time.Second)}}, cl.Stdin)
	assert.Equal(t, "output", lab.Checks[0].Kind())
	assert.Equal(t, 27, lab.Checks[0].Line)
	assert.Equal(t, "netem", lab.Timeline[0].Kind())
	assert.Equal(t, Percent(30), lab.Timeline[0].Netem.Set.Loss)
}

func TestRoutersGetSubnetsAndRoutes(t *testing.T) {
	lab, err := Parse("r.yaml", []byte(`
hosts: {a: , b: , c: }
routers: {r1: , r2: }
switches: [s1, s2]
links:
  - endpoints: [a, s1]
  - endpoints: [r1, s1]
  - endpoints: [r1, r2]
  - endpoints: [r2, s2]
  - endpoints: [b, s2]
  - endpoints: [c, s2]
`))
	require.NoError(t, err)
	// Segments are numbered in node order: a's (s1), b's (s2), then r1-r2.
	assert.Equal(t, "10.0.0.1/24", lab.Node("a").Ifaces[0].Addr)
	assert.Equal(t, "10.0.1.1/24", lab.Node("b").Ifaces[0].Addr)
	assert.Equal(t, "10.0.1.2/24", lab.Node("c").Ifaces[0].Addr)
	assert.Equal(t, "10.0.0.254/24", lab.Node("r1").Ifaces[0].Addr)
	assert.Equal(t, "10.0.2.254/24", lab.Node("r1").Ifaces[1].Addr)
	assert.Equal(t, "10.0.2.253/24", lab.Node("r2").Ifaces[0].Addr)
	assert.Equal(t, "10.0.1.254/24", lab.Node("r2").Ifaces[1].Addr)
	assert.Equal(t, []Route{{Dst: "default", Via: "10.0.0.254"}}, lab.Node("a").Routes)
	assert.Equal(t, []Route{{Dst: "default", Via: "10.0.1.254"}}, lab.Node("c").Routes)
	assert.Equal(t, []Route{{Dst: "10.0.1.0/24", Via: "10.0.2.253"}}, lab.Node("r1").Routes)
	assert.Equal(t, []Route{{Dst: "10.0.0.0/24", Via: "10.0.2.254"}}, lab.Node("r2").Routes)
}

func TestParseErrorsNameFileLineAndField(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"syntax", "hosts: [a\nlinks: x", "f.yaml:"},
		{"unknown top field", "hostz: {}", "f.yaml:1: hostz: unknown field"},
		{"unknown node field", "hosts:\n  a:\n    program: []", "f.yaml:3: hosts.a.program: unknown field"},
		{"duplicate node", "hosts: {a: }\nswitches: [a]", "f.yaml:2: switches.a: duplicate node name \"a\" (first defined as a host on line 1)"},
		{"missing node", "hosts: {a: }\nlinks:\n  - endpoints: [a, b]", "f.yaml:3: links[0].endpoints: no node \"b\""},
		{"one endpoint", "hosts: {a: }\nlinks:\n  - endpoints: [a]", "f.yaml:3: links[0].endpoints: want exactly 2 endpoints"},
		{"self link", "hosts: {a: }\nlinks:\n  - endpoints: [a, a]", "linked to itself"},
		{"long iface", "hosts: {a: , b: }\nlinks:\n  - endpoints: [\"a:averyveryverylongname\", b]", "f.yaml:3: links[0].endpoints: interface name \"averyveryverylongname\": at most 15 bytes"},
		{"dup iface", "hosts: {a: , b: , c: }\nlinks:\n  - endpoints: [\"a:x\", b]\n  - endpoints: [\"a:x\", c]", "f.yaml:4: links[1] (a-c).endpoints: node \"a\" has two interfaces named \"x\""},
		{"address clash", "hosts: {a: , b: }\nlinks:\n  - endpoints: [{node: a, ip: 10.0.0.9/8}, {node: b, ip: 10.0.0.9/8}]", "clashes with a:eth0"},
		{"bad address", "hosts: {a: , b: }\nlinks:\n  - endpoints: [{node: a, ip: 10.0.0.300/8}, b]", "address \"10.0.0.300/8\""},
		{"bad loss", "hosts: {a: , b: }\nlinks:\n  - endpoints: [a, b]\n    netem: {loss: 110%}", "f.yaml:4: links[0].netem.loss: bad percentage \"110%\": outside 0-100%"},
		{"bad unit", "hosts: {a: , b: }\nlinks:\n  - endpoints: [a, b]\n    netem: {delay: 25}", "f.yaml:4: links[0].netem.delay: bad duration \"25\""},
		{"bad rate", "hosts: {a: , b: }\nlinks:\n  - endpoints: [a, b]\n    netem: {rate: 10 megs}", "links[0].netem.rate: bad rate"},
		{"reorder no delay", "hosts: {a: , b: }\nlinks:\n  - endpoints: [a, b]\n    netem: {reorder: 5%}", "f.yaml:3: links[0] (a-b).netem: reorder needs a delay"},
		{"egress not endpoint", "hosts: {a: , b: , c: }\nlinks:\n  - endpoints: [a, b]\n    egress: {c: {loss: 1%}}", "egress.c: \"c\" is not an endpoint"},
		{"switch address", "hosts: {a: }\nswitches: [s]\nlinks:\n  - endpoints: [a, {node: s, ip: 10.0.0.1/8}]", "a switch port has no address"},
		{"bad node name", "hosts: {\"1a\": }", "node name \"1a\""},
		{"long switch", "switches: [abcdefghijklmnop]", "at most 15 bytes"},
		{"bad lab name", "name: Bad_Name\nhosts: {a: }", "f.yaml: name: lab name \"Bad_Name\""},
		{"bad backend", "backend: magic", "f.yaml: backend: \"magic\": want auto, kernel or userspace"},
		{"no command", "hosts:\n  a:\n    programs:\n      - name: p", "f.yaml:4: hosts.a.programs[0].command: a program needs a command"},
		{"dup program", "hosts:\n  a:\n    programs:\n      - command: sleep 1\n      - command: sleep 2", "two programs named \"sleep\" on a"},
		{"bad restart", "hosts:\n  a:\n    programs:\n      - command: x\n        restart: sometimes", "restart: \"sometimes\""},
		{"two readies", "hosts:\n  a:\n    programs:\n      - command: x\n        ready: {tcp: 1, line: y}", "give exactly one of tcp, udp, line"},
		{"bad ready port", "hosts:\n  a:\n    programs:\n      - command: x\n        ready: {tcp: 70000}", "want PORT or ADDRESS:PORT"},
		{"missing dep", "hosts:\n  a:\n    programs:\n      - command: x\n        after: [b/y]", "no node \"b\""},
		{"cycle", "hosts:\n  a:\n    programs:\n      - {name: p, command: x, after: [q]}\n      - {name: q, command: x, after: [p]}", "start order has a cycle"},
		{"check two kinds", "hosts:\n  a:\n    programs: [{command: x}]\nchecks:\n  - {output: a/x, exit: a/x, contains: y}", "f.yaml:5: checks[0]: give exactly one of"},
		{"check no program", "hosts: {a: }\nchecks:\n  - {exit: a/x}", "no program \"x\" on a"},
		{"check bad regexp", "hosts:\n  a:\n    programs: [{command: x}]\nchecks:\n  - {output: a/x, matches: '('}", "bad regular expression"},
		{"timeline bad link", "timeline:\n  - {at: 1s, link_down: nope}", "f.yaml:2: timeline[0]: no link \"nope\""},
		{"timeline bad signal", "hosts:\n  a:\n    programs: [{command: x}]\ntimeline:\n  - {at: 1s, kill: a/x, signal: USR9}", "signal \"USR9\""},
		{"bad route", "hosts:\n  a:\n    routes: [\"10.0.0.0/8 through 1.2.3.4\"]", "hosts.a.routes[0]: route"},
		{"bad type", "seed: abc", "f.yaml:1: seed: want a whole number, got \"abc\""},
		{"empty", "", "empty lab file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tc.yaml))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}

func TestUnits(t *testing.T) {
	for in, want := range map[string]Rate{"10mbit": 10e6, "1gbit": 1e9, "512kbit": 512e3, "100bit": 100, "1mbps": 8e6, "1.5Mbit": 1.5e6} {
		r, err := ParseRate(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, r, in)
	}
	assert.Equal(t, "10mbit", Rate(10e6).String())
	for _, bad := range []string{"10", "mbit", "-1mbit", "10 parsecs"} {
		_, err := ParseRate(bad)
		assert.Error(t, err, bad)
	}
	d, err := ParseDuration("10msec")
	require.NoError(t, err)
	assert.Equal(t, 10*time.Millisecond, d.D())
	_, err = ParseDuration("-5ms")
	assert.Error(t, err)
	p, err := ParsePercent("0.5%")
	require.NoError(t, err)
	assert.InDelta(t, 0.005, p.Fraction(), 1e-12)
	for _, bad := range []string{"-1%", "101", "lots", "NaN"} {
		_, err := ParsePercent(bad)
		assert.Error(t, err, bad)
	}
}

func TestImpairmentString(t *testing.T) {
	m := Impairment{Delay: Duration(50 * time.Millisecond), Jitter: Duration(5 * time.Millisecond), Loss: 10, Rate: 10e6}
	assert.Equal(t, "delay 50ms 5ms loss 10% rate 10mbit", m.String())
	assert.Equal(t, "clean", Impairment{}.String())
	assert.ErrorContains(t, Impairment{Loss: 1, LossGE: &GilbertElliott{P: 1, R: 10}}.Validate(), "exclusive")
	assert.ErrorContains(t, Impairment{LossCorrelation: 5}.Validate(), "loss_correlation without loss")
}

func TestSplitCommand(t *testing.T) {
	args, err := SplitCommand(`python3 client.py --name 'Alice B' "x \"y\"" a\ b`)
	require.NoError(t, err)
	assert.Equal(t, []string{"python3", "client.py", "--name", "Alice B", `x "y"`, "a b"}, args)
	_, err = SplitCommand(`echo 'oops`)
	assert.Error(t, err)
}

func TestBuiltinLabsParse(t *testing.T) {
	names := BuiltinNames()
	require.Contains(t, names, DefaultLab)
	for _, n := range names {
		lab, err := Builtin(n)
		require.NoError(t, err, n)
		assert.Equal(t, "builtin:"+n, lab.Source)
	}
	_, err := Builtin("nope")
	assert.ErrorContains(t, err, fmt.Sprintf("built-in: %s", names[0]))
}

func TestUnitsRoundTripJSON(t *testing.T) {
	m := Impairment{Delay: Duration(25 * time.Millisecond), Loss: 1.5, Rate: 10e6, Gap: 3, Reorder: 5}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	assert.JSONEq(t, `{"delay":"25ms","loss":"1.5%","rate":"10mbit","gap":3,"reorder":"5%"}`, string(b))
	var back Impairment
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, m, back)
	require.NoError(t, json.Unmarshal([]byte(`{"delay":25000000,"loss":10}`), &back))
	assert.Equal(t, 25*time.Millisecond, back.Delay.D())
	assert.Error(t, json.Unmarshal([]byte(`{"loss":"200%"}`), &back))
}

func TestFaultsInLabFiles(t *testing.T) {
	lab, err := Parse("f.yaml", []byte(`
hosts: {a: , b: }
links:
  - endpoints: [a, b]
    faults:
      - {nth: 3, match: {proto: udp, port: 9000, from: a}, action: drop}
      - {action: down, after: 2s, for: 500ms}
`))
	require.NoError(t, err)
	require.Len(t, lab.Links[0].Faults, 2)
	assert.Equal(t, "drop packet (udp port 9000 from a) #3", lab.Links[0].Faults[0].String())
	_, err = Parse("f.yaml", []byte("hosts: {a: , b: }\nlinks:\n  - endpoints: [a, b]\n    faults: [{nth: 1, action: explode}]"))
	assert.ErrorContains(t, err, `f.yaml:3: links[0] (a-b).faults[0]: link "a-b": fault: action "explode"`)
	_, err = Parse("f.yaml", []byte("hosts: {a: , b: }\nlinks:\n  - endpoints: [a, b]\n    faults: [{nth: 1, action: drop, match: {from: c}}]"))
	assert.ErrorContains(t, err, `match from "c"`)
	_, err = Parse("f.yaml", []byte("backend: kernel\nhosts: {a: , b: }\nlinks:\n  - endpoints: [a, b]\n    faults: [{nth: 1, action: drop}]"))
	assert.ErrorContains(t, err, "need the userspace backend")
}
