// Package tests holds labctl's integration tests: they build real labs in
// network namespaces with the labctl binary and assert what happens across
// them. They need root; as another user they are skipped.
package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// bin is the labctl binary under test, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("integration tests need root (network namespaces): skipped")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "labctl-it-")
	if err != nil {
		panic(err)
	}
	// Programs run unprivileged; they must be able to execute the binary.
	_ = os.Chmod(dir, 0o755)
	bin = filepath.Join(dir, "labctl")
	build := exec.Command("go", "build", "-o", bin, "../cmd/labctl")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Println("building labctl:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one labctl run printed and how it ended.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// labctl runs the binary with a deadline and returns its output.
func labctl(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("labctl %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// labName returns a lab name no other test or user has.
func labName(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// up brings a lab up under a fresh name and takes it down (checking that
// nothing is left) when the test ends.
func up(t *testing.T, prefix string, args ...string) (string, result) {
	t.Helper()
	return upExpect(t, 0, prefix, args...)
}

// upExpect is up for a lab whose `up` ends with the given exit status (1:
// some check failed, by design of the test).
func upExpect(t *testing.T, code int, prefix string, args ...string) (string, result) {
	t.Helper()
	name := labName(prefix)
	t.Cleanup(func() {
		labctl(t, "down", name)
		requireNoLeftovers(t, name)
	})
	r := labctl(t, append([]string{"up", "--name", name}, args...)...)
	require.Equal(t, code, r.code, "labctl up: %s", r)
	return name, r
}

// state is the part of `labctl inspect --json` the tests read.
type state struct {
	Lab   string `json:"lab"`
	Nodes []struct {
		Name   string `json:"name"`
		Kind   string `json:"kind"`
		NS     string `json:"netns"`
		Ifaces []struct {
			Name  string   `json:"name"`
			Addrs []string `json:"addrs"`
		} `json:"interfaces"`
	} `json:"nodes"`
	Daemons []struct {
		Role string `json:"role"`
		PID  int    `json:"pid"`
	} `json:"daemons"`
}

func inspect(t *testing.T, lab string) state {
	t.Helper()
	r := labctl(t, "inspect", lab, "--json")
	require.Equal(t, 0, r.code, "%s", r)
	var s state
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &s))
	return s
}

func (s state) addr(node string) string {
	for _, n := range s.Nodes {
		if n.Name == node {
			a := n.Ifaces[0].Addrs[0]
			return a[:strings.IndexByte(a, '/')]
		}
	}
	return ""
}

// requireNoLeftovers checks that nothing of the lab remains: namespaces,
// state, processes in its namespaces, labctl daemons.
func requireNoLeftovers(t *testing.T, lab string) {
	t.Helper()
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		require.False(t, strings.HasPrefix(e.Name(), "lab-"+lab+"-"), "netns %s left behind", e.Name())
	}
	_, err := os.Stat(filepath.Join("/run/labctl", lab))
	require.True(t, os.IsNotExist(err), "state folder of %s left behind", lab)
	_, err = os.Stat(filepath.Join("/var/lib/labctl", lab))
	require.True(t, os.IsNotExist(err), "labctl copy of %s left behind", lab)
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		env, err := os.ReadFile(filepath.Join("/proc", p.Name(), "environ"))
		if err == nil && bytes.Contains(env, []byte("LABCTL_TAG=labctl:"+lab+":")) {
			t.Fatalf("labctl daemon %s of lab %s left behind", p.Name(), lab)
		}
	}
}

// writeLab writes a lab file into the test's temporary folder.
func writeLab(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}
