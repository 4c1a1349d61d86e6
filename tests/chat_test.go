package tests

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// join connects from host and joins the chat as nick.
func join(t *testing.T, lab, host, addr, nick string) *lineConn {
	t.Helper()
	l := rawIn(t, lab, host, addr)
	l.send(nick + "\n")
	require.Equal(t, "* "+nick+" joined", l.read(5*time.Second))
	return l
}

// until reads lines until one equals want and returns those before it.
func (l *lineConn) until(want string, timeout time.Duration) []string {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	var before []string
	for i := 0; i < 100000; i++ {
		r, err := l.tryRead(time.Until(deadline))
		require.NoError(l.t, err, "waiting for %q after %q", want, before)
		if r == want {
			return before
		}
		before = append(before, r)
	}
	l.t.Fatalf("no %q", want)
	return nil
}

// multi reads lines up to ".".
func (l *lineConn) multi() []string {
	l.t.Helper()
	var lines []string
	for r := l.read(5 * time.Second); r != "."; r = l.read(5 * time.Second) {
		lines = append(lines, r)
	}
	return lines
}

func chatServer(t *testing.T, lab, repo string, args ...string) *server {
	t.Helper()
	return startServer(t, lab, 5002, append([]string{"chat-server", "--repo", repo}, args...)...)
}

func TestChatNicknamesBroadcastWhoMsgAndQuit(t *testing.T) {
	lab := appLab(t, "chn")
	srv := chatServer(t, lab, t.TempDir())
	a := join(t, lab, "h2", srv.addr, "alice")

	b := rawIn(t, lab, "h3", srv.addr)
	for nick, want := range map[string]string{
		"alice":                   "ERROR nickname taken",
		"":                        "ERROR empty nickname",
		"bad nick!":               "ERROR nickname may contain only letters, digits, '_' and '-'",
		strings.Repeat("n", 33):   "ERROR nickname longer than 32 characters",
		"../../etc/passwd":        "ERROR nickname may contain only letters, digits, '_' and '-'",
		"bo\x00b":                 "ERROR nickname may contain only letters, digits, '_' and '-'",
		"alice\tx":                "ERROR nickname may contain only letters, digits, '_' and '-'",
		strings.Repeat("ü", 10):   "ERROR nickname may contain only letters, digits, '_' and '-'",
		strings.Repeat("x", 5000): "ERROR ",
	} {
		b.send(nick + "\n")
		r := b.read(5 * time.Second)
		assert.True(t, strings.HasPrefix(r, want), "nickname of %d bytes %.40q: %q", len(nick), nick, r)
	}
	b.send("bob\n")
	assert.Equal(t, "* bob joined", b.read(5*time.Second))
	assert.Equal(t, "* bob joined", a.read(5*time.Second))

	// Broadcast goes to the others only; /who answers the asker only.
	a.send("hello, bob\n/who\n")
	assert.Equal(t, []string{"alice", "bob"}, a.multi(), "alice gets /who, not her own line")
	assert.Equal(t, "alice: hello, bob", b.read(5*time.Second))

	b.send("/msg alice psst\n/msg zed hi\n//slash at the start\n/get x.bin\n/bogus\n\n/who\n")
	assert.Equal(t, "OK sent to alice", b.read(5*time.Second), "each command has exactly one reply")
	assert.Equal(t, "ERROR no such nickname zed", b.read(5*time.Second))
	assert.Equal(t, "ERROR no such file", b.read(5*time.Second), "/get of a missing file")
	assert.True(t, strings.HasPrefix(b.read(5*time.Second), "ERROR unknown command"))
	assert.Equal(t, []string{"alice", "bob"}, b.multi(), "a blank line is ignored")
	assert.Equal(t, "[private] bob: psst", a.read(5*time.Second))
	assert.Equal(t, "bob: /slash at the start", a.read(5*time.Second))

	c := join(t, lab, "h3", srv.addr, "carol")
	assert.Equal(t, "* carol joined", a.read(5*time.Second))
	assert.Equal(t, "* carol joined", b.read(5*time.Second))
	a.send("/msg carol only you\n")
	assert.Equal(t, "[private] alice: only you", c.read(5*time.Second))
	assert.Equal(t, "OK sent to carol", a.read(5*time.Second))

	b.send("/quit\n")
	assert.Equal(t, "BYE", b.read(5*time.Second))
	b.expectClosed(5 * time.Second)
	assert.Equal(t, "* bob left", a.read(5*time.Second))
	assert.Equal(t, "* bob left", c.read(5*time.Second))
	// A vanished client leaves too.
	require.NoError(t, c.c.Close())
	assert.Equal(t, "* carol left", a.read(5*time.Second))
	a.send("/who\n")
	assert.Equal(t, []string{"alice"}, a.multi())
	// bob's nickname is free again.
	join(t, lab, "h2", srv.addr, "bob")
}

