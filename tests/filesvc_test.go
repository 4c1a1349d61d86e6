package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/proto/filesvc"
)

// The file server and chat tests build a small lab (server h1, clients h2
// and h3 on one switch), start the server inside h1 with `labctl exec`, and
// talk to it from sockets the test opens inside h2 and h3 (nsdo): every
// byte crosses the lab's links.

// appLab brings up three hosts on a switch, without a pingall.
func appLab(t *testing.T, prefix string) string {
	t.Helper()
	lab, _ := up(t, prefix, "--topo", "single,3", "--test", "none")
	require.Equal(t, "10.0.0.1", inspect(t, lab).addr("h1"), "the servers' address (startServer)")
	return lab
}

// server is an app started by the test inside a lab host.
type server struct {
	t    testing.TB
	cmd  *exec.Cmd
	addr string // host:port as the lab's other hosts reach it
	done chan struct{}

	mu    sync.Mutex
	lines []string
	seen  chan struct{} // closed and replaced at each new line
}

// startServer runs `labctl app ARGS...` in host h1 and waits until it
// prints its "listening on" line. It is stopped at the end of the test.
func startServer(t testing.TB, lab string, port int, args ...string) *server {
	t.Helper()
	full := append([]string{"exec", "--lab", lab, "h1", "--", bin, "app"}, args...)
	full = append(full, "--port", fmt.Sprint(port))
	s := &server{t: t, cmd: exec.Command(bin, full...), addr: fmt.Sprintf("10.0.0.1:%d", port),
		done: make(chan struct{}), seen: make(chan struct{})}
	out, err := s.cmd.StdoutPipe()
	require.NoError(t, err)
	s.cmd.Stderr = io.Discard
	require.NoError(t, s.cmd.Start())
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
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
			t.Logf("%s printed:\n%s", args[0], s.output())
		}
	})
	s.waitLine(`^listening on `, 10*time.Second)
	return s
}

// waitLine waits for an output line matching re (bounded by timeout).
func (s *server) waitLine(re string, timeout time.Duration) string {
	s.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(timeout)
	for i := 0; ; {
		s.mu.Lock()
		for ; i < len(s.lines); i++ {
			if rx.MatchString(s.lines[i]) {
				l := s.lines[i]
				s.mu.Unlock()
				return l
			}
		}
		seen := s.seen
		s.mu.Unlock()
		select {
		case <-seen:
		case <-s.done:
			s.t.Fatalf("server ended before printing /%s/; it printed:\n%s", re, s.output())
		case <-deadline:
			s.t.Fatalf("no line /%s/ within %v; the server printed:\n%s", re, timeout, s.output())
		}
	}
}

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

