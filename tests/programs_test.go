package tests

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// twoHosts is a lab prelude: a and b on switch s1.
const twoHosts = `
switches: [s1]
links:
  - endpoints: [a, s1]
  - endpoints: [b, s1]
`

func TestProgramsExchangeDataAcrossHosts(t *testing.T) {
	// A TCP server on a (labctl's own, via the lab binary) and a client on
	// b that talks to it through ${a}: readiness is the listening socket,
	// seen through /proc, not a sleep.
	f := writeLab(t, "x.yaml", twoHosts+`
hosts:
  a:
    programs:
      - name: srv
        command: labctl app xy-server --port 12000
        ready: {tcp: 12000, timeout: 10s}
  b:
    programs:
      - name: x
        command: labctl app xy-client --server ${a}:12000 --name Alice
        after: [a/srv]
      - name: y
        command: labctl app xy-client --server ${a}:12000
        after: [a/srv]
        start_delay: 300ms
        stdin: [{line: Bob, delay: 500ms}]
checks:
  - output: a/srv
    contains: ["Server is started", "Sent acknowledgment to both X and Y"]
    in_order: true
  - output: b/x
    matches: ['^X: Alice received before Y: Bob$']
  - exit: a/srv
`)
	r := labctl(t, "run", "--name", labName("prog"), "-f", f)
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "3 passed, 0 failed")
	assert.Contains(t, r.stdout, "a/srv")
}

func TestCaptureLosesNothingFromAChattyProgram(t *testing.T) {
	// 20000 numbered lines of 50 bytes (1 MB) plus one line of 200 KB with
	// no break, on stdout and stderr at once.
	script := `i=0; while [ $i -lt 20000 ]; do printf '%06d ' $i; printf '%043d\n' 0; i=$((i+1)); done; ` +
		`head -c 200000 /dev/zero | tr '\0' x; echo; echo done >&2`
	f := writeLab(t, "chatty.yaml", twoHosts+fmt.Sprintf(`
hosts:
  a:
    programs:
      - name: chatty
        command: ["sh", "-c", %q]
        time_limit: 60s
  b: {}
checks:
  - output: a/chatty
    contains: ["000000 0", "019999 0"]
  - output: a/chatty
    stream: stderr
    contains: done
`, script))
	lab, r := up(t, "chat", "-f", f)
	require.Contains(t, r.stdout, "2 passed, 0 failed", "%s", r)
	b, err := os.ReadFile(filepath.Join("/run/labctl", lab, "logs", "a", "chatty.log"))
	require.NoError(t, err)
	var nums, xs int
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.SplitN(l, " ", 3)
		if len(f) < 3 || f[1] != "out" {
			continue
		}
		if strings.HasPrefix(f[2], "x") {
			xs += len(f[2])
			continue
		}
		var n int
		if _, err := fmt.Sscanf(f[2], "%06d", &n); err == nil {
			require.Equal(t, nums, n, "line %d missing or out of order", nums)
			nums++
		}
	}
	assert.Equal(t, 20000, nums)
	assert.Equal(t, 200000, xs, "a long line is split, not cut")
}

func TestReadinessGatesStartWithoutSleeps(t *testing.T) {
	// The server takes a while before it listens; the client starts only
	// once the socket listens, so its connection works the first time.
	f := writeLab(t, "ready.yaml", twoHosts+`
hosts:
  a:
    programs:
      - name: late
        command: ["sh", "-c", "sleep 1; exec labctl app stopwait-server --port 9000"]
        service: true
        ready: {tcp: 9000, timeout: 10s}
  b:
    programs:
      - name: client
        command: labctl app stopwait-client --server ${a}:9000 hello world TCHAU
        after: [a/late]
      - name: never
        command: ["true"]
        after: [b/waits]
      - name: waits
        command: ["sleep", "5"]
        ready: {line: "never printed", timeout: 500ms}
checks:
  - exit: b/client
  - output: b/client
    contains: ['delivered 0 "hello"', 'delivered 1 "world"']
  - before:
      - {output: a/late, matches: "Server is started"}
      - {output: b/client, matches: "delivered"}
`)
	lab, r := up(t, "ready", "-f", f)
	assert.Contains(t, r.stdout, "3 passed, 0 failed", "%s", r)
	assert.Contains(t, r.stdout, "b/never", "%s", r)
	assert.Regexp(t, `b/never\s+b/waits did not become ready`, r.stdout)
	_ = lab
}