func TestChatPerSenderOrderAcrossTenClients(t *testing.T) {
	lab := appLab(t, "cho")
	srv := chatServer(t, lab, t.TempDir())
	const clients, msgs = 10, 200
	conns := make([]*lineConn, clients)
	for i := range conns {
		host := []string{"h2", "h3"}[i%2]
		conns[i] = join(t, lab, host, srv.addr, fmt.Sprintf("u%d", i))
	}
	// Everyone has seen the last join before anyone talks.
	for i := 0; i < clients-1; i++ {
		conns[i].until(fmt.Sprintf("* u%d joined", clients-1), 10*time.Second)
	}

	type result struct {
		last    [clients]int
		count   int
		badLine string
	}
	results := make([]result, clients)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(2)
		go func() { // the sender: one burst of numbered lines
			defer wg.Done()
			var sb strings.Builder
			for n := 1; n <= msgs; n++ {
				fmt.Fprintf(&sb, "m %d %d\n", i, n)
			}
			_ = c.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			_, _ = io.WriteString(c.c, sb.String())
		}()
		go func() { // the receiver: every other sender's lines, in order
			defer wg.Done()
			r := &results[i]
			for j := range r.last {
				r.last[j] = 0
			}
			_ = c.c.SetReadDeadline(time.Now().Add(30 * time.Second))
			for r.count < (clients-1)*msgs {
				line, err := c.br.ReadString('\n')
				if err != nil {
					r.badLine = "read: " + err.Error()
					return
				}
				var from, n int
				var nick string
				if _, err := fmt.Sscanf(line, "%s m %d %d\n", &nick, &from, &n); err != nil || from < 0 || from >= clients || from == i {
					r.badLine = line
					return
				}
				if n != r.last[from]+1 {
					r.badLine = fmt.Sprintf("from u%d: %d after %d", from, n, r.last[from])
					return
				}
				r.last[from] = n
				r.count++
			}
		}()
	}
	wg.Wait()
	for i, r := range results {
		assert.Empty(t, r.badLine, "client u%d", i)
		assert.Equal(t, (clients-1)*msgs, r.count, "client u%d got every line", i)
	}
}

func TestChatFilesOf0B1B10MBArriveIntact(t *testing.T) {
	lab := appLab(t, "chf")
	repo := t.TempDir()
	srv := chatServer(t, lab, repo)
	up := join(t, lab, "h2", srv.addr, "up")
	down := join(t, lab, "h3", srv.addr, "down")
	up.until("* down joined", 5*time.Second)

	sizes := map[string]int{"zero.bin": 0, "one.bin": 1, "ten-mb.bin": 10_000_000}
	want := map[string]string{}
	for name, size := range sizes {
		b := make([]byte, size)
		_, _ = rand.Read(b)
		want[name] = sha(b)
		up.send(fmt.Sprintf("/upload %s %d\n", name, size))
		_ = up.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		_, err := up.c.Write(b)
		require.NoError(t, err)
		assert.Equal(t, "OK "+want[name], up.read(20*time.Second), name)
		assert.Equal(t, want[name], fileSHA(t, filepath.Join(repo, name)), "%s: stored copy", name)
	}
	down.send("/files\n")
	assert.Equal(t, []string{"one.bin", "ten-mb.bin", "zero.bin"}, down.multi())
	for name, size := range sizes {
		down.send("/download " + name + "\n")
		assert.Equal(t, fmt.Sprintf("FILE %s %d", name, size), down.read(5*time.Second))
		h := sha256.New()
		_ = down.c.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, err := io.CopyN(h, down.br, int64(size))
		require.NoError(t, err, name)
		assert.Equal(t, int64(size), n)
		assert.Equal(t, want[name], hex.EncodeToString(h.Sum(nil)), "%s: SHA-256 on arrival", name)
	}
	// Still in step after the raw bytes.
	down.send("/who\n")
	assert.Equal(t, []string{"down", "up"}, down.multi())
}

