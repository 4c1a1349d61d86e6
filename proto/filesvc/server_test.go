package filesvc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/labctl/labctl/proto/internal/prototest"
)

type testServer struct {
	*Server
	addr string
	stop func()
}

// startServer serves on a fresh loopback port; the server stops at cleanup.
func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	if cfg.Repo == "" {
		cfg.Repo = filepath.Join(t.TempDir(), "repo")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := NewServer(cfg)
	require.NoError(t, err)
	ln := prototest.ListenTCP(t)
	run := prototest.Start(t, func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	var once sync.Once
	stop := func() {
		once.Do(func() {
			run.Stop()
			run.Exited(t)
			assert.NoError(t, srv.Close())
		})
	}
	t.Cleanup(stop)
	return &testServer{Server: srv, addr: ln.Addr().String(), stop: stop}
}

// raw is a protocol-level client for tests.
type raw struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &raw{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *raw) line() string {
	r.t.Helper()
	require.NoError(r.t, r.c.SetReadDeadline(time.Now().Add(5*time.Second)))
	l, err := r.br.ReadString('\n')
	require.NoError(r.t, err, "partial %q", l)
	return strings.TrimSuffix(l, "\n")
}

func (r *raw) send(s string) {
	r.t.Helper()
	_, err := io.WriteString(r.c, s)
	require.NoError(r.t, err)
}

// closed waits for the server to close the connection.
func (r *raw) closed() {
	r.t.Helper()
	require.NoError(r.t, r.c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := io.Copy(io.Discard, r.br)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		r.t.Fatalf("connection not closed: %v", err)
	}
}

func dialClient(t *testing.T, addr string, cfg ClientConfig) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNamesAndCap(t *testing.T) {
	ts := startServer(t, Config{})
	for _, want := range []string{"Client01", "Client02", "Client03"} {
		assert.Equal(t, want, dialRaw(t, ts.addr).line())
	}
	fourth := dialRaw(t, ts.addr)
	assert.Equal(t, FullMessage, fourth.line())
	fourth.closed()

	_, err := Dial(context.Background(), ts.addr, ClientConfig{})
	assert.ErrorIs(t, err, ErrServerFull)
}

func TestEchoAndBadLines(t *testing.T) {
	ts := startServer(t, Config{MaxLine: 100})
	r := dialRaw(t, ts.addr)
	r.line()
	r.send("hello world\r\n")
	assert.Equal(t, "hello world ACK", r.line())
	r.send("\n")
	assert.Equal(t, "ERROR empty line", r.line())
	r.send(strings.Repeat("x", 1<<20) + "\n")
	assert.Equal(t, "ERROR line too long (limit 100 bytes)", r.line())
	r.send("get\n")
	assert.Equal(t, "ERROR usage: get <name>", r.line())
	r.send("put x abc\n")
	assert.Equal(t, `ERROR size "abc" is not a decimal number`, r.line())
	r.send("still here\n")
	assert.Equal(t, "still here ACK", r.line())
	r.send("put big 99999999999\n")
	assert.Contains(t, r.line(), "ERROR size 99999999999 over the limit")
	r.closed()
}

func TestStatusAfterDisconnectsAndRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Repo: filepath.Join(dir, "repo"), LogPath: filepath.Join(dir, "state", "conns.jsonl")}
	ts := startServer(t, cfg)
	before := time.Now().Add(-time.Second)

	a := dialClient(t, ts.addr, ClientConfig{})
	require.NoError(t, a.Exit(context.Background()))
	b := dialRaw(t, ts.addr)
	require.Equal(t, "Client02", b.line())
	b.c.Close() // vanishes without exit
	c := dialClient(t, ts.addr, ClientConfig{})

	var lines []string
	require.Eventually(t, func() bool {
		var err error
		lines, err = c.Status(context.Background())
		require.NoError(t, err)
		return len(lines) == 3 && !strings.HasSuffix(lines[1], " active")
	}, 5*time.Second, 10*time.Millisecond)
	checkStatus(t, lines[0], "Client01", before, false)
	checkStatus(t, lines[1], "Client02", before, false)
	checkStatus(t, lines[2], "Client03", before, true)

	ts.stop()
	ts2 := startServer(t, cfg)
	d := dialClient(t, ts2.addr, ClientConfig{})
	assert.Equal(t, "Client04", d.Name, "numbering continues after the log")
	lines, err := d.Status(context.Background())
	require.NoError(t, err)
	require.Len(t, lines, 4)
	for i, name := range []string{"Client01", "Client02", "Client03"} {
		checkStatus(t, lines[i], name, before, false)
	}
	checkStatus(t, lines[3], "Client04", before, true)
}

