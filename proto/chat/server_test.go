package chat

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
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type testServer struct {
	*Server
	addr string
	stop func()
}

func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	if cfg.Repo == "" {
		cfg.Repo = filepath.Join(t.TempDir(), "files")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := NewServer(cfg)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				assert.NoError(t, err)
			case <-time.After(5 * time.Second):
				t.Error("server did not stop within 5s")
			}
			assert.NoError(t, srv.Close())
		})
	}
	t.Cleanup(stop)
	return &testServer{Server: srv, addr: ln.Addr().String(), stop: stop}
}

type raw struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *raw {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &raw{t: t, c: c, br: bufio.NewReaderSize(c, 64<<10)}
}

// join connects as nick and waits for its own join line.
func join(t testing.TB, addr, nick string) *raw {
	t.Helper()
	r := dialRaw(t, addr)
	r.send(nick + "\n")
	require.Equal(t, "* "+nick+" joined", r.line())
	return r
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

func (r *raw) multi() []string {
	r.t.Helper()
	var out []string
	for l := r.line(); l != "."; l = r.line() {
		out = append(out, l)
	}
	return out
}

func (r *raw) closed() {
	r.t.Helper()
	require.NoError(r.t, r.c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := io.Copy(io.Discard, r.br)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		r.t.Fatalf("connection not closed: %v", err)
	}
}

func TestJoinBroadcastLeave(t *testing.T) {
	ts := startServer(t, Config{})
	alice := join(t, ts.addr, "alice")
	bob := join(t, ts.addr, "bob")
	assert.Equal(t, "* bob joined", alice.line())

	alice.send("hi all\r\n")
	assert.Equal(t, "alice: hi all", bob.line())
	alice.send("//slash stays\n")
	assert.Equal(t, "alice: /slash stays", bob.line())
	alice.send("\n/who\n") // a blank line is ignored
	assert.Equal(t, []string{"alice", "bob"}, alice.multi(), "alice got no echo of her own lines")

	bob.send("/quit\n")
	assert.Equal(t, "BYE", bob.line())
	bob.closed()
	assert.Equal(t, "* bob left", alice.line())

	carol := dialRaw(t, ts.addr)
	carol.c.Close() // leaves before joining: nobody hears of it
	dave := join(t, ts.addr, "dave")
	assert.Equal(t, "* dave joined", alice.line())
	dave.c.Close()
	assert.Equal(t, "* dave left", alice.line())
}

func TestNicknames(t *testing.T) {
	ts := startServer(t, Config{})
	join(t, ts.addr, "alice")
	r := dialRaw(t, ts.addr)
	r.send("alice\n")
	assert.Equal(t, "ERROR nickname taken", r.line())
	r.send("bad nick\n")
	assert.Equal(t, "ERROR nickname may contain only letters, digits, '_' and '-'", r.line())
	r.send(strings.Repeat("n", 33) + "\n")
	assert.Equal(t, "ERROR nickname longer than 32 characters", r.line())
	r.send(strings.Repeat("n", 1<<20) + "\n")
	assert.Equal(t, "ERROR nickname longer than 32 characters", r.line())
	r.send("\n")
	assert.Equal(t, "ERROR empty nickname", r.line())
	r.send("alice2\n")
	assert.Equal(t, "* alice2 joined", r.line())
}

func TestWhoAndPrivateMessages(t *testing.T) {
	ts := startServer(t, Config{})
	carol := join(t, ts.addr, "carol")
	alice := join(t, ts.addr, "alice")
	bob := join(t, ts.addr, "bob")
	carol.line()
	carol.line()
	alice.line()

	alice.send("/who\n")
	assert.Equal(t, []string{"alice", "bob", "carol"}, alice.multi())
	alice.send("/msg bob psst, over here\n")
	assert.Equal(t, "[private] alice: psst, over here", bob.line())
	assert.Equal(t, "OK sent to bob", alice.line(), "every command has exactly one reply")
	alice.send("/msg nobody hello\n")
	assert.Equal(t, "ERROR no such nickname nobody", alice.line())
	alice.send("/msg bob\n")
	assert.Equal(t, "ERROR usage: /msg <nick> <text>", alice.line())
	alice.send("/dance\n")
	assert.Contains(t, alice.line(), "ERROR unknown command /dance")
	alice.send("public\n")
	assert.Equal(t, "alice: public", carol.line(), "carol saw no private message first")
	assert.Equal(t, "alice: public", bob.line())
}

func TestUploadFilesDownload(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "files")
	require.NoError(t, os.MkdirAll(repo, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("s"), 0o644))
	require.NoError(t, os.Symlink("../secret", filepath.Join(repo, "link-out")))
	ts := startServer(t, Config{Repo: repo})
	alice := join(t, ts.addr, "alice")
	bob := join(t, ts.addr, "bob")
	alice.line()

	for _, size := range []int{0, 1, 10 << 20} {
		name := fmt.Sprintf("f%d.bin", size)
		data := make([]byte, size)
		_, _ = rand.Read(data)
		sum := sha256.Sum256(data)
		alice.send(fmt.Sprintf("/upload %s %d\n", name, size))
		alice.send(string(data))
		assert.Equal(t, "OK "+hex.EncodeToString(sum[:]), alice.line())

		bob.send("/download " + name + "\n")
		assert.Equal(t, fmt.Sprintf("FILE %s %d", name, size), bob.line())
		got := make([]byte, size)
		require.NoError(t, bob.c.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err := io.ReadFull(bob.br, got)
		require.NoError(t, err)
		assert.Equal(t, sum, sha256.Sum256(got))
	}
	bob.send("/files\n")
	assert.Equal(t, []string{"f0.bin", "f1.bin", "f10485760.bin"}, bob.multi())

	for _, name := range []string{"../../etc/passwd", "/etc/passwd", "link-out", "missing"} {
		bob.send("/download " + name + "\n")
		assert.True(t, strings.HasPrefix(bob.line(), "ERROR "), name)
	}
	bob.send("/upload ../x 2\nab")
	assert.Contains(t, bob.line(), "ERROR file name may not")
	bob.send("/get f1.bin\n")
	assert.Equal(t, NotAvailableGet, bob.line())

	bob.send("/upload long.bin 2\nabcdef")
	assert.Equal(t, "ERROR upload longer than announced; closing", bob.line())
	bob.closed()
	alice.line() // * bob left
	alice.send("/upload short.bin 10\nabc")
	alice.c.Close()
	require.Eventually(t, func() bool { return len(ts.Nicks()) == 0 }, 5*time.Second, 10*time.Millisecond)
	c := join(t, ts.addr, "carol")
	require.Eventually(t, func() bool {
		entries, err := os.ReadDir(repo)
		require.NoError(t, err)
		return len(entries) == 4 // three uploads and link-out; no temp files
	}, 5*time.Second, 10*time.Millisecond)
	c.send("/files\n")
	assert.Equal(t, []string{"f0.bin", "f1.bin", "f10485760.bin"}, c.multi())
}

func TestPerSenderOrder(t *testing.T) {
	ts := startServer(t, Config{})
	const clients, msgs = 10, 100
	rs := make([]*raw, clients)
	for i := range rs {
		rs[i] = join(t, ts.addr, fmt.Sprintf("c%d", i))
	}
	for i, r := range rs { // drain the joins of those after each (joins of different clients may interleave)
		var joins []string
		for j := i + 1; j < clients; j++ {
			joins = append(joins, r.line())
		}
		for j := i + 1; j < clients; j++ {
			assert.Contains(t, joins, fmt.Sprintf("* c%d joined", j))
		}
	}
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b strings.Builder
			for n := 0; n < msgs; n++ {
				fmt.Fprintf(&b, "%d\n", n)
			}
			_, err := io.WriteString(r.c, b.String())
			assert.NoError(t, err, "c%d", i)
		}()
	}
	errs := make(chan error, clients)
	for i, r := range rs {
		go func() {
			next := map[string]int{}
			_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for k := 0; k < (clients-1)*msgs; k++ {
				l, err := r.br.ReadString('\n')
				if err != nil {
					errs <- fmt.Errorf("c%d after %d lines: %w", i, k, err)
					return
				}
				nick, num, _ := strings.Cut(strings.TrimSpace(l), ": ")
				if nick == fmt.Sprintf("c%d", i) {
					errs <- fmt.Errorf("c%d got its own line", i)
					return
				}
				if num != strconv.Itoa(next[nick]) {
					errs <- fmt.Errorf("c%d: from %s got %s, want %d", i, nick, num, next[nick])
					return
				}
				next[nick]++
			}
			errs <- nil
		}()
	}
	wg.Wait()
	for range rs {
		assert.NoError(t, <-errs)
	}
}