func TestChatRefusesNamesOutsideAndBrokenUploadsLeaveNothing(t *testing.T) {
	lab := appLab(t, "chs")
	base := t.TempDir()
	repo := filepath.Join(base, "files")
	require.NoError(t, os.Mkdir(repo, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(base, "secret.txt"), []byte("secret\n"), 0o644))
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(repo, "passwd")))
	require.NoError(t, os.Symlink("../secret.txt", filepath.Join(repo, "up")))
	srv := chatServer(t, lab, repo, "--io-timeout", "1s")
	a := join(t, lab, "h2", srv.addr, "a")

	for _, name := range []string{"../../etc/passwd", "/etc/passwd", "../secret.txt", "..", "passwd", "up"} {
		a.send("/download " + name + "\n")
		r := a.read(5 * time.Second)
		assert.True(t, strings.HasPrefix(r, "ERROR "), "/download %q: %q", name, r)
	}
	a.send("/files\n")
	assert.Empty(t, a.multi(), "links out are not listed")
	for _, name := range []string{"../evil.txt", "/tmp/evil.txt"} {
		a.send("/upload " + name + " 5\nevil!")
		r := a.read(5 * time.Second)
		assert.True(t, strings.HasPrefix(r, "ERROR "), "/upload %q: %q", name, r)
	}
	_, err := os.Stat(filepath.Join(base, "evil.txt"))
	assert.True(t, os.IsNotExist(err))

	// Cut short: the uploader vanishes halfway.
	b := join(t, lab, "h3", srv.addr, "b")
	a.until("* b joined", 5*time.Second)
	b.send("/upload cut.bin 1000000\n" + strings.Repeat("x", 500_000))
	require.NoError(t, b.c.Close())
	a.until("* b left", 10*time.Second)

	// Longer than announced.
	c := join(t, lab, "h3", srv.addr, "c")
	a.until("* c joined", 5*time.Second)
	c.send("/upload long.bin 10\n" + strings.Repeat("y", 30))
	assert.Equal(t, "ERROR upload longer than announced; closing", c.read(5*time.Second))
	c.expectClosed(5 * time.Second)
	a.until("* c left", 5*time.Second)

	// Stalled past the per-read timeout.
	d := join(t, lab, "h3", srv.addr, "d")
	a.until("* d joined", 5*time.Second)
	d.send("/upload stall.bin 100\n" + strings.Repeat("z", 10))
	assert.Equal(t, "ERROR upload timed out", d.read(10*time.Second))
	a.until("* d left", 5*time.Second)

	a.send("/files\n")
	assert.Empty(t, a.multi())
	assert.ElementsMatch(t, []string{"passwd", "up"}, repoEntries(t, repo), "no file and no temp file left")
}

