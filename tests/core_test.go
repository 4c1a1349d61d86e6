package tests

import (
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLinearReachableAndVisibleToIP(t *testing.T) {
	lab, r := up(t, "lin", "--topo", "linear,4")
	assert.Contains(t, r.stdout, "*** Results: 0% dropped (12/12 received)")
	s := inspect(t, lab)
	require.Len(t, s.Nodes, 8)
	assert.Equal(t, "lab-"+lab+"-h1", s.Nodes[0].NS)
	assert.Equal(t, "10.0.0.4", s.addr("h4"), "Mininet numbering")
	// The namespace is a real named netns: iproute2 sees it.
	out, err := exec.Command("ip", "netns", "exec", "lab-"+lab+"-h4", "ip", "-br", "addr", "show", "eth0").CombinedOutput()
	if err == nil { // iproute2 is optional at run time
		assert.Contains(t, string(out), "10.0.0.4/8")
	}
	ping := labctl(t, "ping", "--lab", lab, "-c", "2", "h1", "h4")
	assert.Equal(t, 0, ping.code, "%s", ping)
	assert.Contains(t, ping.stdout, "2 sent, 2 received, 0% loss")
}

func TestRoutersJoinSubnetsAndDisconnectedHostsStayApart(t *testing.T) {
	f := writeLab(t, "routed.yaml", `
hosts: {a: , b: , lonely: , other: }
routers: {r1: , r2: }
switches: [s1, s2, s3]
links:
  - endpoints: [a, s1]
  - endpoints: [r1, s1]
  - endpoints: [r1, r2]
  - endpoints: [r2, s2]
  - endpoints: [b, s2]
  - endpoints: [lonely, s3]
  - endpoints: [other, s3]
`)
	lab, _ := up(t, "rt", "-f", f)
	r := labctl(t, "ping", "--lab", lab, "-c", "1", "a", "b")
	assert.Equal(t, 0, r.code, "a reaches b through two routers: %s", r)
	r = labctl(t, "ping", "--lab", lab, "-c", "1", "-W", "300ms", "a", "lonely")
	assert.NotEqual(t, 0, r.code, "no router joins s3: %s", r)
	r = labctl(t, "ping", "--lab", lab, "-c", "1", "lonely", "other")
	assert.Equal(t, 0, r.code, "%s", r)
}

func TestTwoLabsSideBySideAreIsolated(t *testing.T) {
	// Same topology, same addresses: each lab only sees its own hosts.
	a, _ := up(t, "iso", "--topo", "single,2")
	b, _ := up(t, "iso", "--topo", "single,2")
	ra := labctl(t, "exec", "--lab", a, "h1", "--", "cat", "/sys/class/net/eth0/ifindex")
	require.Equal(t, 0, ra.code, "%s", ra)
	// Take a down; b still works and is untouched.
	require.Equal(t, 0, labctl(t, "down", a).code)
	requireNoLeftovers(t, a)
	r := labctl(t, "pingall", "--lab", b)
	assert.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "0% dropped")
}

func TestDownKillsProcessesStartedInHosts(t *testing.T) {
	lab, _ := up(t, "proc", "--topo", "single,2")
	// A process started inside a host, outliving the labctl that started it.
	cmd := exec.Command(bin, "exec", "--lab", lab, "h1", "--", "sleep", "300")
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Wait until the process is inside the namespace (exec replaced labctl).
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return strings.HasPrefix(string(b), "sleep")
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, 0, labctl(t, "down", lab).code)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("sleep inside the lab survived down")
	}
	requireNoLeftovers(t, lab)
}

func TestSIGKILLedUpLeavesNothingDownCannotRemove(t *testing.T) {
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; i < 6; i++ {
		lab := labName("kill")
		cmd := exec.Command(bin, "up", "--name", lab, "--topo", "single,40")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		require.NoError(t, cmd.Start())
		// A random point of the deployment: from before the state file is
		// written to after the lab is up.
		time.Sleep(time.Duration(rng.Intn(120)) * time.Millisecond)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		r := labctl(t, "down", lab)
		require.Equal(t, 0, r.code, "%s", r)
		requireNoLeftovers(t, lab)
	}
}