// stop signals the server and waits (bounded) until it has ended.
func (s *server) stop(sig syscall.Signal) {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// dialIn opens a TCP connection from inside a lab host; the socket stays
// in that host's namespace. It is closed at the end of the test.
func dialIn(t testing.TB, lab, host, addr string) net.Conn {
	t.Helper()
	c, err := tryDialIn(lab, host, addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// tryDialIn dials from host. A fresh lab's first connection can meet "no
// route to host" while its links finish coming up (neighbour discovery
// fails once): that error alone is retried, within 10 s.
func tryDialIn(lab, host, addr string) (net.Conn, error) {
	var c net.Conn
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := nsdo.DoNamed("lab-"+lab+"-"+host, func() error {
			var err error
			c, err = net.DialTimeout("tcp", addr, 5*time.Second)
			return err
		})
		if !errors.Is(err, syscall.EHOSTUNREACH) || time.Now().After(deadline) {
			return c, err
		}
	}
}

// lineConn is a raw protocol connection for tests that misbehave on purpose.
type lineConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func rawIn(t testing.TB, lab, host, addr string) *lineConn {
	t.Helper()
	c := dialIn(t, lab, host, addr)
	return &lineConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (l *lineConn) send(s string) {
	l.t.Helper()
	_ = l.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(l.c, s)
	require.NoError(l.t, err)
}

// read returns the next line (without "\n"), failing after timeout.
func (l *lineConn) read(timeout time.Duration) string {
	l.t.Helper()
	s, err := l.tryRead(timeout)
	require.NoError(l.t, err)
	return s
}

func (l *lineConn) tryRead(timeout time.Duration) (string, error) {
	_ = l.c.SetReadDeadline(time.Now().Add(timeout))
	s, err := l.br.ReadString('\n')
	if err != nil {
		return s, err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// list sends list and returns the names before ".".
func (l *lineConn) list() []string {
	l.t.Helper()
	l.send("list\n")
	var names []string
	for r := l.read(5 * time.Second); r != "."; r = l.read(5 * time.Second) {
		names = append(names, r)
	}
	return names
}

// expectClosed reads until the server closes the connection (bounded). A
// reset counts as closed: a server that closes while the client's bytes
// are still unread in its socket makes the kernel answer with RST.
func (l *lineConn) expectClosed(timeout time.Duration) {
	l.t.Helper()
	_ = l.c.SetReadDeadline(time.Now().Add(timeout))
	_, err := io.Copy(io.Discard, l.br)
	if errors.Is(err, syscall.ECONNRESET) {
		return
	}
	require.NoError(l.t, err, "the server should close the connection within %v", timeout)
}

// fsClient connects a protocol client from host and checks its name.
func fsClient(t *testing.T, lab, host, addr, dlDir string) *filesvc.Client {
	t.Helper()
	c, err := filesvc.NewClient(context.Background(), dialIn(t, lab, host, addr), filesvc.ClientConfig{DownloadDir: dlDir, Timeout: 20 * time.Second})
	require.NoError(t, err)
	return c
}

func randomFile(t *testing.T, path string, size int) string {
	t.Helper()
	b := make([]byte, size)
	_, _ = rand.Read(b)
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return sha(b)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return sha(b)
}

// repoEntries lists a folder, hidden temp files included.
func repoEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

var statusRE = regexp.MustCompile(`^(Client\d\d+) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (active|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$`)

// statusMap parses status lines into name -> "active" or the disconnect time.
func statusMap(t *testing.T, lines []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, l := range lines {
		f := statusRE.FindStringSubmatch(l)
		require.NotNil(t, f, "status line %q", l)
		m[f[1]] = f[3]
	}
	return m
}

func TestFilesvcNamesCapRefusalAndStatusAfterDisconnects(t *testing.T) {
	lab := appLab(t, "fsc")
	srv := startServer(t, lab, 12345, "filesvc-server", "--repo", t.TempDir(), "--log", filepath.Join(t.TempDir(), "log.jsonl"))
	ctx := context.Background()

	c1 := fsClient(t, lab, "h2", srv.addr, t.TempDir())
	c2 := fsClient(t, lab, "h3", srv.addr, t.TempDir())
	c3 := fsClient(t, lab, "h2", srv.addr, t.TempDir())
	assert.Equal(t, []string{"Client01", "Client02", "Client03"}, []string{c1.Name, c2.Name, c3.Name})

	// The 4th is refused with the contract's line, then closed; twice, to
	// show refusals take no name.
	for i := 0; i < 2; i++ {
		l := rawIn(t, lab, "h3", srv.addr)
		assert.Equal(t, "Server full, try later", l.read(5*time.Second))
		l.expectClosed(5 * time.Second)
	}

	reply, err := c1.Echo(ctx, "hello there")
	require.NoError(t, err)
	assert.Equal(t, "hello there ACK", reply)

	// Client02 says goodbye; Client03 vanishes without a word.
	require.NoError(t, c2.Exit(ctx))
	require.NoError(t, c3.Close())
	srv.waitLine(`^Client02 disconnected \(exit\)`, 5*time.Second)
	srv.waitLine(`^Client03 disconnected`, 5*time.Second)

	lines, err := c1.Status(ctx)
	require.NoError(t, err)
	st := statusMap(t, lines)
	require.Len(t, st, 3, "%v", lines)
	assert.Equal(t, "active", st["Client01"])
	assert.NotEqual(t, "active", st["Client02"])
	assert.NotEqual(t, "active", st["Client03"])

	// Freed slots admit new clients; names are never reused.
	c4 := fsClient(t, lab, "h3", srv.addr, t.TempDir())
	assert.Equal(t, "Client04", c4.Name)
	lines, err = c4.Status(ctx)
	require.NoError(t, err)
	st = statusMap(t, lines)
	assert.Equal(t, "active", st["Client04"])
	assert.Len(t, st, 4)
	require.NoError(t, c4.Exit(ctx))
	require.NoError(t, c1.Exit(ctx))
}

func TestFilesvcTransfersOf0B1B10MBKeepEveryByte(t *testing.T) {
	lab := appLab(t, "fst")
	repo := t.TempDir()
	srv := startServer(t, lab, 12345, "filesvc-server", "--repo", repo, "--log", filepath.Join(t.TempDir(), "log.jsonl"))
	ctx := context.Background()
	src, dl := t.TempDir(), t.TempDir()
	sizes := map[string]int{"zero.bin": 0, "one.bin": 1, "ten-mb.bin": 10_000_000}

	// Files put in the repository by hand download intact to h2.
	want := map[string]string{}
	for name, size := range sizes {
		want["srv-"+name] = randomFile(t, filepath.Join(repo, "srv-"+name), size)
	}
	c := fsClient(t, lab, "h2", srv.addr, dl)
	for name := range sizes {
		path, n, sum, err := c.Download(ctx, "srv-"+name)
		require.NoError(t, err, name)
		assert.Equal(t, int64(sizes[name]), n, name)
		assert.Equal(t, want["srv-"+name], sum, "%s: the client's sum on arrival", name)
		assert.Equal(t, want["srv-"+name], fileSHA(t, path), "%s: the saved file", name)
	}

	// Uploads from h3 arrive intact (server's OK sum and its stored copy),
	// and download to h2 intact again.
	up := fsClient(t, lab, "h3", srv.addr, t.TempDir())
	for name, size := range sizes {
		sum := randomFile(t, filepath.Join(src, name), size)
		got, err := up.Upload(ctx, filepath.Join(src, name), name)
		require.NoError(t, err, name)
		assert.Equal(t, sum, got, "%s: OK <sha256>", name)
		assert.Equal(t, sum, fileSHA(t, filepath.Join(repo, name)), "%s: stored copy", name)
		_, _, back, err := c.Download(ctx, name)
		require.NoError(t, err, name)
		assert.Equal(t, sum, back, "%s: downloaded again", name)
	}
	names, err := c.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"one.bin", "srv-one.bin", "srv-ten-mb.bin", "srv-zero.bin", "ten-mb.bin", "zero.bin"}, names)
	require.NoError(t, up.Exit(ctx))
	require.NoError(t, c.Exit(ctx))
}

func TestFilesvcConnectionLogSurvivesRestartAndCrash(t *testing.T) {
	lab := appLab(t, "fsl")
	repo, logPath := t.TempDir(), filepath.Join(t.TempDir(), "conn.jsonl")
	args := []string{"filesvc-server", "--repo", repo, "--log", logPath}
	ctx := context.Background()

	srv := startServer(t, lab, 12345, args...)
	c := fsClient(t, lab, "h2", srv.addr, t.TempDir())
	require.Equal(t, "Client01", c.Name)
	require.NoError(t, c.Exit(ctx))
	srv.waitLine(`^Client01 disconnected`, 5*time.Second)
	srv.stop(syscall.SIGTERM)

	// Restarted: the log is read back and names continue after it.
	srv = startServer(t, lab, 12345, args...)
	c = fsClient(t, lab, "h2", srv.addr, t.TempDir())
	assert.Equal(t, "Client02", c.Name)
	// Crash with Client02 still connected.
	srv.stop(syscall.SIGKILL)
	c.Close()

	srv = startServer(t, lab, 12345, args...)
	c = fsClient(t, lab, "h3", srv.addr, t.TempDir())
	assert.Equal(t, "Client03", c.Name)
	lines, err := c.Status(ctx)
	require.NoError(t, err)
	st := statusMap(t, lines)
	require.Len(t, st, 3, "%v", lines)
	assert.NotEqual(t, "active", st["Client01"])
	assert.NotEqual(t, "active", st["Client02"], "closed at the restart after the crash")
	assert.Equal(t, "active", st["Client03"])
	require.NoError(t, c.Exit(ctx))
}

func TestFilesvcRefusesNamesOutsideTheRepository(t *testing.T) {
	lab := appLab(t, "fsn")
	base := t.TempDir()
	repo := filepath.Join(base, "repo")
	require.NoError(t, os.Mkdir(repo, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(base, "secret.txt"), []byte("secret\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(repo, "inside.txt"), []byte("inside\n"), 0o644))
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(repo, "passwd")))
	require.NoError(t, os.Symlink("../secret.txt", filepath.Join(repo, "up")))
	require.NoError(t, os.Symlink(base, filepath.Join(repo, "dir")))
	require.NoError(t, os.Symlink("inside.txt", filepath.Join(repo, "alias.txt")))
	srv := startServer(t, lab, 12345, "filesvc-server", "--repo", repo, "--log", filepath.Join(base, "log.jsonl"))

	l := rawIn(t, lab, "h2", srv.addr)
	require.Equal(t, "Client01", l.read(5*time.Second))
	for _, name := range []string{"../../etc/passwd", "/etc/passwd", "../secret.txt", "..", ".", "dir/secret.txt", `..\secret.txt`} {
		l.send("get " + name + "\n")
		r := l.read(5 * time.Second)
		assert.True(t, strings.HasPrefix(r, "ERROR "), "get %q: %q", name, r)
	}
	for _, name := range []string{"passwd", "up"} {
		l.send("get " + name + "\n")
		assert.Equal(t, "ERROR name leads outside the repository", l.read(5*time.Second), "get %q", name)
	}
	l.send("get dir\n")
	assert.True(t, strings.HasPrefix(l.read(5*time.Second), "ERROR "), "a link to a folder outside")
	// A link that stays inside works.
	l.send("get alias.txt\n")
	assert.Equal(t, "START 7", l.read(5*time.Second))
	assert.Equal(t, "inside", l.read(5*time.Second))
	assert.Equal(t, "END", l.read(5*time.Second))

	// The listing shows only regular files inside (and links to them).
	assert.Equal(t, []string{"alias.txt", "inside.txt"}, l.list())

	// Uploads under outside names are refused, their bytes skipped, and
	// nothing is written anywhere.
	for _, name := range []string{"../evil.txt", "/tmp/evil.txt", ".hidden"} {
		l.send("put " + name + " 5\nevil!")
		r := l.read(5 * time.Second)
		assert.True(t, strings.HasPrefix(r, "ERROR "), "put %q: %q", name, r)
	}
	_, err := os.Stat(filepath.Join(base, "evil.txt"))
	assert.True(t, os.IsNotExist(err), "nothing written outside")
	// A put over a link out replaces the link (the upload is renamed into
	// place); it never writes through it.
	before := fileSHA(t, "/etc/passwd")
	l.send("put passwd 5\nevil!")
	assert.Equal(t, "OK "+sha([]byte("evil!")), l.read(5*time.Second))
	assert.Equal(t, before, fileSHA(t, "/etc/passwd"))
	fi, err := os.Lstat(filepath.Join(repo, "passwd"))
	require.NoError(t, err)
	assert.True(t, fi.Mode().IsRegular(), "the link is replaced by the uploaded file")

	// Still in step; the link is gone from the listing, a regular file now.
	assert.Equal(t, []string{"alias.txt", "inside.txt", "passwd"}, l.list())
	l.send("exit\n")
	assert.Equal(t, "BYE", l.read(5*time.Second))
}

func TestFilesvcBrokenUploadsLeaveNoPartialFile(t *testing.T) {
	lab := appLab(t, "fsu")
	repo := t.TempDir()
	srv := startServer(t, lab, 12345, "filesvc-server", "--repo", repo, "--log", filepath.Join(t.TempDir(), "log.jsonl"),
		"--io-timeout", "1s")
	ctx := context.Background()
	lister := fsClient(t, lab, "h3", srv.addr, t.TempDir())

	// Cut short: half the bytes, then the client is gone.
	cut := rawIn(t, lab, "h2", srv.addr)
	require.Equal(t, "Client02", cut.read(5*time.Second))
	cut.send("put cut.bin 1000000\n" + strings.Repeat("x", 500_000))
	require.NoError(t, cut.c.Close())
	srv.waitLine(`^Client02 disconnected`, 10*time.Second)

	// Longer than announced: told, nothing stored, closed.
	long := rawIn(t, lab, "h2", srv.addr)
	require.Equal(t, "Client03", long.read(5*time.Second))
	long.send("put long.bin 10\n" + strings.Repeat("y", 30))
	assert.Equal(t, "ERROR upload longer than announced; closing", long.read(5*time.Second))
	long.expectClosed(5 * time.Second)

	// Stalled: the per-read timeout ends it.
	stall := rawIn(t, lab, "h2", srv.addr)
	require.Equal(t, "Client04", stall.read(5*time.Second))
	stall.send("put stall.bin 100\n" + strings.Repeat("z", 10))
	assert.Equal(t, "ERROR upload timed out", stall.read(10*time.Second))
	stall.expectClosed(5 * time.Second)

	names, err := lister.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, names)
	assert.Empty(t, repoEntries(t, repo), "no file and no temp file left")

	// A complete upload after all that still works.
	sum, err := lister.Put(ctx, "ok.bin", strings.NewReader("fine"), 4)
	require.NoError(t, err)
	assert.Equal(t, sha([]byte("fine")), sum)
	assert.Equal(t, []string{"ok.bin"}, repoEntries(t, repo))
}

func TestFilesvcIdleAndSlowClientsTimeOut(t *testing.T) {
	lab := appLab(t, "fsi")
	repo := t.TempDir()
	randomFile(t, filepath.Join(repo, "big.bin"), 10_000_000)
	srv := startServer(t, lab, 12345, "filesvc-server", "--repo", repo, "--log", filepath.Join(t.TempDir(), "log.jsonl"),
		"--idle-timeout", "1s", "--io-timeout", "1s", "--min-rate", "10000000", "--max-clients", "3")

	idle := rawIn(t, lab, "h2", srv.addr)
	require.Equal(t, "Client01", idle.read(5*time.Second))

	// A slow-loris line: a byte every 50 ms (faster than the 200 ms pause
	// that would end a message) never makes a whole line in time.
	loris := rawIn(t, lab, "h3", srv.addr)
	require.Equal(t, "Client02", loris.read(5*time.Second))
	lorisDone := make(chan string, 1)
	go func() {
		for i := 0; i < 200; i++ {
			if _, err := loris.c.Write([]byte("a")); err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond) // the client's pace, not a wait for readiness
		}
		lorisDone <- ""
	}()

	// A slow reader: asks for 10 MB and never reads.
	slow := rawIn(t, lab, "h2", srv.addr)
	require.Equal(t, "Client03", slow.read(5*time.Second))
	slow.send("get big.bin\n")

	start := time.Now()
	assert.Equal(t, "ERROR idle timeout", idle.read(5*time.Second))
	idle.expectClosed(5 * time.Second)
	r, err := loris.tryRead(5 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, "ERROR idle timeout", r)
	srv.waitLine(`^Client03 disconnected`, 15*time.Second)
	t.Logf("all three cut off after %v", time.Since(start))
	<-lorisDone

	// Their slots are free again.
	for i := 0; i < 3; i++ {
		c := fsClient(t, lab, "h3", srv.addr, t.TempDir())
		assert.Equal(t, fmt.Sprintf("Client%02d", 4+i), c.Name)
	}
}

func TestFilesvcVanishingClientFreesItsSlot(t *testing.T) {
	lab := appLab(t, "fsv")
	repo := t.TempDir()
	randomFile(t, filepath.Join(repo, "big.bin"), 10_000_000)
	srv := startServer(t, lab, 12345, "filesvc-server", "--repo", repo, "--log", filepath.Join(t.TempDir(), "log.jsonl"),
		"--max-clients", "1")
	ctx := context.Background()

	// Mid-download: read a little of the 10 MB, then vanish.
	a := rawIn(t, lab, "h2", srv.addr)
	require.Equal(t, "Client01", a.read(5*time.Second))
	a.send("get big.bin\n")
	require.Equal(t, "START 10000000", a.read(5*time.Second))
	_, err := io.ReadFull(a.br, make([]byte, 100_000))
	require.NoError(t, err)
	full := rawIn(t, lab, "h3", srv.addr)
	assert.Equal(t, "Server full, try later", full.read(5*time.Second))
	require.NoError(t, a.c.Close())
	srv.waitLine(`^Client01 disconnected`, 10*time.Second)

	// Mid-upload: 1 of 10 MB sent, then vanish; no partial file.
	b := rawIn(t, lab, "h2", srv.addr)
	require.Equal(t, "Client02", b.read(5*time.Second))
	b.send("put part.bin 10000000\n" + strings.Repeat("p", 1_000_000))
	require.NoError(t, b.c.Close())
	srv.waitLine(`^Client02 disconnected`, 10*time.Second)

	c := fsClient(t, lab, "h3", srv.addr, t.TempDir())
	assert.Equal(t, "Client03", c.Name)
	names, err := c.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"big.bin"}, names)
	assert.Equal(t, []string{"big.bin"}, repoEntries(t, repo))
	require.NoError(t, c.Exit(ctx))
}

