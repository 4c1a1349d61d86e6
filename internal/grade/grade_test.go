package grade

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labctl/labctl/nodes"
	"github.com/labctl/labctl/topo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestShardsSplitAClassOnceAndStably(t *testing.T) {
	var all []submission
	for _, n := range []string{"ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "jon"} {
		all = append(all, submission{name: n})
	}
	seen := map[string]int{}
	for k := 0; k < 3; k++ {
		for _, s := range (Shard{K: k, N: 3}).pick(all) {
			seen[s.name]++
		}
	}
	require.Len(t, seen, len(all))
	for n, c := range seen {
		assert.Equal(t, 1, c, n)
	}
	// A new student moves no one.
	before := (Shard{K: 1, N: 3}).pick(all)
	after := (Shard{K: 1, N: 3}).pick(append(all, submission{name: "kim"}))
	for _, s := range before {
		assert.Contains(t, after, s)
	}
	for _, bad := range []string{"3/3", "-1/2", "a/2", "1", "0/0"} {
		_, err := ParseShard(bad)
		assert.Error(t, err, bad)
	}
	s, err := ParseShard("2/4")
	require.NoError(t, err)
	assert.Equal(t, Shard{K: 2, N: 4}, s)
}

func TestMergeRefusesTwiceGradedAndOtherLabs(t *testing.T) {
	checks := []CheckInfo{{Title: "a", Points: 1}}
	r1 := &Report{Lab: "xy", Shard: "0/2", Checks: checks, Rows: []Row{{Submission: "ann", Outcome: Pass, Points: 1}}, Submissions: 1}
	r2 := &Report{Lab: "xy", Shard: "1/2", Checks: checks, Rows: []Row{{Submission: "bob", Outcome: Fail}}, Submissions: 1}
	m, err := Merge([]*Report{r2, r1})
	require.NoError(t, err)
	require.Len(t, m.Rows, 2)
	assert.Equal(t, "ann", m.Rows[0].Submission, "sorted")
	assert.Equal(t, 1, m.Counts[Pass])
	assert.Equal(t, 1, m.Counts[Fail])
	assert.Contains(t, m.Summary, "2 of 2 submissions graded")

	_, err = Merge([]*Report{r1, r1})
	assert.ErrorContains(t, err, `submission "ann" is in two reports`)
	other := &Report{Lab: "chat", Checks: checks}
	_, err = Merge([]*Report{r1, other})
	assert.ErrorContains(t, err, "other checks")
}

func TestReportsRoundTripAndGradescopeShape(t *testing.T) {
	dir := t.TempDir()
	r := &Report{Grading: "g1", Lab: "xy", Checks: []CheckInfo{{Title: "replies", Points: 1}, {Title: "exits", Points: 1}},
		Rows: []Row{{Submission: "ann, \"the\" <b>", Outcome: Fail, Reason: "replies: no line", Points: 1, MaxPoints: 2,
			Checks: []RowCheck{{Title: "replies", Max: 1, Detail: "no line"}, {Title: "exits", Pass: true, Points: 1, Max: 1}}}}}
	r.finish(false)
	require.NoError(t, r.Write(dir, []string{"csv", "json", "html", "gradescope"}))
	back, err := Load(filepath.Join(dir, "report.json"))
	require.NoError(t, err)
	assert.Equal(t, r.Rows[0].Checks, back.Rows[0].Checks)
	html, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	assert.Contains(t, string(html), "ann, &#34;the&#34; &lt;b&gt;", "escaped")
	csv, _ := os.ReadFile(filepath.Join(dir, "report.csv"))
	assert.Contains(t, string(csv), `"ann, ""the"" <b>",fail,1,2,0,1`)
	gs, _ := os.ReadFile(filepath.Join(dir, "results.json"))
	for _, k := range []string{`"score": 1`, `"execution_time"`, `"output": "fail: replies: no line"`, `"max_score": 1`, `"status": "failed"`, `"visibility": "visible"`} {
		assert.Contains(t, string(gs), k)
	}
}