func TestChatIdleSlowAndVanishingClients(t *testing.T) {
	lab := appLab(t, "chi")
	repo := t.TempDir()
	b := make([]byte, 10_000_000)
	_, _ = rand.Read(b)
	require.NoError(t, os.WriteFile(filepath.Join(repo, "big.bin"), b, 0o644))
	srv := chatServer(t, lab, repo, "--join-timeout", "1s", "--idle-timeout", "2s", "--max-clients", "3",
		"--queue-bytes", "65536")

	// No nickname in time.
	mute := rawIn(t, lab, "h2", srv.addr)
	// Joined, then silent.
	idle := join(t, lab, "h2", srv.addr, "idle")
	// Joined, vanishing mid-download.
	v := join(t, lab, "h3", srv.addr, "vanish")
	full := rawIn(t, lab, "h3", srv.addr)
	assert.Equal(t, "ERROR server full, try later", full.read(5*time.Second))
	full.expectClosed(5 * time.Second)

	v.send("/download big.bin\n")
	assert.Equal(t, "FILE big.bin 10000000", v.read(5*time.Second))
	_, err := io.ReadFull(v.br, make([]byte, 100_000))
	require.NoError(t, err)
	require.NoError(t, v.c.Close())
	srv.waitLine(`^\* vanish left$`, 10*time.Second)

	assert.Equal(t, "ERROR no nickname in time", mute.read(5*time.Second))
	mute.expectClosed(5 * time.Second)
	idle.until("ERROR idle timeout", 5*time.Second)
	idle.expectClosed(5 * time.Second)
	srv.waitLine(`^\* idle left$`, 5*time.Second)

	// A reader that never reads is cut off as soon as its queue is full;
	// the flooder is never held up by it.
	slow := join(t, lab, "h2", srv.addr, "slow")
	flood := join(t, lab, "h3", srv.addr, "flood")
	line := strings.Repeat("f", 4000) + "\n"
	sent, left := make(chan error, 1), make(chan struct{})
	go func() {
		_ = flood.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		var err error
		for i := 0; i < 5000 && err == nil; i++ {
			select {
			case <-left:
				sent <- nil
				return
			default:
			}
			_, err = io.WriteString(flood.c, line)
		}
		sent <- err
	}()
	srv.waitLine(`^\* slow left$`, 15*time.Second)
	close(left)
	require.NoError(t, <-sent)
	flood.until("* slow left", 10*time.Second)
	// The slow reader was told why, after what was in flight, and closed.
	_ = slow.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(slow.br)
	require.NoError(t, err)
	assert.Contains(t, string(rest), "ERROR disconnected: outbound queue overflow (reading too slowly)\n")

	// Every slot is free again for newcomers (a slot frees just after the
	// close the slow reader saw).
	for i := 0; i < 2; i++ {
		nick := "new" + strconv.Itoa(i)
		require.Eventually(t, func() bool {
			l := rawIn(t, lab, "h2", srv.addr)
			l.send(nick + "\n")
			r, err := l.tryRead(5 * time.Second)
			return err == nil && r == "* "+nick+" joined"
		}, 5*time.Second, 50*time.Millisecond)
	}
}

func TestChatThousandConnectingClientsNeitherKillNorStarve(t *testing.T) {
	lab := appLab(t, "chk")
	srv := chatServer(t, lab, t.TempDir(), "--max-clients", "20", "--join-timeout", "2s")
	a := join(t, lab, "h2", srv.addr, "a")
	b := join(t, lab, "h2", srv.addr, "b")
	a.until("* b joined", 5*time.Second)

	const flood, workers = 1000, 50
	var refused, waiting, failed atomic.Int64
	next := make(chan struct{}, flood)
	for i := 0; i < flood; i++ {
		next <- struct{}{}
	}
	close(next)
	stop := make(chan struct{})
	var fw sync.WaitGroup
	for w := 0; w < workers; w++ {
		fw.Add(1)
		go func() {
			defer fw.Done()
			for range next {
				c, err := tryDialIn(lab, "h3", srv.addr)
				if err != nil {
					failed.Add(1)
					continue
				}
				_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
				l, err := bufio.NewReader(c).ReadString('\n')
				c.Close()
				switch {
				case err == nil && l == "ERROR server full, try later\n":
					refused.Add(1)
				case err != nil: // admitted under the cap, waiting for a nickname
					waiting.Add(1)
				default:
					failed.Add(1)
				}
			}
		}()
	}
	go func() { fw.Wait(); close(stop) }()

	// a and b play ping-pong through the server while the flood lasts.
	var rounds int
	var worst time.Duration
	for n := 0; n < 100000; n++ {
		select {
		case <-stop:
			n = 100000
			continue
		default:
		}
		t0 := time.Now()
		a.send(fmt.Sprintf("ping %d\n", n))
		require.Equal(t, fmt.Sprintf("a: ping %d", n), b.read(5*time.Second))
		b.send(fmt.Sprintf("pong %d\n", n))
		require.Equal(t, fmt.Sprintf("b: pong %d", n), a.read(5*time.Second))
		worst = max(worst, time.Since(t0))
		rounds++
	}
	t.Logf("flood: %d refused, %d admitted and dropped, %d failed; %d ping-pongs, worst %v",
		refused.Load(), waiting.Load(), failed.Load(), rounds, worst)
	assert.Zero(t, failed.Load())
	assert.Greater(t, refused.Load(), int64(0))
	assert.Greater(t, rounds, 2)
	assert.Less(t, worst, 2*time.Second, "joined clients are not starved")
	// The server is still up and admits newcomers.
	c := join(t, lab, "h3", srv.addr, "c")
	a.until("* c joined", 5*time.Second)
	c.send("/who\n")
	assert.Equal(t, []string{"a", "b", "c"}, c.multi())
}