func TestFilesvcThousandConnectingClientsNeitherKillNorStarve(t *testing.T) {
	lab := appLab(t, "fsf")
	repo := t.TempDir()
	want := randomFile(t, filepath.Join(repo, "m.bin"), 1_000_000)
	srv := startServer(t, lab, 12345, "filesvc-server", "--repo", repo, "--log", filepath.Join(t.TempDir(), "log.jsonl"))
	ctx := context.Background()

	// Three admitted clients keep working while the flood runs.
	var admitted []*filesvc.Client
	for i := 0; i < 3; i++ {
		admitted = append(admitted, fsClient(t, lab, "h2", srv.addr, t.TempDir()))
	}
	const flood, workers = 1000, 50
	var refused, other atomic.Int64
	stop := make(chan struct{})
	var fw sync.WaitGroup
	next := make(chan int, flood)
	for i := 0; i < flood; i++ {
		next <- i
	}
	close(next)
	for w := 0; w < workers; w++ {
		fw.Add(1)
		go func() {
			defer fw.Done()
			for range next {
				c, err := tryDialIn(lab, "h3", srv.addr)
				if err != nil {
					other.Add(1)
					continue
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				c.Close()
				if err == nil && line == "Server full, try later\n" {
					refused.Add(1)
				} else {
					other.Add(1)
				}
			}
		}()
	}
	go func() { fw.Wait(); close(stop) }()

	// The admitted clients' round trips while the flood lasts: each must
	// be quick, and there must be some.
	var worst time.Duration
	var rounds atomic.Int64
	var aw sync.WaitGroup
	var mu sync.Mutex
	for i, c := range admitted {
		aw.Add(1)
		go func(i int, c *filesvc.Client) {
			defer aw.Done()
			for n := 0; n < 10000; n++ {
				select {
				case <-stop:
					if n > 0 {
						return
					}
				default:
				}
				t0 := time.Now()
				var err error
				if n%5 == 4 {
					_, _, got, derr := c.Download(ctx, "m.bin")
					err = derr
					if err == nil && got != want {
						err = errors.New("m.bin arrived corrupted")
					}
				} else {
					var r string
					r, err = c.Echo(ctx, fmt.Sprintf("ping %d %d", i, n))
					if err == nil && r != fmt.Sprintf("ping %d %d ACK", i, n) {
						err = fmt.Errorf("echo: %q", r)
					}
				}
				d := time.Since(t0)
				if !assert.NoError(t, err) {
					return
				}
				rounds.Add(1)
				mu.Lock()
				worst = max(worst, d)
				mu.Unlock()
			}
		}(i, c)
	}
	aw.Wait()
	<-stop
	t.Logf("flood: %d refused, %d other; admitted: %d round trips, worst %v", refused.Load(), other.Load(), rounds.Load(), worst)
	assert.Equal(t, int64(flood), refused.Load(), "every extra client is told the server is full")
	assert.Less(t, worst, 3*time.Second, "admitted clients are not starved")
	assert.GreaterOrEqual(t, rounds.Load(), int64(3))

	// The server is still up and serves a new client once a slot frees.
	require.NoError(t, admitted[0].Exit(ctx))
	srv.waitLine(`^Client01 disconnected`, 5*time.Second)
	c := fsClient(t, lab, "h3", srv.addr, t.TempDir())
	assert.Equal(t, "Client04", c.Name)
	require.NoError(t, c.Exit(ctx))
}

// TestFilesvcFIFOInTheServedFolder (issue 13.4): a FIFO in the repository
// is not listed, `get` of it (or of a link to it) is refused at once, the
// client's slot and the server stay usable, and SIGTERM stops the server.
func TestFilesvcFIFOInTheServedFolder(t *testing.T) {
	lab := appLab(t, "fsfifo")
	repo := t.TempDir()
	require.NoError(t, syscall.Mkfifo(filepath.Join(repo, "pipe"), 0o644))
	require.NoError(t, os.Symlink("pipe", filepath.Join(repo, "pipe-link")))
	require.NoError(t, os.WriteFile(filepath.Join(repo, "ok.txt"), []byte("ok\n"), 0o644))
	srv := startServer(t, lab, 12345, "filesvc-server", "--repo", repo, "--log", filepath.Join(t.TempDir(), "log.jsonl"))

	l := rawIn(t, lab, "h2", srv.addr)
	require.Equal(t, "Client01", l.read(5*time.Second))
	assert.Equal(t, []string{"ok.txt"}, l.list())
	bare := rawIn(t, lab, "h3", srv.addr) // a client that sends no newlines (issue 10.2)
	require.Equal(t, "Client02", bare.read(5*time.Second))
	bare.send("list")
	assert.Equal(t, "ok.txt", bare.read(5*time.Second))
	assert.Equal(t, ".", bare.read(5*time.Second))
	bare.send("get pipe")
	assert.Equal(t, "ERROR not a regular file", bare.read(5*time.Second))
	for _, name := range []string{"pipe", "pipe-link"} {
		l.send("get " + name + "\n")
		assert.Equal(t, "ERROR not a regular file", l.read(5*time.Second), "get %q", name)
	}
	l.send("get ok.txt\n")
	assert.Equal(t, "START 3", l.read(5*time.Second))
	assert.Equal(t, "ok", l.read(5*time.Second))
	assert.Equal(t, "END", l.read(5*time.Second))

	start := time.Now()
	srv.stop(syscall.SIGTERM)
	assert.Less(t, time.Since(start), 4*time.Second, "SIGTERM is not held up by the FIFO")
}

// TestFilesvcTricklingPutHoldsNoSlot (issues 13.4, 17.4): with one slot, a
// put that trickles a byte every 50 ms — of an accepted name, then of a
// refused one whose payload is skipped — is cut about one rate window
// after it starts, with an ERROR line, and the next client gets the slot.
func TestFilesvcTricklingPutHoldsNoSlot(t *testing.T) {
	lab := appLab(t, "fstrickle")
	srv := startServer(t, lab, 12345, "filesvc-server", "--repo", t.TempDir(), "--log", filepath.Join(t.TempDir(), "log.jsonl"),
		"--max-clients", "1", "--min-rate", "1000", "--rate-window", "1s")
	for i, header := range []string{"put big.bin 1073741824\n", "put ../out.bin 1073741824\n"} {
		slow := rawIn(t, lab, "h2", srv.addr)
		require.Equal(t, fmt.Sprintf("Client%02d", 2*i+1), slow.read(5*time.Second))
		start := time.Now()
		slow.send(header)
		go func() {
			for range 200 {
				if _, err := slow.c.Write([]byte("t")); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond) // the trickle's pace
			}
		}()
		assert.Equal(t, "ERROR upload too slow (under 1000 bytes/s over 1s); closing", slow.read(10*time.Second), header)
		assert.Less(t, time.Since(start), 5*time.Second, "cut within about a window, not at the announced size's deadline")
		slow.expectClosed(5 * time.Second)
		srv.waitLine(fmt.Sprintf(`^Client%02d disconnected \(upload too slow\)`, 2*i+1), 5*time.Second)
		next := rawIn(t, lab, "h3", srv.addr)
		assert.Equal(t, fmt.Sprintf("Client%02d", 2*i+2), next.read(5*time.Second), "the slot is free again")
		next.c.Close()
		srv.waitLine(fmt.Sprintf(`^Client%02d disconnected`, 2*i+2), 5*time.Second)
	}
}

// TestFilesvcLineOver64MBEndsWithWords (issue 13.7): a line that goes on
// past the 64 MB the server reads of it gets one ERROR line before the
// close, not a reset; the server serves the next client.
func TestFilesvcLineOver64MBEndsWithWords(t *testing.T) {
	lab := appLab(t, "fsflood")
	srv := startServer(t, lab, 12345, "filesvc-server", "--repo", t.TempDir(), "--log", filepath.Join(t.TempDir(), "log.jsonl"))
	l := rawIn(t, lab, "h2", srv.addr)
	require.Equal(t, "Client01", l.read(5*time.Second))
	go func() {
		chunk := bytes.Repeat([]byte("z"), 1<<20)
		for range 80 { // 80 MB, no newline; the write fails once the server closes
			_ = l.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := l.c.Write(chunk); err != nil {
				return
			}
		}
	}()
	assert.Equal(t, "ERROR line too long (limit 4096 bytes); closing after 67108864 bytes", l.read(30*time.Second))
	l.expectClosed(5 * time.Second)
	next := rawIn(t, lab, "h3", srv.addr)
	assert.Equal(t, "Client02", next.read(5*time.Second))
}
