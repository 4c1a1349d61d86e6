package tests

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sleeperLab has a program (so a supervisor daemon and a process inside a
// host) and userspace links (so an engine daemon, on machines without
// sch_netem).
const sleeperLab = twoHosts + `
hosts:
  a:
    programs:
      - name: sleeper
        command: ["sleep", "300"]
        service: true
  b: {}
`

// upSleeper brings the sleeper lab up detached under a fresh name, and
// takes it down when the test ends.
func upSleeper(t *testing.T, prefix string) string {
	t.Helper()
	lab, _ := up(t, prefix, "-f", writeLab(t, "sleeper.yaml", sleeperLab), "-d")
	return lab
}

func statePath(lab string) string { return filepath.Join("/run/labctl", lab, "state.json") }

// TestDownTakesDownALabWhoseStateIsTornEmptyOrMissing: down goes by the
// ownership tags of the lab's namespaces and daemons when its state file
// cannot tell, and says what it could not read.
func TestDownTakesDownALabWhoseStateIsTornEmptyOrMissing(t *testing.T) {
	for _, c := range []struct {
		name    string
		spoil   func(t *testing.T, path string)
		unreads bool
	}{
		{"torn", func(t *testing.T, p string) {
			// Two writes spliced together, as concurrent writers of one
			// temporary file used to leave it.
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, append(b, b[len(b)/2:]...), 0o644))
		}, true},
		{"empty", func(t *testing.T, p string) { require.NoError(t, os.Truncate(p, 0)) }, true},
		{"missing", func(t *testing.T, p string) { require.NoError(t, os.Remove(p)) }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			lab := upSleeper(t, "spoil")
			s := inspect(t, lab)
			require.NotEmpty(t, s.Daemons, "the lab has daemons to find")
			c.spoil(t, statePath(lab))
			r := labctl(t, "down", lab)
			require.Equal(t, 0, r.code, "%s", r)
			assert.Contains(t, r.stdout, "lab "+lab+" down", "%s", r)
			if c.unreads {
				assert.Contains(t, r.stderr, "cannot read the lab's state", "%s", r)
			}
			requireNoLeftovers(t, lab)
			for _, d := range s.Daemons {
				assert.False(t, procAlive(d.PID), "%s daemon %d survived", d.Role, d.PID)
			}
		})
	}
}

// TestNetemSetRacingDownLeavesNothing: 100 `netem set`s race one `down`;
// each set either lands while the lab is up or is told "no such lab", and
// none brings the lab's state back after down removed it.
func TestNetemSetRacingDownLeavesNothing(t *testing.T) {
	lab := upSleeper(t, "race")
	r := labctl(t, "netem", "set", lab, "a-s1", "--delay", "1ms")
	require.Equal(t, 0, r.code, "the link exists: %s", r)

	const sets, parallel = 100, 20
	results := make([]result, sets)
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	started := make(chan struct{})
	var once sync.Once
	for i := 0; i < sets; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if i == parallel {
				once.Do(func() { close(started) })
			}
			results[i] = labctl(t, "netem", "set", lab, "a-s1", "--delay", strconv.Itoa(i+1)+"ms", "--loss", "1%")
		}(i)
	}
	<-started // the first sets are in flight
	down := labctl(t, "down", lab)
	wg.Wait()
	require.Equal(t, 0, down.code, "%s", down)
	ok, gone := 0, 0
	for i, r := range results {
		if r.code == 0 {
			ok++
			continue
		}
		gone++
		assert.Contains(t, r.stderr, "no such lab", "set %d: %s", i, r)
		assert.NotContains(t, r.stderr, "invalid character", "set %d: %s", i, r)
	}
	t.Logf("%d sets landed before down, %d were told the lab is gone", ok, gone)
	requireNoLeftovers(t, lab)
	r = labctl(t, "down", lab)
	assert.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "no such lab", "%s", r)
}

