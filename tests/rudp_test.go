package tests

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/labctl/labctl/proto/rudp"
)

// The reliable UDP download (/get, docs/PROTOCOLS.md section 5) across
// namespaces: the chat server in h1, clients in h2 and h3 behind links that
// lose 30% each way, duplicate, reorder and corrupt (the programs send UDP
// without its checksum, so the userspace engine's corruption reaches the
// protocol's CRC-32C), and h4 on a clean link for garbage. The clients'
// IP reassembly gets more memory and a shorter timer: at 30% loss most of
// the seed's fragmented segments arrive incomplete, and with the kernel's
// defaults (4 MB, 30 s) their leftovers fill the reassembly memory within
// seconds, after which every fragment is dropped until they time out.
const rudpLabFile = `
seed: 11
hosts:
  h1: {}
  h2: {sysctls: {net/ipv4/ipfrag_high_thresh: "67108864", net/ipv4/ipfrag_time: "5"}}
  h3: {sysctls: {net/ipv4/ipfrag_high_thresh: "67108864", net/ipv4/ipfrag_time: "5"}}
  h4: {}
switches: [s1]
links:
  - endpoints: [h1, s1]
  - endpoints: [h2, s1]
    netem: {delay: 2ms, loss: 30%, duplicate: 5%, reorder: 10%, corrupt: 5%}
  - endpoints: [h3, s1]
    netem: {delay: 2ms, loss: 30%, duplicate: 5%, reorder: 10%, corrupt: 5%}
  - endpoints: [h4, s1]
`

func rudpLab(t *testing.T) string {
	t.Helper()
	lab, _ := up(t, "rudp", "-f", writeLab(t, "rudp.yaml", rudpLabFile), "--test", "none")
	require.Equal(t, "10.0.0.1", inspect(t, lab).addr("h1"), "the servers' address (startServer)")
	return lab
}

// warmARP connects from each host to the chat server until it works: at
// 30% loss each way an ARP exchange fails about half the time, and a
// client's connect fails outright when three in a row do.
func warmARP(t *testing.T, lab string, hosts ...string) {
	t.Helper()
	for _, h := range hosts {
		var err error
		for i := 0; i < 20; i++ {
			var c net.Conn
			if c, err = tryDialIn(lab, h, "10.0.0.1:5002"); err == nil {
				c.Close()
				break
			}
		}
		require.NoError(t, err, "no connection from %s to the server in 20 tries", h)
	}
}

// proc is a program the test runs in a lab host, its stdout collected.
type proc struct{ *server }

// runIn starts `labctl app ARGS` in host; it is killed at the end of the test.
func runIn(t *testing.T, lab, host string, args ...string) *proc {
	t.Helper()
	full := append([]string{"exec", "--lab", lab, host, "--", bin, "app"}, args...)
	s := &server{t: t, cmd: exec.Command(bin, full...), done: make(chan struct{}), seen: make(chan struct{})}
	out, err := s.cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr syncBuffer
	s.cmd.Stderr = &stderr
	require.NoError(t, s.cmd.Start())
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			close(s.seen)
			s.seen = make(chan struct{})
			s.mu.Unlock()
		}
		_ = s.cmd.Wait()
	}()
	t.Cleanup(func() {
		s.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("%s in %s printed:\n%s\nstderr:\n%s", args[0], host, s.output(), stderr.String())
		}
	})
	return &proc{server: s}
}