// deadReader joins as nick with a tiny receive buffer and never reads.
func deadReader(t testing.TB, addr, nick string) *raw {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	r := &raw{t: t, c: c, br: bufio.NewReaderSize(c, 64<<10)}
	r.send(nick + "\n")
	require.Equal(t, "* "+nick+" joined", r.line())
	return r
}

func TestDeadReadersAreDroppedAtOnceAndTheOthersGetEverything(t *testing.T) {
	ts := startServer(t, Config{})                // the default queue: 1 MiB
	const dead, live, n, size = 10, 3, 8000, 1000 // 8 MB to each member: more than socket buffers and the queue hold
	var lives []*raw
	for i := 0; i < live; i++ {
		lives = append(lives, join(t, ts.addr, fmt.Sprintf("live%d", i)))
	}
	for i := 0; i < dead; i++ {
		deadReader(t, ts.addr, fmt.Sprintf("dead%d", i))
	}
	talker := join(t, ts.addr, "talker")
	for _, l := range lives { // the joins after each live member
		l.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for l.line() != "* talker joined" {
		}
	}
	text := strings.Repeat("x", size)
	go func() {
		w := bufio.NewWriter(talker.c)
		for i := 0; i < n; i++ {
			fmt.Fprintf(w, "%d %s\n", i, text)
		}
		_ = w.Flush()
	}()
	var wg sync.WaitGroup
	for _, l := range lives {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = l.c.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, left := 0, map[string]bool{}
			for got < n || len(left) < dead {
				s, err := l.br.ReadString('\n')
				if !assert.NoError(t, err, "after %d lines and %d leaves", got, len(left)) {
					return
				}
				s = strings.TrimSuffix(s, "\n")
				if num, ok := strings.CutPrefix(s, "talker: "); ok {
					if !assert.Equal(t, strconv.Itoa(got)+" "+text, num) {
						return
					}
					got++
				} else if strings.HasPrefix(s, "* dead") && strings.HasSuffix(s, " left") {
					left[s] = true
				}
			}
		}()
	}
	wg.Wait()
	assert.Len(t, ts.Nicks(), live+1, "only the dead readers were dropped")
}

