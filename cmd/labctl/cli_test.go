package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/labctl/labctl/nodes"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// walk calls fn on every command under root.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, s := range c.Commands() {
		walk(s, fn)
	}
}

func find(t *testing.T, root *cobra.Command, path ...string) *cobra.Command {
	t.Helper()
	c, _, err := root.Find(path)
	require.NoError(t, err, "%v", path)
	require.Equal(t, path[len(path)-1], c.Name())
	return c
}

// TestHelpShowsNoBackquotedType: pflag takes the first `backquoted` text
// of a flag's usage as the name of its value, so a command quoted that way
// renders as "--for fault LAB LINK up". Backquotes may only name a value
// (`FILE`).
func TestHelpShowsNoBackquotedType(t *testing.T) {
	root := newRootCmd()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	placeholder := regexp.MustCompile("^[A-Z][A-Z0-9_]*$")
	walk(root, func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.LocalFlags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				name, _ := pflag.UnquoteUsage(f)
				assert.NotContains(t, name, " ", "%s --%s renders its value as %q", c.CommandPath(), f.Name, name)
				if strings.Contains(f.Usage, "`") {
					assert.Regexp(t, placeholder, name, "%s --%s: backquotes only name the value", c.CommandPath(), f.Name)
					assert.Equal(t, 2, strings.Count(f.Usage, "`"), "%s --%s", c.CommandPath(), f.Name)
				}
			})
		}
	})
	var out bytes.Buffer
	fault := find(t, root, "fault")
	fault.SetOut(&out)
	require.NoError(t, fault.Help())
	assert.Regexp(t, `--for duration +how long the link stays down`, out.String())
}