// wait waits (bounded) for the program to end and returns its output lines.
func (p *proc) wait(timeout time.Duration) []string {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("still running after %v; printed:\n%s", timeout, p.output())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// getter runs a chat client in host that sends lines (the /gets).
func getter(t *testing.T, lab, host, nick, dir string, lines ...string) *proc {
	args := []string{"chat-client", "--server", "10.0.0.1:5002", "--nick", nick, "--download-dir", dir,
		"--no-progress", "--timeout", "60s", "--udp-idle-timeout", "5s"}
	if strings.HasPrefix(nick, "c") { // the many downloads: the default idle timeout
		args = args[:len(args)-2]
	}
	for _, l := range lines {
		args = append(args, "--line", l)
	}
	return runIn(t, lab, host, args...)
}

var savedRx = regexp.MustCompile(`^saved (.+) over UDP \((\d+) bytes, sha256 ([0-9a-f]{64}), (seed|sack)\): ([0-9.]+) Mbit/s in ([0-9.]+)s$`)

// downloadCount is how many files TestRUDPManyDownloadsUnderLoss fetches:
// the 100 take about 10 minutes here, so the suite runs 16 unless
// LABCTL_RUDP_DOWNLOADS says otherwise.
func downloadCount(t *testing.T) int {
	if v := os.Getenv("LABCTL_RUDP_DOWNLOADS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "LABCTL_RUDP_DOWNLOADS")
		return n
	}
	return 16
}

func writeRandom(t *testing.T, path string, size int, r *rand.Rand) string {
	t.Helper()
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	require.NoError(t, os.WriteFile(path, b, 0o644))
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestRUDPManyDownloadsUnderLoss(t *testing.T) {
	lab := rudpLab(t)
	repo := t.TempDir()
	require.NoError(t, os.Chmod(repo, 0o755))
	n := downloadCount(t)
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	type want struct{ name, sum, algo string }
	var wants []want
	for i := range n {
		algo := []string{"sack", "seed"}[i%2]
		// sack: 0 B to 20 MB. seed: its 8 KB+ segments are 6+ IP fragments,
		// so at 30% loss each way a segment gets through about one time in
		// twelve: up to 300 KB keeps its downloads within seconds.
		size := r.IntN(20<<20 + 1)
		if algo == "seed" {
			size = r.IntN(300_000 + 1)
		}
		switch i {
		case 0:
			size = 0
		case 1:
			size = 1
		case 2:
			size = 20 << 20
		}
		name := fmt.Sprintf("f%03d.bin", i)
		wants = append(wants, want{name, writeRandom(t, filepath.Join(repo, name), size, r), algo})
		t.Logf("%s: %d bytes, %s", name, size, algo)
	}
	srv := startServer(t, lab, 5002, "chat-server", "--repo", repo)
	warmARP(t, lab, "h2", "h3")

	// Four clients at once, two per lossy host, each fetching its share in turn.
	const clients = 4
	var wg sync.WaitGroup
	results := make([][]string, clients)
	dirs := make([]string, clients)
	for c := range clients {
		dirs[c] = t.TempDir()
		var lines []string
		for i := c; i < n; i += clients {
			lines = append(lines, "/get "+wants[i].name+" "+wants[i].algo)
		}
		p := getter(t, lab, []string{"h2", "h3"}[c%2], "c"+strconv.Itoa(c), dirs[c], lines...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[c] = p.wait(8 * time.Minute)
		}()
	}
	wg.Wait()
	for c := range clients {
		var saved []string
		for _, l := range results[c] {
			assert.False(t, strings.HasPrefix(l, "ERROR"), "client %d: %s", c, l)
			if m := savedRx.FindStringSubmatch(l); m != nil {
				saved = append(saved, l)
				name := filepath.Base(m[1])
				i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "f"), ".bin"))
				require.NoError(t, err)
				assert.Equal(t, wants[i].sum, m[3], name)
				assert.Equal(t, wants[i].algo, m[4], name)
				assert.Equal(t, wants[i].sum, fileSHA(t, filepath.Join(dirs[c], name)), "%s on disk", name)
			}
		}
		assert.Len(t, saved, (n-c+clients-1)/clients, "client %d saved every file: %q", c, results[c])
		ents, err := os.ReadDir(dirs[c])
		require.NoError(t, err)
		for _, e := range ents {
			assert.False(t, strings.HasPrefix(e.Name(), "."), "temp file %s left", e.Name())
		}
	}
	if t.Failed() {
		t.Logf("server printed:\n%s", srv.output())
	}
}

// garbage sends junk and forged datagrams from h4 at the transfer port
// until stop is closed.
func garbage(t *testing.T, lab string, stop chan struct{}) *sync.WaitGroup {
	c := hostDial(t, lab, "h4", "udp", "10.0.0.1:55001")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer c.Close()
		for i := 0; i < 20000; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			for _, p := range []rudp.Packet{
				{Kind: rudp.KindSYN, TID: uint32(i + 1), Window: 8},
				{Kind: rudp.KindRST, TID: uint32(i + 1), Reason: "spoofed"},
				{Kind: rudp.KindACKAll, TID: uint32(i + 1)},
				{Kind: rudp.KindSACK, TID: uint32(i + 1), Cum: 1 << 30},
			} {
				_, _ = c.Write(p.Append(nil))
			}
			_, _ = c.Write([]byte("RU\x01\x04garbage " + strconv.Itoa(i)))
		}
	}()
	return &wg
}