func TestBadInputGetsOneLineErrors(t *testing.T) {
	bad := writeLab(t, "bad.yaml", "hosts:\n  a:\n  b:\nlinks:\n  - endpoints: [a, c]\n")
	r := labctl(t, "up", "-f", bad)
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "labctl: "+bad+":5: links[0].endpoints: no node \"c\"\n", r.stderr)

	// down is idempotent: a lab that is not up is not an error, but said.
	r = labctl(t, "down", "no-such-lab-here")
	assert.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "lab no-such-lab-here: no such lab")
	// Every other verb on a lab that is not up fails, saying so.
	for _, args := range [][]string{{"inspect", "no-such-lab-here"}, {"netem", "set", "no-such-lab-here", "h1-s1", "--delay", "1ms"},
		{"ping", "no-such-lab-here", "h1", "h2"}, {"exec", "--lab", "no-such-lab-here", "h1", "--", "true"}} {
		r = labctl(t, args...)
		assert.Equal(t, 1, r.code, "%v: %s", args, r)
		assert.Contains(t, r.stderr, `lab "no-such-lab-here": no such lab`, "%v", args)
	}
	r = labctl(t, "down", "../../etc")
	assert.NotEqual(t, 0, r.code)
	assert.Contains(t, r.stderr, "not a lab name")

	lab, _ := up(t, "dup", "--topo", "minimal")
	r = labctl(t, "up", "--name", lab, "--topo", "minimal")
	assert.NotEqual(t, 0, r.code)
	assert.Contains(t, r.stderr, "is already up")
	assert.Equal(t, 0, labctl(t, "pingall", "--lab", lab).code, "the failed second up must not hurt the first")

	r = labctl(t, "up", "--topo", "ring,3")
	assert.Contains(t, r.stderr, "want minimal, single,N, linear,N or tree,DEPTH,FANOUT")
}

func TestNotRootIsToldWhy(t *testing.T) {
	cmd := exec.Command(bin, "up", "--topo", "minimal")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "this needs root")
}

// TestCleanRemovesOnlyWhatIsLabctls runs in a private machine (see
// runPrivate): `clean` removes every lab it can see, and it must not see
// the labs of the machine it runs on. A lab of the machine's, up before,
// still works after.
func TestCleanRemovesOnlyWhatIsLabctls(t *testing.T) {
	if !inPrivate() {
		outside, _ := up(t, "outside", "--topo", "minimal")
		runPrivate(t)
		r := labctl(t, "pingall", outside)
		require.Equal(t, 0, r.code, "the machine's lab survives the private clean: %s", r)
		return
	}
	requireAlone(t)
	// A namespace that is not labctl's, with labctl's prefix: clean leaves it.
	foreign := "lab-" + labName("foreign") + "-x"
	require.NoError(t, exec.Command("ip", "netns", "add", foreign).Run())
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", foreign).Run() })
	lab := labName("clean")
	r := labctl(t, "up", "--name", lab, "--topo", "single,2")
	require.Equal(t, 0, r.code, "%s", r)
	r = labctl(t, "clean")
	require.Equal(t, 0, r.code, "%s", r)
	t.Logf("clean:\n%s", r.stdout)
	assert.Contains(t, r.stdout, "removed lab "+lab)
	requireNoLeftovers(t, lab)
	_, err := os.Stat("/run/netns/" + foreign)
	assert.NoError(t, err, "clean removed a namespace that was not labctl's")
}

// requireAlone checks, before clean runs, that it can see no lab, named
// namespace, labctl copy or process that is not of this test.
func requireAlone(t *testing.T) {
	t.Helper()
	for _, d := range privateDirs {
		ents, err := os.ReadDir(d)
		require.NoError(t, err)
		require.Empty(t, ents, "%s is not private", d)
	}
	require.Equal(t, 1, os.Getpid(), "not in a PID namespace of its own")
	ifaces, err := net.Interfaces()
	require.NoError(t, err)
	require.Len(t, ifaces, 1, "a new network namespace has only lo: %v", ifaces)
}