func TestKilledProgramIsReportedAndRestartPolicyApplies(t *testing.T) {
	f := writeLab(t, "kill.yaml", twoHosts+`
hosts:
  a:
    programs:
      - name: victim
        command: ["sleep", "30"]
      - name: phoenix
        command: ["sh", "-c", "echo up; exec sleep 30"]
        service: true
        restart: always
  b: {}
timeline:
  - {at: 300ms, kill: a/victim}
  - {at: 300ms, kill: a/phoenix, signal: TERM}
checks:
  - exit: a/victim
`)
	lab, r := upExpect(t, 1, "kill", "-f", f)
	assert.Contains(t, r.stdout, "0 passed, 1 failed", "%s", r)
	assert.Contains(t, r.stdout, "killed by signal KILL")
	// The service comes back by its restart policy.
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(filepath.Join("/run/labctl", lab, "logs", "a", "phoenix.log"))
		return bytes.Count(b, []byte(" out up")) >= 2
	}, 10*time.Second, 20*time.Millisecond)
}

func TestProgramsRunUnprivileged(t *testing.T) {
	f := writeLab(t, "priv.yaml", twoHosts+`
hosts:
  a:
    programs:
      - name: who
        command: ["id", "-u"]
      - name: meddle
        command: ["sh", "-c", "cat /proc/self/status | grep CapEff; ip link set eth0 down && echo CHANGED || echo refused"]
      - name: boss
        command: ["id", "-u"]
        root: true
  b: {}
checks:
  - output: a/who
    contains: "65534"
  - output: a/meddle
    contains: ["CapEff:\t0000000000000000", "refused"]
    absent: CHANGED
  - output: a/boss
    matches: "^0$"
`)
	_, r := up(t, "priv", "-f", f)
	assert.Contains(t, r.stdout, "3 passed, 0 failed", "%s", r)
}

func TestGradingSwapsOneProgramAndNamesTheFailedCheck(t *testing.T) {
	f := writeLab(t, "grade.yaml", twoHosts+`
hosts:
  a:
    programs:
      - name: student
        command: ["echo", "X: Alice received before Y: Bob"]
  b: {}
checks:
  - name: prints the acknowledgment
    output: a/student
    matches: '^X: Alice received before Y: Bob$'
`)
	r := labctl(t, "run", "--name", labName("grade"), "-f", f)
	require.Equal(t, 0, r.code, "%s", r)
	r = labctl(t, "run", "--name", labName("grade"), "-f", f, "--program", "a=echo wrong answer")
	assert.Equal(t, 1, r.code, "%s", r)
	assert.Contains(t, r.stdout, "FAIL  prints the acknowledgment")
	assert.Contains(t, r.stdout, `no line matches /^X: Alice received before Y: Bob$/ (1 lines; the last: "wrong answer")`)
}

func TestDownLeavesNoProcessAfterLabctlWasKilled(t *testing.T) {
	f := writeLab(t, "sv.yaml", twoHosts+`
hosts:
  a:
    programs:
      - {name: s1, command: ["sleep", "300"], service: true}
      - {name: s2, command: ["sh", "-c", "sleep 300 & sleep 300"], service: true}
  b: {}
`)
	lab := labName("orphan")
	cmd := exec.Command(bin, "up", "--name", lab, "-f", f)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	require.NoError(t, cmd.Wait(), out.String())
	st := inspect(t, lab)
	var sup int
	for _, d := range st.Daemons {
		if d.Role == "supervisor" {
			sup = d.PID
		}
	}
	require.NotZero(t, sup)
	// labctl's daemon dies without a chance to clean up.
	require.NoError(t, syscall.Kill(sup, syscall.SIGKILL))
	r := labctl(t, "down", lab)
	require.Equal(t, 0, r.code, "%s", r)
	requireNoLeftovers(t, lab)
	// No sleep of the lab survives, whoever its parent is now.
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		env, err := os.ReadFile(filepath.Join("/proc", p.Name(), "environ"))
		if err == nil && bytes.Contains(env, []byte("LABCTL_LAB="+lab+"\x00")) {
			t.Fatalf("process %s of lab %s survived down", p.Name(), lab)
		}
	}
}