func checkStatus(t *testing.T, line, name string, after time.Time, active bool) {
	t.Helper()
	f := strings.Fields(line)
	require.Len(t, f, 3, line)
	assert.Equal(t, name, f[0])
	conn, err := time.Parse(time.RFC3339, f[1])
	require.NoError(t, err, line)
	assert.False(t, conn.Before(after.Truncate(time.Second)), line)
	if active {
		assert.Equal(t, "active", f[2])
		return
	}
	disc, err := time.Parse(time.RFC3339, f[2])
	require.NoError(t, err, line)
	assert.False(t, disc.Before(conn), line)
}

func TestListShowsOnlyServableFiles(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	require.NoError(t, os.MkdirAll(filepath.Join(repo, "sub"), 0o755))
	for _, n := range []string{"b.txt", "a file.bin", ".hidden", ".upload-1234.part"} {
		require.NoError(t, os.WriteFile(filepath.Join(repo, n), []byte(n), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("s"), 0o644))
	require.NoError(t, os.Symlink("../secret", filepath.Join(repo, "out-rel")))
	require.NoError(t, os.Symlink(filepath.Join(dir, "secret"), filepath.Join(repo, "out-abs")))
	require.NoError(t, os.Symlink("b.txt", filepath.Join(repo, "in-link")))
	ts := startServer(t, Config{Repo: repo})
	c := dialClient(t, ts.addr, ClientConfig{})
	names, err := c.List(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []string{"a file.bin", "b.txt", "in-link"}, names)
}

func TestGetPutRoundTrip(t *testing.T) {
	ts := startServer(t, Config{})
	down := t.TempDir()
	c := dialClient(t, ts.addr, ClientConfig{DownloadDir: down})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		size int
	}{{"empty", 0}, {"one", 1}, {"ten-mb.bin", 10 << 20}} {
		data := make([]byte, tc.size)
		_, _ = rand.Read(data)
		want := sha256.Sum256(data)
		sum, err := c.Put(ctx, tc.name, bytes.NewReader(data), int64(len(data)))
		require.NoError(t, err, tc.name)
		assert.Equal(t, hex.EncodeToString(want[:]), sum, tc.name)

		var buf bytes.Buffer
		n, err := c.Get(ctx, tc.name, &buf)
		require.NoError(t, err, tc.name)
		assert.EqualValues(t, tc.size, n)
		got := sha256.Sum256(buf.Bytes())
		assert.Equal(t, want, got, tc.name)

		path, n, dsum, err := c.Download(ctx, tc.name)
		require.NoError(t, err, tc.name)
		assert.EqualValues(t, tc.size, n)
		assert.Equal(t, sum, dsum)
		onDisk, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, want, sha256.Sum256(onDisk))
	}
	names, err := c.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"empty", "one", "ten-mb.bin"}, names)

	_, err = c.Get(ctx, "missing", io.Discard)
	var se *ServerError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "ERROR no such file", se.Line)
	reply, err := c.Echo(ctx, "after error")
	require.NoError(t, err)
	assert.Equal(t, "after error ACK", reply)
}

