package nodes

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/labctl/labctl/topo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeLog writes a program's log as the supervisor does: "TIME STREAM TEXT".
func writeLog(t *testing.T, lab, host, prog string, lines ...string) {
	t.Helper()
	p := ProgramLog(lab, host, prog)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("2026-01-01T00:00:00.000000001Z " + l + "\n")
	}
	require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o644))
}

func status(n int) *int { return &n }

func TestChecksAreHonestAboutTheirPrograms(t *testing.T) {
	StateRoot = t.TempDir()
	lab := "t"
	writeLog(t, lab, "a", "crash", "out starting", "err Traceback (most recent call last):", `err   File "c.py", line 2`, "err RuntimeError: boom")
	writeLog(t, lab, "a", "silent", "sys started")
	writeLog(t, lab, "a", "srv", "out Server is started", "log level=WARN msg=bad reply=\"ERROR bad\"", "err real ERROR")
	writeLog(t, lab, "a", "refused", "out Server full")
	res := &Result{Programs: []ProgramStatus{
		{Program: "a/crash", State: StateExited, Status: status(1), Detail: "exited with status 1"},
		{Program: "a/silent", State: StateExited, Status: status(0), Detail: "exited with status 0"},
		{Program: "a/never", State: StateSkipped, Detail: "a/srv did not become ready"},
		{Program: "a/srv", State: StateKilled, Signal: "KILL", Detail: "killed by signal KILL", LabSignal: true},
		{Program: "a/refused", State: StateExited, Status: status(1), Detail: "exited with status 1"},
	}}
	checks := []topo.Check{
		{Output: "a/crash", Absent: []string{"ERROR"}},
		{Output: "a/silent", Absent: []string{"ERROR"}},
		{Output: "a/never", Absent: []string{"ERROR"}},
		{Output: "a/srv", Stream: "both", Absent: []string{"WARN"}},
		{Output: "a/srv", Stream: "both", Contains: []string{"msg=bad"}},
		{Output: "a/srv", Stream: "both", Absent: []string{"ERROR"}},
		{Output: "a/refused", Contains: []string{"Server full"}},
		{Exit: "a/refused", Status: status(1)},
	}
	var got []CheckResult
	for _, c := range checks {
		got = append(got, evalCheck(lab, res, checks, c))
	}
	assert.False(t, got[0].Pass)
	assert.Equal(t, `a/crash crashed (exited with status 1); the last of its stderr: "Traceback (most recent call last):" / "  File \"c.py\", line 2" / "RuntimeError: boom"`, got[0].Detail)
	assert.Equal(t, "a/silent printed nothing (exited with status 0)", got[1].Detail)
	assert.Equal(t, "a/never never started (a/srv did not become ready)", got[2].Detail)
	assert.True(t, got[3].Pass, "absent never reads labctl's log records: %s", got[3].Detail)
	assert.True(t, got[4].Pass, "contains does: %s", got[4].Detail)
	assert.False(t, got[5].Pass, "the program's own stderr counts")
	assert.Equal(t, `line 2 contains "ERROR": "real ERROR"`, got[5].Detail)
	assert.True(t, got[6].Pass, "the status its exit check expects is no crash: %s", got[6].Detail)
}

func TestLooseCountPointsAllAndManual(t *testing.T) {
	StateRoot = t.TempDir()
	writeLog(t, "t", "a", "p", "out From Server:  x: ALICE received before Y: Bob!", "out ping", "out ping")
	res := &Result{Programs: []ProgramStatus{{Program: "a/p", State: StateExited, Status: status(0), Detail: "exited with status 0"}}}
	two, one := 2, 1
	for _, tc := range []struct {
		c    topo.Check
		pass bool
		det  string
	}{
		{topo.Check{Output: "a/p", Loose: true, Matches: []string{`^(.* )?X: Alice received before Y: Bob$`}, Points: 3}, true, ""},
		{topo.Check{Output: "a/p", Loose: true, Contains: []string{"x alice"}}, true, ""},
		{topo.Check{Output: "a/p", Matches: []string{`^X: Alice`}}, false, "no line matches /^X: Alice/ (3 lines; the last: \"ping\")"},
		{topo.Check{Output: "a/p", Contains: []string{"ping"}, Count: &two}, true, ""},
		{topo.Check{Output: "a/p", Contains: []string{"ping"}, Count: &one}, false, `2 lines contain "ping", want exactly 1 (3 lines in all)`},
		{topo.Check{All: []topo.Check{{Output: "a/p", Contains: []string{"ping"}}, {Exit: "a/p", Status: &one}}}, false, "a/p exits with status 1: exited with status 0"},
	} {
		cr := evalCheck("t", res, nil, tc.c)
		assert.Equal(t, tc.pass, cr.Pass, "%+v: %s", tc.c, cr.Detail)
		if tc.det != "" {
			assert.Equal(t, tc.det, cr.Detail)
		}
		if tc.pass {
			assert.Equal(t, tc.c.Points, cr.Score)
		}
	}
	m := evalCheck("t", res, nil, topo.Check{Manual: "read it", Points: 10})
	assert.True(t, m.Manual)
	assert.Equal(t, 10, m.Points)
	assert.Zero(t, m.Score)
}

