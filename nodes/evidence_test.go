package nodes

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/labctl/labctl/topo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEvidenceChecksSayWhatWasMissing(t *testing.T) {
	StateRoot = t.TempDir()
	writeLog(t, "t", "c1", "s", "out Welcome! You are Client01", "out hi ACK", "out hi ACK")
	writeLog(t, "t", "c2", "s", "out Welcome! You are Client01")
	writeLog(t, "t", "c3", "s", "out you are client 3")
	writeLog(t, "t", "c4", "s", "out Sorry, the server is full", "err bye")
	ok := func(ref string) ProgramStatus {
		return ProgramStatus{Program: ref, State: StateExited, Status: status(0), Detail: "exited with status 0"}
	}
	c4 := ProgramStatus{Program: "c4/s", State: StateExited, Status: status(1), Detail: "exited with status 1"}
	res := &Result{Programs: []ProgramStatus{ok("c1/s"), ok("c2/s"), ok("c3/s"), c4}}
	names := `(?i)\bclient ?0*(\d+)\b`
	one, two := 1, 2
	for _, tc := range []struct {
		name string
		c    topo.Check
		det  string // "" passes
	}{
		{"a name reused", topo.Check{Distinct: &topo.Distinct{Outputs: []string{"c1/s", "c3/s", "c2/s"}, Matches: names}},
			`c1/s and c2/s were both given "1" ("Welcome! You are Client01" and "Welcome! You are Client01")`},
		{"names of their own", topo.Check{Distinct: &topo.Distinct{Outputs: []string{"c1/s", "c3/s"}, Matches: names}}, ""},
		{"no name at all", topo.Check{Distinct: &topo.Distinct{Outputs: []string{"c1/s", "c4/s"}, Matches: names}},
			`c4/s crashed (exited with status 1); the last of its stderr: "bye"`},
		{"at most once", topo.Check{Output: "c1/s", Contains: []string{"ACK"}, AtMost: &one},
			`2 lines contain "ACK", want at most 1: "hi ACK", "hi ACK"`},
		{"at least twice", topo.Check{Output: "c1/s", Contains: []string{"ACK"}, AtLeast: &two}, ""},
		{"at least twice, once seen", topo.Check{Output: "c2/s", Contains: []string{"Client01"}, AtLeast: &two},
			`1 lines contain "Client01", want at least 2 (1 lines; the last: "Welcome! You are Client01")`},
		{"a refusal, any status", topo.Check{Any: []topo.Check{
			{Output: "c4/s", AnyStatus: true, Matches: []string{`(?i)busy`}},
			{Output: "c4/s", AnyStatus: true, Matches: []string{`(?i)\bfull\b`}},
		}}, ""},
		{"no refusal", topo.Check{Any: []topo.Check{{Output: "c1/s", Matches: []string{`(?i)full`}}}},
			`none of 1 holds: c1/s prints /(?i)full/: no line matches /(?i)full/ (3 lines; the last: "hi ACK")`},
	} {
		checks := []topo.Check{tc.c}
		got := evalCheck("t", res, checks, tc.c)
		if tc.det == "" {
			assert.True(t, got.Pass, "%s: %s", tc.name, got.Detail)
		} else {
			assert.False(t, got.Pass, tc.name)
			assert.Equal(t, tc.det, got.Detail, tc.name)
		}
	}
}

func TestSameFileFindsADownloadWhereverItIsStored(t *testing.T) {
	StateRoot = t.TempDir()
	put := func(host, rel, body string) {
		p := filepath.Join(HomeDir("t", host), rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	put("server", "repository/data.bin", "the bytes")
	put("c1", "received/deep/data.bin", "the bytes")
	put("c2", "data.bin", "the byteZ")
	res := &Result{}
	c := topo.Check{SameFile: []string{"server:repository/data.bin", "c1:**/data.bin"}}
	assert.True(t, evalCheck("t", res, nil, c).Pass)
	c.SameFile[1] = "c1:received/*/data.bin"
	assert.True(t, evalCheck("t", res, nil, c).Pass)
	c.SameFile[1] = "c2:**/data.bin"
	got := evalCheck("t", res, nil, c)
	assert.False(t, got.Pass)
	assert.Contains(t, got.Detail, "no file matching c2:**/data.bin has the same bytes as server:repository/data.bin: 9 bytes, sha256 ")
	assert.Contains(t, got.Detail, "found c2:data.bin: 9 bytes")
	c.SameFile[1] = "c3:**/data.bin"
	assert.Contains(t, evalCheck("t", res, nil, c).Detail, "no file matching c3:**/data.bin was stored")
}