func TestRootIsCheckedInOnePlace(t *testing.T) {
	root := newRootCmd()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, p := range [][]string{{"app"}, {"app", "xy-server"}, {"app", "chat-client"}, {"graph"}, {"status"},
		{"inspect"}, {"logs"}, {"help"}, {"completion"}, {"completion", "bash"}} {
		assert.False(t, needsRoot(find(t, root, p...)), "%v needs no root", p)
	}
	for _, p := range [][]string{{"up"}, {"down"}, {"run"}, {"exec"}, {"ping"}, {"pingall"}, {"netem", "set"},
		{"netem", "show"}, {"netem", "reset"}, {"fault"}, {"capture"}, {"verify"}, {"clean"}, {"engine"}, {"supervise"},
		{"cli"}, {"term"}} {
		assert.True(t, needsRoot(find(t, root, p...)), "%v needs root", p)
	}
	assert.False(t, needsRoot(root), "bare labctl prints help")
	// No verb checks for itself: the check is the root's PersistentPreRunE.
	walk(root, func(c *cobra.Command) {
		if c == root {
			return
		}
		assert.Nil(t, c.PersistentPreRunE, "%s overrides the root check", c.CommandPath())
		assert.Nil(t, c.PersistentPreRun, "%s overrides the root check", c.CommandPath())
	})
	src, err := filepath.Glob("*.go")
	require.NoError(t, err)
	for _, f := range src {
		if strings.HasSuffix(f, "_test.go") || f == "common.go" || f == "root.go" {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.NotContains(t, string(b), "requireRoot()", "%s checks for root itself", f)
	}
}

// TestEveryLabVerbNamesTheLabTheSameWay: -l/--lab on every verb that acts
// on a running lab.
func TestEveryLabVerbNamesTheLabTheSameWay(t *testing.T) {
	root := newRootCmd()
	for _, p := range [][]string{{"down"}, {"exec"}, {"ping"}, {"pingall"}, {"inspect"}, {"logs"}, {"graph"}, {"verify"},
		{"netem", "set"}, {"netem", "show"}, {"netem", "reset"}, {"fault"}, {"capture"}, {"cli"}, {"term"}} {
		f := find(t, root, p...).Flags().Lookup("lab")
		if assert.NotNil(t, f, "%v has no --lab", p) {
			assert.Equal(t, "l", f.Shorthand, "%v", p)
		}
		assert.Contains(t, find(t, root, p...).Use, "LAB", "%v", p)
	}
}

// fakeLabs makes a state root holding these labs.
func fakeLabs(t *testing.T, labs ...string) {
	t.Helper()
	old := nodes.StateRoot
	nodes.StateRoot = t.TempDir()
	t.Cleanup(func() { nodes.StateRoot = old })
	for _, l := range labs {
		require.NoError(t, os.MkdirAll(nodes.Dir(l), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(nodes.Dir(l), "state.json"), []byte(`{"lab":"`+l+`","phase":"up"}`), 0o644))
	}
}

func TestLabArgs(t *testing.T) {
	fakeLabs(t, "lab1")
	for _, c := range []struct {
		flag     string
		args     []string
		min, max int
		lab      string
		rest     []string
	}{
		{"", []string{"h1-s1"}, 1, 1, "lab1", []string{"h1-s1"}},                 // netem set LINK
		{"", []string{"lab1", "h1-s1"}, 1, 1, "lab1", []string{"h1-s1"}},         // netem set LAB LINK
		{"lab1", []string{"h1-s1"}, 1, 1, "lab1", []string{"h1-s1"}},             // netem set -l LAB LINK
		{"", []string{"other", "a", "b"}, 2, 2, "other", []string{"a", "b"}},     // ping LAB A B
		{"", []string{"lab1"}, 0, 1, "lab1", []string{}},                         // logs LAB
		{"", []string{"x"}, 0, 1, "lab1", []string{"x"}},                         // logs NODE
		{"", nil, 0, 0, "lab1", nil},                                             // inspect
		{"", []string{"lab2"}, 0, 0, "lab2", []string{}},                         // inspect LAB
		{"", []string{"c1-s1", "down"}, 2, 2, "lab1", []string{"c1-s1", "down"}}, // fault LINK ACTION
	} {
		lab, rest, err := labArgs(c.flag, c.args, c.min, c.max)
		require.NoError(t, err, "%+v", c)
		assert.Equal(t, c.lab, lab, "%+v", c)
		assert.Equal(t, c.rest, rest, "%+v", c)
	}
	_, _, err := labArgs("lab1", []string{"lab1", "h1-s1"}, 1, 1)
	assert.ErrorContains(t, err, "--lab")
	assert.Equal(t, 2, exitCode(err))

	fakeLabs(t)
	_, _, err = labArgs("", []string{"h1-s1"}, 1, 1)
	assert.ErrorContains(t, err, "no lab is up")
	fakeLabs(t, "a", "b")
	_, _, err = labArgs("", []string{"h1-s1"}, 1, 1)
	assert.ErrorContains(t, err, "several labs are up (a, b)")
}

func TestExecArgs(t *testing.T) {
	fakeLabs(t, "xy")
	require.NoError(t, os.WriteFile(filepath.Join(nodes.Dir("xy"), "state.json"),
		[]byte(`{"lab":"xy","phase":"up","nodes":[{"name":"server"},{"name":"x"}]}`), 0o644))
	for _, c := range []struct {
		flag string
		args []string
		dash int
		node string
		argv []string
	}{
		{"", []string{"server", "--", "ip", "addr"}, -1, "server", []string{"ip", "addr"}},
		{"", []string{"xy", "server", "--", "ip", "addr"}, -1, "server", []string{"ip", "addr"}},
		{"", []string{"xy", "server"}, -1, "server", []string{}},
		{"", []string{"x", "ip", "addr"}, -1, "x", []string{"ip", "addr"}},
		{"xy", []string{"x", "--", "true"}, -1, "x", []string{"true"}},
		{"", []string{"x"}, -1, "x", nil},
		{"", []string{"x", "ls", "--", "-l"}, 0, "x", []string{"ls", "--", "-l"}},
	} {
		st, node, argv, err := execArgs(c.flag, c.args, c.dash)
		require.NoError(t, err, "%+v", c)
		assert.Equal(t, "xy", st.Lab)
		assert.Equal(t, c.node, node, "%+v", c)
		assert.Equal(t, c.argv, argv, "%+v", c)
	}
	_, _, _, err := execArgs("", []string{"a", "b", "c", "--", "true"}, -1)
	assert.Equal(t, 2, exitCode(err))
}