// TestSIGKILLAtARandomPointLeavesNothingDownCannotRemove kills `netem set`,
// `down` and `up` (with their process groups; the daemons they start have
// sessions of their own and live on) at a random point, 20 times each;
// one more `down` must then remove everything.
func TestSIGKILLAtARandomPointLeavesNothingDownCannotRemove(t *testing.T) {
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	file := writeLab(t, "sleeper.yaml", sleeperLab)
	const trials = 20
	// How long each verb takes uninterrupted, to spread the kills over it.
	timed := func(args ...string) time.Duration {
		t0 := time.Now()
		r := labctl(t, args...)
		require.Equal(t, 0, r.code, "%s", r)
		return time.Since(t0)
	}
	probe := labName("kprobe")
	t.Cleanup(func() { labctl(t, "down", probe) })
	upTook := timed("up", "--name", probe, "-f", file, "-d")
	setTook := timed("netem", "set", probe, "a-s1", "--delay", "5ms")
	downTook := timed("down", probe)
	t.Logf("uninterrupted: up %v, netem set %v, down %v", upTook, setTook, downTook)

	for _, c := range []struct {
		verb  string
		took  time.Duration
		upped bool // the lab is up before the verb runs
		args  func(lab string) []string
	}{
		{"netem set", setTook, true, func(lab string) []string {
			return []string{"netem", "set", lab, "a-s1", "--delay", "20ms", "--loss", "5%"}
		}},
		{"down", downTook, true, func(lab string) []string { return []string{"down", lab} }},
		{"up", upTook, false, func(lab string) []string { return []string{"up", "--name", lab, "-f", file, "-d"} }},
	} {
		t.Run(c.verb, func(t *testing.T) {
			for i := 0; i < trials; i++ {
				lab := labName("kill")
				t.Cleanup(func() { labctl(t, "down", lab) })
				if c.upped {
					r := labctl(t, "up", "--name", lab, "-f", file, "-d")
					require.Equal(t, 0, r.code, "%s", r)
				}
				at := time.Duration(rng.Int63n(int64(c.took*5/4) + 1))
				killAfter(t, at, c.args(lab)...)
				r := labctl(t, "down", lab)
				require.Equal(t, 0, r.code, "trial %d, killed after %v: %s", i, at, r)
				requireNoLeftovers(t, lab)
			}
		})
	}
}

// killAfter runs labctl and SIGKILLs it and its process group after d (or
// lets it finish first).
func killAfter(t *testing.T, d time.Duration, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("labctl %v outlived SIGKILL", args)
		}
	}
}

// procAlive says whether a process exists and is not a zombie (killed,
// not yet reaped by its new parent).
func procAlive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// TestDownByTagsSparesALabWhoseNameSharesThePrefix: with its state file
// lost, lab L is taken down by its tags; lab L-a, whose namespaces also
// start lab-L-, is left up and working.
func TestDownByTagsSparesALabWhoseNameSharesThePrefix(t *testing.T) {
	lab := upSleeper(t, "pfx")
	neighbour := lab + "-a"
	t.Cleanup(func() {
		labctl(t, "down", neighbour)
		requireNoLeftovers(t, neighbour)
	})
	r := labctl(t, "up", "--name", neighbour, "-f", writeLab(t, "sleeper.yaml", sleeperLab), "-d")
	require.Equal(t, 0, r.code, "%s", r)
	require.NoError(t, os.Remove(statePath(lab)))
	r = labctl(t, "down", lab)
	require.Equal(t, 0, r.code, "%s", r)
	requireNoLeftovers(t, lab)
	r = labctl(t, "ping", neighbour, "a", "b", "-c", "1")
	assert.Equal(t, 0, r.code, "the neighbour lab still works: %s", r)
	assert.Len(t, inspect(t, neighbour).Daemons, 2)
	for _, d := range inspect(t, neighbour).Daemons {
		assert.True(t, procAlive(d.PID), "the neighbour's %s daemon", d.Role)
	}
}