func TestRUDPBusyPoolGarbageVanishedClientAndKilledServer(t *testing.T) {
	lab := rudpLab(t)
	repo := t.TempDir()
	require.NoError(t, os.Chmod(repo, 0o755))
	r := rand.New(rand.NewPCG(3, 4))
	bigSum := writeRandom(t, filepath.Join(repo, "big.bin"), 20<<20, r)
	writeRandom(t, filepath.Join(repo, "small.bin"), 1000, r)
	srv := startServer(t, lab, 5002, "chat-server", "--repo", repo,
		"--udp-ports", "55001-55001", "--udp-idle-timeout", "2s", "--udp-max-rate", "10")
	warmARP(t, lab, "h2", "h3")

	// One port: a second /get while a transfer runs is refused at once;
	// garbage and forged datagrams at the transfer port change nothing.
	dirA := t.TempDir()
	a := getter(t, lab, "h2", "a", dirA, "/get big.bin")
	a.waitLine(`^UDP 55001 20971520 `+bigSum+`$`, 20*time.Second)
	stop := make(chan struct{})
	g := garbage(t, lab, stop)
	busy := getter(t, lab, "h3", "b", t.TempDir(), "/get small.bin").wait(30 * time.Second)
	assert.Contains(t, busy, "ERROR all UDP transfer ports are busy, try later")
	out := a.wait(3 * time.Minute)
	close(stop)
	g.Wait()
	require.Len(t, filterSaved(out), 1, "%q", out)
	assert.Equal(t, bigSum, fileSHA(t, filepath.Join(dirA, "big.bin")))

	// A client that vanishes mid-transfer frees the port within the idle
	// timeout (2s): a later /get succeeds.
	gone := getter(t, lab, "h2", "gone", t.TempDir(), "/get big.bin")
	gone.waitLine(`^UDP 55001 `, 20*time.Second)
	gone.stop(syscall.SIGKILL)
	deadline := time.Now().Add(20 * time.Second)
	var ok bool
	for i := 0; !ok && time.Now().Before(deadline); i++ {
		lines := getter(t, lab, "h3", "b"+strconv.Itoa(i), t.TempDir(), "/get small.bin").wait(30 * time.Second)
		ok = len(filterSaved(lines)) == 1
		if !ok {
			require.Contains(t, lines, "ERROR all UDP transfer ports are busy, try later")
		}
	}
	require.True(t, ok, "the vanished client's port was not freed within 20s")

	// The server killed mid-transfer: the client says so within its idle
	// timeout (5s) and leaves no file.
	dirK := t.TempDir()
	k := getter(t, lab, "h2", "k", dirK, "/get big.bin")
	k.waitLine(`^UDP 55001 `, 20*time.Second)
	waitPartial(t, dirK, 1<<20, 30*time.Second)
	srv.stop(syscall.SIGKILL)
	killed := time.Now()
	out = k.wait(30 * time.Second)
	assert.Less(t, time.Since(killed), 15*time.Second)
	var errLine string
	for _, l := range out {
		if strings.HasPrefix(l, "ERROR get:") {
			errLine = l
		}
	}
	assert.Regexp(t, `^ERROR get: download "big.bin": server 10\.0\.0\.1:55001 silent for 5s \(\d+ of 20971520 bytes received\)$`, errLine, "%q", out)
	ents, err := os.ReadDir(dirK)
	require.NoError(t, err)
	assert.Empty(t, ents, "no partial file, under any name")
}

// waitPartial waits until a download's temp file in dir holds n bytes.
func waitPartial(t *testing.T, dir string, n int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if info, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".part") && info.Size() >= n {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // polling a file that grows; bounded by the deadline
	}
	t.Fatalf("no temp file of %d bytes in %s within %v", n, dir, timeout)
}

func filterSaved(lines []string) []string {
	var s []string
	for _, l := range lines {
		if savedRx.MatchString(l) {
			s = append(s, l)
		}
	}
	return s
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