func TestSeededFilesAndSameFileCheck(t *testing.T) {
	f := writeLab(t, "files.yaml", twoHosts+`
seed: 42
hosts:
  a:
    files:
      - {path: repo/big.bin, size: 10MB}
      - {path: repo/note.txt, content: "hello\n"}
    programs:
      - name: copy
        command: ["cp", "repo/big.bin", "copy.bin"]
  b:
    files:
      - {path: big.bin, size: 10MB}
checks:
  - exit: a/copy
  - same_file: ["a:repo/big.bin", "a:copy.bin"]
  - same_file: ["a:repo/big.bin", "b:big.bin"]
`)
	lab, r := upExpect(t, 1, "files", "-f", f)
	assert.Contains(t, r.stdout, "2 passed, 1 failed", "same seed, different path: different bytes: %s", r)
	b, err := os.ReadFile(filepath.Join("/run/labctl", lab, "hosts", "a", "repo", "big.bin"))
	require.NoError(t, err)
	require.Len(t, b, 10_000_000)
	sum := sha256.Sum256(b)
	// The same lab seed gives the same bytes on every run.
	lab2, _ := upExpect(t, 1, "files", "-f", f)
	b2, err := os.ReadFile(filepath.Join("/run/labctl", lab2, "hosts", "a", "repo", "big.bin"))
	require.NoError(t, err)
	assert.Equal(t, sum, sha256.Sum256(b2))
}

func TestScriptedFaultFromLabFileReachesTheProtocol(t *testing.T) {
	// Drop exactly the first datagram the client sends to port 9000: the
	// stop-and-wait client must need two tries for message 0 and one for
	// message 1, every time.
	f := writeLab(t, "fault.yaml", `
hosts:
  a:
    programs:
      - name: srv
        command: labctl app stopwait-server --udp --port 9000
        service: true
        ready: {udp: 9000}
  b:
    programs:
      - name: cli
        command: labctl app stopwait-client --udp --timeout 300ms --server ${a}:9000 first second TCHAU
        after: [a/srv]
switches: [s1]
links:
  - endpoints: [a, s1]
  - endpoints: [b, s1]
    faults:
      - {nth: 1, match: {proto: udp, port: 9000, from: b}, action: drop}
checks:
  - output: b/cli
    contains: ['delivered 0 "first" (2 tries)', 'delivered 1 "second" (1 try)']
    in_order: true
`)
	r := labctl(t, "run", "--name", labName("fault"), "-f", f)
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "impairments: userspace")
}

func TestTimelineImpairsTheLinkDuringTheRun(t *testing.T) {
	// Message "one" goes out on a clean link; from 1 s to 2.5 s the
	// client's link loses everything, so "two" (typed at 1.5 s) needs
	// retries until the link is reset.
	f := writeLab(t, "tl.yaml", `
hosts:
  a:
    programs:
      - name: srv
        command: labctl app stopwait-server --udp --port 9000
        service: true
        ready: {udp: 9000}
  b:
    programs:
      - name: cli
        command: labctl app stopwait-client --udp --timeout 200ms --tries 30 --server ${a}:9000
        after: [a/srv]
        stdin: [one, {line: two, delay: 1500ms}, TCHAU]
switches: [s1]
links:
  - endpoints: [a, s1]
  - endpoints: [b, s1]
timeline:
  - {at: 1s, netem: {link: b-s1, set: {loss: 100%}}}
  - {at: 2500ms, netem: {link: b-s1, reset: true}}
checks:
  - output: b/cli
    matches: ['^delivered 0 "one" \(1 try\)$', '^delivered 1 "two" \(([3-9]|[12][0-9]) tries\)$']
`)
	lab, r := up(t, "tl", "-f", f)
	assert.Contains(t, r.stdout, "timeline at 1s: netem b-s1: loss 100%")
	assert.Contains(t, r.stdout, "timeline at 2.5s: netem b-s1: clean")
	// The lab stays up after the run; its logs are there to read.
	logs := labctl(t, "logs", lab, "b")
	require.Equal(t, 0, logs.code, "%s", logs)
	assert.Contains(t, logs.stdout, `b/cli`)
	assert.Contains(t, logs.stdout, `delivered 0 "one"`)
	assert.NotContains(t, logs.stdout, "a/srv", "filtered to host b")
	show := labctl(t, "netem", "show", lab)
	assert.Contains(t, show.stdout, "b-s1")
}

func TestExitCheckWaitsForTheServiceItNames(t *testing.T) {
	// A service that ends by itself a little later: its exit check must see
	// it ended, not "still running".
	f := writeLab(t, "svc.yaml", twoHosts+`
hosts:
  a:
    programs:
      - {name: brief, command: ["sh", "-c", "sleep 0.5; exit 4"], service: true}
      - {name: forever, command: ["sleep", "300"], service: true}
  b: {}
checks:
  - exit: a/brief
    status: 4
`)
	_, r := up(t, "svc", "-f", f)
	assert.Contains(t, r.stdout, "1 passed, 0 failed", "%s", r)
}