func TestTemplatesFindTheSourceInAnyLanguage(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Client.java"), nil, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "server.c"), nil, 0o644))
	cmd, builds, langs, err := expandTemplate("{run:client} ${server} {name}", dir, dir, "o'neil")
	require.NoError(t, err)
	assert.Equal(t, `java -cp . Client ${server} 'o'\''neil'`, cmd)
	assert.Equal(t, []string{"javac -d . Client.java"}, builds)
	assert.Equal(t, []string{"java"}, langs)
	cmd, builds, _, err = expandTemplate("{run:SERVER} --port 1", dir, dir, "x")
	require.NoError(t, err)
	assert.Equal(t, "./server.bin --port 1", cmd)
	assert.Equal(t, []string{"cc -O2 -o server.bin server.c -lm"}, builds)
	_, _, _, err = expandTemplate("{run:missing}", dir, dir, "x")
	assert.ErrorContains(t, err, "no missing.py")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "peer.go"), nil, 0o644))
	cmd, builds, _, err = expandTemplate("{run:peer}", dir, dir, "x")
	require.NoError(t, err)
	assert.Equal(t, "./peer.bin", cmd)
	assert.Equal(t, []string{"go build -o peer.bin peer.go"}, builds)
	_, _, _, err = expandTemplate("{run?:missing}", dir, dir, "x")
	assert.ErrorIs(t, err, errAbsent)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "client.py"), nil, 0o644))
	_, _, _, err = expandTemplate("{run:client}", dir, dir, "x")
	assert.ErrorContains(t, err, "which one")
}

func TestSimpleCommandsRunWithoutAShell(t *testing.T) {
	assert.Equal(t, []string{"./a.bin", "10.0.0.1"}, commandArgv("./a.bin 10.0.0.1"))
	assert.Equal(t, []string{"java", "-cp", ".", "Client"}, commandArgv("java -cp . Client"))
	for _, c := range []string{"a | b", "a; b", "echo $HOME", "a > f", "X=1 a"} {
		assert.Equal(t, []string{"sh", "-c", c}, commandArgv(c), c)
	}
}

func TestOutputCapPassesTheFirstBytesAndCountsTheRest(t *testing.T) {
	c := &capper{left: 10}
	var out, errb bytes.Buffer
	c.copy(&out, strings.NewReader("0123456"))
	c.copy(&errb, strings.NewReader("789abcdef"))
	assert.Equal(t, "0123456", out.String())
	assert.Equal(t, "789", errb.String())
	assert.Equal(t, int64(6), c.discarded())
}

func TestASandboxWithoutNetAdminGetsOneClearLine(t *testing.T) {
	f := filepath.Join(t.TempDir(), "status")
	defer func(old string) { statusFile = old }(statusFile)
	statusFile = f
	// Docker's default capabilities: no CAP_NET_ADMIN, no CAP_SYS_ADMIN.
	require.NoError(t, os.WriteFile(f, []byte("Name:\tx\nCapEff:\t00000000a80425fb\n"), 0o644))
	err := CheckPrivileges()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "CAP_NET_ADMIN and CAP_SYS_ADMIN")
	assert.Contains(t, err.Error(), "privileged")
	require.NoError(t, os.WriteFile(f, []byte("CapEff:\t000001ffffffffff\n"), 0o644))
	assert.NoError(t, CheckPrivileges())
}

func TestAnExitCheckAloneNeverPassesARole(t *testing.T) {
	lab := &topo.Lab{Name: "l", Checks: []topo.Check{
		{Name: "x says hi", Output: "x/c", Contains: []string{"hi"}},
		{Name: "x exits", Exit: "x/c"},
		{Name: "y exits", Exit: "y/c"},
	}}
	g := &grading{o: Options{Limits: DefaultLimits}, lab0: lab}
	row := &Row{Roles: []string{"x/c", "y/c"}}
	res := resultStub{pass: []bool{false, true, true}}
	g.judge(row, lab, res.result(lab), nil)
	assert.Equal(t, Fail, row.Outcome)
	assert.Contains(t, row.Checks[1].Detail, "x/c exited 0 without doing: x says hi")
	assert.False(t, row.Checks[1].Pass)
	assert.Contains(t, row.Checks[2].Detail, "no check of this lab shows what it did")
	assert.Equal(t, float64(0), row.Points)
	assert.Equal(t, float64(3), row.MaxPoints)
}

type resultStub struct{ pass []bool }

func (s resultStub) result(lab *topo.Lab) *nodes.Result {
	zero := 0
	r := &nodes.Result{Programs: []nodes.ProgramStatus{
		{Program: "x/c", State: nodes.StateExited, Status: &zero},
		{Program: "y/c", State: nodes.StateExited, Status: &zero},
	}}
	for i, c := range lab.Checks {
		r.Checks = append(r.Checks, nodes.CheckResult{Title: c.Title(), Pass: s.pass[i]})
	}
	return r
}
