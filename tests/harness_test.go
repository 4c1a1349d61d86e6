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
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
	if inPrivate() {
		// Re-run by runPrivate: a machine of our own is set up, the binary
		// is the parent's.
		if err := enterPrivate(); err != nil {
			fmt.Println("setting up the private machine:", err)
			os.Exit(1)
		}
		bin = os.Getenv(privateEnv)
		os.Exit(m.Run())
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
	// Lab "x-a" has namespaces lab-x-a-NODE too: they are not x's.
	var longer []string
	if labs, err := os.ReadDir("/run/labctl"); err == nil {
		for _, l := range labs {
			if strings.HasPrefix(l.Name(), lab+"-") {
				longer = append(longer, "lab-"+l.Name()+"-")
			}
		}
	}
	ents, _ := os.ReadDir("/run/netns")
next:
	for _, e := range ents {
		for _, p := range longer {
			if strings.HasPrefix(e.Name(), p) {
				continue next
			}
		}
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

// privateEnv, set to the labctl binary's path, marks a test binary re-run
// by private inside namespaces of its own.
const privateEnv = "LABCTL_TEST_PRIVATE_BIN"

// privateDirs are where labctl keeps what it knows of labs on a machine;
// a private machine gets empty ones.
var privateDirs = []string{"/run/netns", "/run/labctl", "/var/lib/labctl"}

// inPrivate says whether this is runPrivate's re-run.
func inPrivate() bool { return os.Getenv(privateEnv) != "" }

// runPrivate runs the calling test again, alone, in a machine of its own,
// for tests of what acts on every lab (`labctl clean`): it must not see,
// let alone remove, labs that a user or another test has up. The test
// checks inPrivate to know which side it is on; this side reports the
// re-run's output and result.
//
// The re-run gets new mount, PID and network namespaces: mounts are made
// private and fresh tmpfs hide privateDirs (no one else's state, named
// namespaces or labctl copies), a fresh /proc shows only its own processes
// (clean kills orphaned labctl daemons it finds in /proc), and a new
// network namespace has none of the machine's interfaces (clean deletes
// tagged ones) and its own abstract sockets (the lab locks). The re-run is
// PID 1 of its PID namespace: when it ends, the kernel kills whatever it
// left, and its namespaces and mounts go with it.
func runPrivate(t *testing.T) {
	t.Helper()
	require.False(t, inPrivate())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), privateEnv+"="+bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET,
		Pdeathsig:  syscall.SIGKILL,
	}
	out, err := cmd.CombinedOutput()
	t.Logf("in a private machine:\n%s", out)
	require.NoError(t, err, "the private run failed")
	require.Contains(t, string(out), "--- PASS: "+t.Name(), "the private run ran the test")
}

// enterPrivate sets up the mounts of private's re-run; it runs first thing
// in TestMain, in the new namespaces.
func enterPrivate() error {
	if os.Getpid() != 1 {
		return errors.New("not in a PID namespace of its own: refusing to run")
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	for _, d := range privateDirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount("tmpfs", d, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0755"); err != nil {
			return fmt.Errorf("mount a tmpfs on %s: %w", d, err)
		}
	}
	return nil
}