func TestTimeoutsAndLongLines(t *testing.T) {
	ts := startServer(t, Config{JoinTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond, MaxLine: 100})
	silent := dialRaw(t, ts.addr)
	assert.Equal(t, "ERROR no nickname in time", silent.line())
	silent.closed()

	a := join(t, ts.addr, "a")
	a.send(strings.Repeat("y", 1<<20) + "\n")
	assert.Equal(t, "ERROR line too long (limit 100 bytes)", a.line())
	a.send("/upload f 99999999999\n")
	assert.Contains(t, a.line(), "over the limit")
	a.closed()

	b := join(t, ts.addr, "b")
	start := time.Now()
	assert.Equal(t, "ERROR idle timeout", b.line())
	b.closed()
	assert.Less(t, time.Since(start), 2*time.Second)
}

func TestGetSeam(t *testing.T) {
	var got GetRequest
	ts := startServer(t, Config{Get: func(_ context.Context, req GetRequest) (string, error) {
		got = req
		req.File.Close()
		return fmt.Sprintf("UDP 55001 %d x", req.Size), nil
	}})
	a := join(t, ts.addr, "a")
	a.send("/upload f 3\nabc")
	assert.Contains(t, a.line(), "OK ")
	a.send("/get f\n")
	assert.Equal(t, "UDP 55001 3 x", a.line())
	assert.Equal(t, "a", got.Nick)
	a.send("/get nope\n")
	assert.Equal(t, "ERROR no such file", a.line())
}

func TestStopsOnCancel(t *testing.T) {
	ts := startServer(t, Config{})
	a := join(t, ts.addr, "a")
	ts.stop()
	a.closed()
}

func TestClientScript(t *testing.T) {
	ts := startServer(t, Config{})
	local := filepath.Join(t.TempDir(), "hello.txt")
	require.NoError(t, os.WriteFile(local, []byte("hello\n"), 0o644))
	down := t.TempDir()
	bob := join(t, ts.addr, "bob")

	var out syncBuffer
	c, err := Dial(context.Background(), ts.addr, ClientConfig{DownloadDir: down}, &out)
	require.NoError(t, err)
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		done <- c.Run(context.Background(), "alice", []string{
			"hello bob", "/wait bob: hi", "/upload " + local, "/download hello.txt", "/wait saved",
		}, nil)
	}()
	assert.Equal(t, "* alice joined", bob.line())
	assert.Equal(t, "alice: hello bob", bob.line())
	bob.send("hi\n")
	require.NoError(t, <-done)
	assert.Equal(t, "* alice left", bob.line())
	sum := sha256.Sum256([]byte("hello\n"))
	h := hex.EncodeToString(sum[:])
	assert.Equal(t, strings.Join([]string{
		"* alice joined", "bob: hi", "OK " + h, "FILE hello.txt 6",
		"saved " + filepath.Join(down, "hello.txt") + " (6 bytes, sha256 " + h + ")", "BYE", "",
	}, "\n"), out.String())

	// A taken nickname is an error for a scripted client.
	c2, err := Dial(context.Background(), ts.addr, ClientConfig{}, io.Discard)
	require.NoError(t, err)
	err = c2.Run(context.Background(), "bob", nil, nil)
	assert.ErrorContains(t, err, "ERROR nickname taken")
	assert.False(t, errors.Is(err, io.EOF))
}

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
