package topo

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const pairLab = `name: pair
roles: {client: [c1, c2/s]}
hosts:
  srv: {programs: [{name: s, command: "true", service: true}]}
  c1: {programs: [{name: s, command: "true"}]}
  c2: {programs: [{name: s, command: "true"}, {name: t, command: "true"}]}
switches: [s1]
links: [{endpoints: [srv, s1]}, {endpoints: [c1, s1]}, {endpoints: [c2, s1]}]
checks:
  - distinct: {outputs: [c1/s, c2/s], matches: 'Client(\d+)'}
  - counters: {link: c1-s1, from: s1, packets: 3}
  - any: [{output: c1/s, any_status: true, matches: full}, {output: srv/s, contains: full}]
  - {output: c1/s, contains: ACK, at_most: 1}
  - same_file: ["srv:repository/a.bin", "c1:**/a.bin"]
`

func TestOneSubmissionFillsSeveralHosts(t *testing.T) {
	lab, err := Parse("pair.yaml", []byte(pairLab))
	require.NoError(t, err)
	got, err := lab.ExpandSpec("--program", "srv,client=python3 x.py ${host}")
	require.NoError(t, err)
	assert.Equal(t, []string{"srv=python3 x.py ${host}", "c1=python3 x.py ${host}", "c2/s=python3 x.py ${host}"}, got)
	for _, s := range got {
		require.NoError(t, lab.OverrideProgram(s))
	}
	assert.Equal(t, Command{"python3", "x.py", "${host}"}, lab.Node("c2").Programs[0].Command)
	assert.Equal(t, Command{"true"}, lab.Node("c2").Programs[1].Command)

	_, err = lab.ExpandSpec("--program", "c1,client=x")
	assert.EqualError(t, err, `--program "c1,client=x": c1 is named twice`)
	_, err = lab.ExpandSpec("--program", "srv,,c1=x")
	assert.EqualError(t, err, `--program "srv,,c1=x": an empty name in the list of hosts`)
	one, err := lab.ExpandSpec("--program", "nosuch=x")
	require.NoError(t, err)
	assert.EqualError(t, lab.OverrideProgram(one[0]), `--program "nosuch=x": no node "nosuch"`)
}

func TestEvidenceChecksAndRolesAreValidated(t *testing.T) {
	for _, tc := range []struct{ from, to, err string }{
		{"roles: {client: [c1, c2/s]}", "roles: {srv: [c1]}", `roles.srv: "srv" is a node's name`},
		{"roles: {client: [c1, c2/s]}", "roles: {client: [c2]}", `roles.client: roles.client "c2": c2 runs s, t: say which one`},
		{"link: c1-s1, from: s1", "link: nope, from: s1", `no link "nope"`},
		{"link: c1-s1, from: s1", "link: c1-s1, from: srv", `"srv" is not an end of link "c1-s1"`},
		{"matches: 'Client(\\d+)'", "matches: 'Client('", `bad regular expression`},
		{"outputs: [c1/s, c2/s]", "outputs: [c1/s]", `want two or more programs`},
		{"at_most: 1", "at_most: 1, count: 1", `at_most (0 or more, without count)`},
		{`"srv:repository/a.bin", "c1:**/a.bin"`, `"c1:**/a.bin", "srv:repository/a.bin"`, `the first path is the original`},
		{"{output: srv/s, contains: full}", "{exit: srv/s, any_status: true}", `any_status goes with an output check`},
	} {
		_, err := Parse("pair.yaml", []byte(replaceOnce(t, pairLab, tc.from, tc.to)))
		if assert.Error(t, err, tc.to) {
			assert.Contains(t, err.Error(), tc.err)
		}
	}
}

func replaceOnce(t *testing.T, s, from, to string) string {
	t.Helper()
	i := strings.Index(s, from)
	require.GreaterOrEqual(t, i, 0, from)
	return s[:i] + to + s[i+len(from):]
}