func TestProcAddresses(t *testing.T) {
	for h, want := range map[string]string{
		"0100007F":                         "127.0.0.1",
		"0101007F":                         "127.0.1.1",
		"0100000A":                         "10.0.0.1",
		"00000000":                         "0.0.0.0",
		"00000000000000000000000001000000": "::1",
	} {
		a, ok := parseProcAddr(h)
		require.True(t, ok, h)
		assert.Equal(t, want, a.String())
	}
	_, ok := parseProcAddr("zz")
	assert.False(t, ok)
	lo, any := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("0.0.0.0")
	assert.False(t, public([]netip.Addr{lo, netip.MustParseAddr("127.0.1.1")}))
	assert.True(t, public([]netip.Addr{lo, any}))
}

func TestCopyTreeCopiesAndRefusesHugeFolders(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(src, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "sub", "a.txt"), []byte("hi"), 0o444))
	require.NoError(t, os.Symlink("sub/a.txt", filepath.Join(src, "link")))
	require.NoError(t, copyTree(src, dst, os.Getuid(), os.Getgid()))
	b, err := os.ReadFile(filepath.Join(dst, "sub", "a.txt"))
	require.NoError(t, err)
	assert.Equal(t, "hi", string(b))
	fi, err := os.Stat(filepath.Join(dst, "sub", "a.txt"))
	require.NoError(t, err)
	assert.NotZero(t, fi.Mode()&0o200, "the copy is writable")
	l, err := os.Readlink(filepath.Join(dst, "link"))
	require.NoError(t, err)
	assert.Equal(t, "sub/a.txt", l)

	// What the programs' user could not read stays behind.
	require.NoError(t, os.WriteFile(filepath.Join(src, "secret"), []byte("x"), 0o600))
	dst2 := t.TempDir()
	require.NoError(t, copyTree(src, dst2, 65534, 65534))
	_, err = os.Stat(filepath.Join(dst2, "secret"))
	assert.True(t, os.IsNotExist(err), "an unreadable file is not copied")
	_, err = os.Stat(filepath.Join(dst2, "sub", "a.txt"))
	assert.NoError(t, err)

	big := t.TempDir()
	for i := 0; i <= copyMaxFiles; i++ {
		require.NoError(t, os.WriteFile(filepath.Join(big, "f"+strconv.Itoa(i)), nil, 0o644))
	}
	assert.ErrorIs(t, copyTree(big, t.TempDir(), os.Getuid(), os.Getgid()), errTooBig)
}

func TestFirstClosedFolder(t *testing.T) {
	root := t.TempDir()
	// The test's own folders, open on the way (t.TempDir's parent is 0700).
	require.NoError(t, os.Chmod(filepath.Dir(root), 0o755))
	require.NoError(t, os.Chmod(root, 0o755))
	closed := filepath.Join(root, "closed")
	require.NoError(t, os.MkdirAll(filepath.Join(closed, "tool", "bin"), 0o755))
	require.NoError(t, os.Chmod(closed, 0o700))
	a, kid, ok := firstClosed(filepath.Join(closed, "tool", "bin"), 65534, 65534)
	require.True(t, ok)
	assert.Equal(t, closed, a)
	assert.Equal(t, "tool", kid)
	_, _, ok = firstClosed(filepath.Join(closed, "tool", "bin"), os.Getuid(), os.Getgid())
	assert.False(t, ok, "its owner may enter")
}