func TestPathTraversalRefused(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	require.NoError(t, os.MkdirAll(repo, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("secret"), 0o644))
	require.NoError(t, os.Symlink("../secret", filepath.Join(repo, "link-out")))
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(repo, "link-abs")))
	ts := startServer(t, Config{Repo: repo})
	r := dialRaw(t, ts.addr)
	r.line()
	for _, name := range []string{"../../etc/passwd", "/etc/passwd", "..", ".", "../secret", `..\secret`, "link-out", "link-abs"} {
		r.send("get " + name + "\n")
		got := r.line()
		assert.True(t, strings.HasPrefix(got, "ERROR "), "get %q: %q", name, got)
	}
	r.send("put ../escaped 3\nabc")
	assert.Contains(t, r.line(), "ERROR file name may not")
	r.send("put /tmp/escaped 3\nabc")
	assert.Contains(t, r.line(), "ERROR file name may not")
	r.send("still\n")
	assert.Equal(t, "still ACK", r.line(), "the refused payloads were skipped")
	_, err := os.Stat(filepath.Join(dir, "escaped"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	r.send("put link-out 3\nxyz")
	assert.Regexp(t, `^OK [0-9a-f]{64}$`, r.line(), "a put replaces the link, not its target")
	secret, err := os.ReadFile(filepath.Join(dir, "secret"))
	require.NoError(t, err)
	assert.Equal(t, "secret", string(secret))
}

func repoEntries(t *testing.T, repo string) []string {
	t.Helper()
	entries, err := os.ReadDir(repo)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestBrokenUploadsLeaveNothing(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	ts := startServer(t, Config{Repo: repo, IOTimeout: 300 * time.Millisecond})

	short := dialRaw(t, ts.addr)
	short.line()
	short.send("put short.bin 100\n" + strings.Repeat("a", 50))
	short.c.Close()

	stalled := dialRaw(t, ts.addr)
	stalled.line()
	stalled.send("put stalled.bin 100\n" + strings.Repeat("a", 50))
	assert.Equal(t, "ERROR upload timed out", stalled.line())
	stalled.closed()

	long := dialRaw(t, ts.addr)
	long.line()
	long.send("put long.bin 10\n" + strings.Repeat("b", 20))
	assert.Equal(t, "ERROR upload longer than announced; closing", long.line())
	long.closed()

	c := dialClient(t, ts.addr, ClientConfig{})
	require.Eventually(t, func() bool { return len(repoEntries(t, repo)) == 0 }, 5*time.Second, 10*time.Millisecond,
		"no file and no temp file left")
	names, err := c.List(context.Background())
	require.NoError(t, err)
	assert.Empty(t, names)
}

func TestIdleAndSlowLorisTimeout(t *testing.T) {
	ts := startServer(t, Config{IdleTimeout: 300 * time.Millisecond})
	idle := dialRaw(t, ts.addr)
	idle.line()
	assert.Equal(t, "ERROR idle timeout", idle.line())
	idle.closed()

	loris := dialRaw(t, ts.addr)
	loris.line()
	start := time.Now()
	for i := 0; i < 40; i++ { // a byte every 50ms, never a newline
		if _, err := loris.c.Write([]byte("x")); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
		if time.Since(start) > time.Second {
			break
		}
	}
	assert.Equal(t, "ERROR idle timeout", loris.line())
	loris.closed()
	assert.Less(t, time.Since(start), 2*time.Second)
}

func TestVanishingClientFreesSlot(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	require.NoError(t, os.MkdirAll(repo, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(repo, "big"), make([]byte, 32<<20), 0o644))
	ts := startServer(t, Config{Repo: repo, MaxClients: 1})
	r := dialRaw(t, ts.addr)
	r.line()
	r.send("get big\n")
	assert.Equal(t, "START 33554432", r.line())
	_, err := io.CopyN(io.Discard, r.br, 1<<20)
	require.NoError(t, err)
	r.c.Close() // gone mid-transfer

	require.Eventually(t, func() bool {
		c, err := Dial(context.Background(), ts.addr, ClientConfig{})
		if err != nil {
			return false
		}
		defer c.Close()
		return c.Name == "Client02"
	}, 5*time.Second, 20*time.Millisecond)
	assert.Contains(t, ts.Status()[0].StatusLine(), "Client01 ")
	assert.False(t, ts.Status()[0].Disconnected.IsZero())
}

func TestThousandClientsDoNotStarveAdmitted(t *testing.T) {
	ts := startServer(t, Config{})
	admitted := dialClient(t, ts.addr, ClientConfig{Timeout: 5 * time.Second})
	dialRaw(t, ts.addr).line() // fill the other two slots
	dialRaw(t, ts.addr).line()
	ctx := context.Background()

	var refused, failed atomic.Int64
	var wg sync.WaitGroup
	gate := make(chan struct{}, 100) // dials in flight
	stopEcho := make(chan struct{})
	echoDone := make(chan int)
	go func() {
		n := 0
		defer func() { echoDone <- n }()
		for i := 0; i < 10000; i++ {
			select {
			case <-stopEcho:
				return
			default:
			}
			start := time.Now()
			reply, err := admitted.Echo(ctx, "ping")
			if err != nil || reply != "ping ACK" || time.Since(start) > 2*time.Second {
				t.Errorf("admitted client starved: %q %v after %v", reply, err, time.Since(start))
				return
			}
			n++
		}
	}()
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		gate <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-gate }()
			c, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
			if err != nil {
				failed.Add(1)
				return
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			if line == FullMessage+"\n" {
				refused.Add(1)
			} else {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stopEcho)
	echoes := <-echoDone
	assert.EqualValues(t, 1000, refused.Load(), "failed: %d", failed.Load())
	assert.Positive(t, echoes)
	reply, err := admitted.Echo(ctx, "still served")
	require.NoError(t, err)
	assert.Equal(t, "still served ACK", reply)
}

func TestStopsOnCancel(t *testing.T) {
	ts := startServer(t, Config{})
	r := dialRaw(t, ts.addr)
	r.line()
	ts.stop()
	r.closed()
	recs := ts.Status()
	require.Len(t, recs, 1)
	assert.False(t, recs[0].Disconnected.IsZero())
}

func TestClientRunScript(t *testing.T) {
	ts := startServer(t, Config{})
	local := filepath.Join(t.TempDir(), "notes.txt")
	require.NoError(t, os.WriteFile(local, []byte("hello\n"), 0o644))
	down := t.TempDir()
	c := dialClient(t, ts.addr, ClientConfig{DownloadDir: down})
	var out bytes.Buffer
	err := c.Run(context.Background(), []string{"hi", "put " + local, "list", "get notes.txt", "get nope"}, nil, &out)
	require.NoError(t, err)
	sum := sha256.Sum256([]byte("hello\n"))
	hexSum := hex.EncodeToString(sum[:])
	assert.Equal(t, strings.Join([]string{
		"Client01", "hi ACK", "OK " + hexSum, "notes.txt", ".",
		"START 6", "END", "saved " + filepath.Join(down, "notes.txt") + " (6 bytes, sha256 " + hexSum + ")",
		"ERROR no such file", "BYE", "",
	}, "\n"), out.String())
}

// trickle sends one byte every 20 ms until the server closes or n are sent.
func trickle(c net.Conn, n int) {
	for range n {
		if _, err := c.Write([]byte{'t'}); err != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A trickling put, accepted or refused, holds no slot past the rate window
// (issues 13.4, 17.4), however large the announced size.
func TestTrickleHoldsNoSlot(t *testing.T) {
	for _, header := range []string{"put big.bin 1000000000\n", "put ../escape.bin 1000000000\n"} {
		ts := startServer(t, Config{MaxClients: 1, MinRate: 1000, RateWindow: 300 * time.Millisecond})
		slow := dialRaw(t, ts.addr)
		assert.Equal(t, "Client01", slow.line())
		start := time.Now()
		slow.send(header)
		go trickle(slow.c, 500)
		assert.Contains(t, slow.line(), "ERROR upload too slow (under 1000 bytes/s over 300ms)", header)
		assert.Less(t, time.Since(start), 3*time.Second, "cut about a window after the trickle began")
		slow.closed()
		// The server lingers (at most wire.LingerTime) after its FIN so
		// the ERROR line is not lost to a reset; then the slot is free.
		require.Eventually(t, func() bool {
			return dialRaw(t, ts.addr).line() != FullMessage
		}, 5*time.Second, 50*time.Millisecond, "the slot is free again")
		ts.stop()
	}
}

// A FIFO in the repository is not listed and get refuses it at once; the
// server still stops promptly (issue 13.4).
func TestFIFOInRepository(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	require.NoError(t, os.MkdirAll(repo, 0o755))
	require.NoError(t, syscall.Mkfifo(filepath.Join(repo, "pipe"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(repo, "ok.txt"), []byte("ok"), 0o644))
	ts := startServer(t, Config{Repo: repo})
	c := dialRaw(t, ts.addr)
	c.line()
	c.send("list\n")
	assert.Equal(t, "ok.txt", c.line())
	assert.Equal(t, ".", c.line())
	c.send("get pipe\n")
	assert.Equal(t, "ERROR not a regular file", c.line())
	c.send("get ok.txt\n")
	assert.Equal(t, "START 2", c.line())
	ts.stop()
}

// An over-long line past the discard limit still gets one ERROR line
// before the close (issue 13.7); below it the server stays in step.
func TestFloodGetsErrorBeforeClose(t *testing.T) {
	ts := startServer(t, Config{})
	c := dialRaw(t, ts.addr)
	c.line()
	go func() {
		chunk := bytes.Repeat([]byte("z"), 1<<20)
		for range 80 {
			if _, err := c.c.Write(chunk); err != nil {
				return
			}
		}
	}()
	assert.Equal(t, "ERROR line too long (limit 4096 bytes); closing after 67108864 bytes", c.line())
	c.closed()
}

// The echo escapes control characters (issue 17.3); a command without a
// newline is understood after the pause (issue 10.2).
func TestEchoEscapesAndLenientFraming(t *testing.T) {
	ts := startServer(t, Config{Pause: 50 * time.Millisecond})
	c := dialRaw(t, ts.addr)
	c.line()
	c.send("hi\x1b[2J\rthere\x07\n")
	assert.Equal(t, `hi\x1b[2J\rthere\a ACK`, c.line())

	bare := dialRaw(t, ts.addr) // a client that never sends a newline
	bare.line()
	bare.send("list")
	assert.Equal(t, ".", bare.line())
	bare.send("hello")
	assert.Equal(t, "hello ACK", bare.line())
}

// A download drained too slowly is cut by the same sliding-window rule.
func TestSlowDownloadHoldsNoSlot(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	require.NoError(t, os.MkdirAll(repo, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(repo, "big"), make([]byte, 64<<20), 0o644))
	out := prototest.NewSink()
	ts := startServer(t, Config{Repo: repo, MaxClients: 1, MinRate: 1 << 20, RateWindow: 300 * time.Millisecond, Out: out})
	slow := dialRaw(t, ts.addr)
	slow.line()
	slow.send("get big\n")
	start := time.Now()
	go func() {
		buf := make([]byte, 1024)
		for time.Since(start) < 20*time.Second { // a reader far below 1 MiB/s
			_ = slow.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := slow.br.Read(buf); err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	out.Expect(t, "Client01 disconnected (get aborted)")
	assert.Less(t, time.Since(start), 8*time.Second, "cut about a window after the socket buffers filled")
}
