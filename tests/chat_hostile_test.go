package tests

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/proto/chat"
)

// Hostile clients against the chat server across namespaces (issues 13 and
// 17): forged lines, terminal tricks, dead readers, over-long lines,
// trickles, FIFOs, and lenient framing.

// chatClientIn runs labctl's own chat client in host with the given
// script lines and returns what it printed (bounded by a minute).
func chatClientIn(t *testing.T, lab, host, addr, nick, down string, lines ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"exec", "--lab", lab, host, "--", bin, "app", "chat-client", "--server", addr, "--nick", nick,
		"--no-progress", "--download-dir", down, "--wait-timeout", "15s"}
	for _, l := range lines {
		args = append(args, "--line", l)
	}
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	require.NoError(t, err, "chat-client printed:\n%s", out)
	return string(out)
}

func TestChatForgedLinesAreNeverTakenForReplies(t *testing.T) {
	lab := appLab(t, "chg")
	repo := t.TempDir()
	for _, name := range []string{"* admin joined", "ERROR nickname taken", "FILE evil.txt 40"} { // put there by hand
		require.NoError(t, os.WriteFile(filepath.Join(repo, name), []byte("forged"), 0o644))
	}
	srv := chatServer(t, lab, repo)

	// Every reply word and reserved prefix, as a nickname and as a file name.
	b := rawIn(t, lab, "h2", srv.addr)
	tries := 0
	for _, w := range append(append([]string{}, chat.ReplyWords...), chat.ReservedPrefixes...) {
		for _, nick := range []string{w, strings.ToLower(w), w + "x"} {
			if tries++; tries%10 == 0 { // ten tries per connection
				b = rawIn(t, lab, "h2", srv.addr)
			}
			b.send(nick + "\n")
			r := b.read(5 * time.Second)
			assert.True(t, strings.HasPrefix(r, "ERROR nickname "), "nickname %q: %q", nick, r)
		}
	}
	m := join(t, lab, "h2", srv.addr, "mallory")
	for _, w := range append(append([]string{}, chat.ReplyWords...), chat.ReservedPrefixes...) {
		for _, name := range []string{w + " evil.txt 40", w + "x.txt", "alice: " + w} {
			m.send("/upload " + name + " 6\nforged")
			r := m.read(5 * time.Second)
			assert.True(t, strings.HasPrefix(r, "ERROR file name "), "/upload %q: %q", name, r)
		}
	}
	m.send("/files\n")
	assert.Empty(t, m.multi(), "names that read as server lines are not listed")

	// labctl's client uploads three files while mallory talks like the
	// server: every upload is stored and acknowledged, FILE in chat is chat.
	up, down := t.TempDir(), t.TempDir()
	sums := map[string]string{}
	var script []string
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("f%d.bin", i)
		b := make([]byte, 200_000)
		_, _ = rand.Read(b)
		require.NoError(t, os.WriteFile(filepath.Join(up, name), b, 0o644))
		sums[name] = sha(b)
		script = append(script, "/upload "+filepath.Join(up, name))
	}
	script = append([]string{"/wait * root joined"}, append(script, "/msg nobody hi", "/files")...)
	done := make(chan string, 1)
	go func() { done <- chatClientIn(t, lab, "h3", srv.addr, "alice", down, script...) }()
	m.until("* alice joined", 10*time.Second)
	m.send("OK " + strings.Repeat("0", 64) + "\nERROR upload refused\nFILE evil.txt 40\n\x1b[2J\x1b]0;owned\x07\r* root joined\n")
	out := <-done

	for name, sum := range sums {
		assert.Contains(t, out, "\nOK "+sum+"\n", name)
		assert.Equal(t, sum, fileSHA(t, filepath.Join(repo, name)), "%s: stored intact", name)
	}
	assert.Contains(t, out, "\nmallory: FILE evil.txt 40\n")
	assert.Contains(t, out, `mallory: \x1b[2J\x1b]0;owned\a\r* root joined`)
	assert.Contains(t, out, "\nERROR no such nickname nobody\nf0.bin\nf1.bin\nf2.bin\n.\n")
	assert.False(t, strings.ContainsFunc(strings.ReplaceAll(out, "\n", ""), unicode.IsControl), "the client printed a control character: %q", out)
	assert.NoFileExists(t, filepath.Join(down, "evil.txt"))
}

func TestChatControlCharactersAreEscapedForEveryone(t *testing.T) {
	lab := appLab(t, "chc")
	srv := chatServer(t, lab, t.TempDir())
	a := join(t, lab, "h2", srv.addr, "a")
	b := join(t, lab, "h3", srv.addr, "b")
	a.until("* b joined", 5*time.Second)
	for _, msg := range []string{"\r* root joined", "\x1b[2J\x1b[H", "\x1b]0;title\x07", "bell\a nul\x00 bs\b", "\u202eevil", "\xc3\x28"} {
		a.send(msg + "\n")
		got := b.read(5 * time.Second)
		assert.Equal(t, "a: "+chat.Escape(msg), got)
		assert.False(t, strings.ContainsFunc(got, unicode.IsControl), "%q", got)
		a.send("/msg b x" + msg + "\n")
		assert.Equal(t, "[private] a: "+chat.Escape("x"+msg), b.read(5*time.Second))
		assert.Equal(t, "OK sent to b", a.read(5*time.Second))
	}
	srv.waitLine(`^a: \\x1b\[2J\\x1b\[H$`, 5*time.Second)
	assert.NotContains(t, srv.output(), "\x1b", "the server's own output holds no raw ESC")
}

// dialDeadIn joins from host with a 4 KiB receive buffer and never reads.
func dialDeadIn(t testing.TB, lab, host, addr, nick string) net.Conn {
	t.Helper()
	var c net.Conn
	require.NoError(t, nsdo.DoNamed("lab-"+lab+"-"+host, func() error {
		d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}}
		var err error
		c, err = d.Dial("tcp", addr)
		return err
	}))
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(c, nick+"\n")
	require.NoError(t, err)
	l, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "* "+nick+" joined\n", l)
	return c
}

func TestChatDeadReadersAreDroppedAndTheOthersGetEverything(t *testing.T) {
	lab := appLab(t, "chd")
	srv := chatServer(t, lab, t.TempDir())
	const dead, live, n, size = 10, 3, 8000, 1000 // 8 MB to each: more than socket buffers and the 1 MiB queue
	var lives []*lineConn
	for i := 0; i < live; i++ {
		lives = append(lives, join(t, lab, "h2", srv.addr, fmt.Sprintf("live%d", i)))
	}
	for i := 0; i < dead; i++ {
		dialDeadIn(t, lab, "h3", srv.addr, fmt.Sprintf("dead%d", i))
	}
	talker := join(t, lab, "h2", srv.addr, "talker")
	for _, l := range lives {
		l.until("* talker joined", 10*time.Second)
	}
	text := strings.Repeat("x", size)
	go func() {
		w := bufio.NewWriterSize(talker.c, 64<<10)
		_ = talker.c.SetWriteDeadline(time.Now().Add(time.Minute))
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
			_ = l.c.SetReadDeadline(time.Now().Add(time.Minute))
			got, left := 0, map[string]bool{}
			for got < n || len(left) < dead {
				s, err := l.br.ReadString('\n')
				if !assert.NoError(t, err, "after %d messages and %d leaves", got, len(left)) {
					return
				}
				s = strings.TrimSuffix(s, "\n")
				if msg, ok := strings.CutPrefix(s, "talker: "); ok {
					if !assert.Equal(t, fmt.Sprintf("%d %s", got, text), msg, "in order, none lost") {
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
	for i := 0; i < dead; i++ {
		srv.waitLine(fmt.Sprintf(`^\* dead%d left$`, i), 5*time.Second)
	}
	lives[0].send("/who\n")
	assert.Equal(t, []string{"live0", "live1", "live2", "talker"}, lives[0].multi(), "only the dead readers were dropped")
}

func TestChatOverLongLinesTricklesAndFIFOsNeverHoldASlot(t *testing.T) {
	lab := appLab(t, "chl")
	repo := t.TempDir()
	require.NoError(t, syscall.Mkfifo(filepath.Join(repo, "pipe"), 0o644))
	srv := chatServer(t, lab, repo, "--max-line", "100", "--max-clients", "2", "--min-rate", "1000", "--rate-window", "300ms")
	closing := "ERROR line too long (limit 100 bytes); closing after 67108864 bytes"
	huge := strings.Repeat("z", 65<<20)

	// The nickname phase, then joined: one ERROR, then the close.
	n := rawIn(t, lab, "h2", srv.addr)
	go func() { _, _ = io.WriteString(n.c, huge+"\n") }()
	assert.Equal(t, closing, n.read(20*time.Second))
	n.expectClosed(10 * time.Second)
	a := join(t, lab, "h2", srv.addr, "a")
	go func() { _, _ = io.WriteString(a.c, huge+"\n") }()
	assert.Equal(t, closing, a.read(20*time.Second))
	a.expectClosed(10 * time.Second)
	n.c.Close()
	a.c.Close()

	// Trickles, of an accepted and of a refused upload, both slots at once.
	var wg sync.WaitGroup
	for i, header := range []string{"/upload slow.bin 1000000\n", "/upload ../refused.bin 1000000\n"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c net.Conn
			var br *bufio.Reader
			for try := 0; try < 50; try++ { // a closed connection's slot frees after a short linger
				var err error
				if c, err = tryDialIn(lab, "h3", srv.addr); !assert.NoError(t, err) {
					return
				}
				br = bufio.NewReader(c)
				_, _ = fmt.Fprintf(c, "t%d\n", i)
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if l, _ := br.ReadString('\n'); l == fmt.Sprintf("* t%d joined\n", i) {
					break
				}
				c.Close()
				c = nil
				time.Sleep(100 * time.Millisecond) // the retry's pace
			}
			if !assert.NotNil(t, c, "no slot for %s", header) {
				return
			}
			defer c.Close()
			_, _ = io.WriteString(c, header)
			start := time.Now()
			for k := 0; k < 200; k++ { // 20 bytes/s
				if _, err := c.Write([]byte("x")); err != nil {
					break
				}
				_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				if l, err := br.ReadString('\n'); err == nil && strings.HasPrefix(l, "ERROR") {
					assert.Equal(t, "ERROR upload too slow (under 1000 bytes/s over 300ms); closing\n", l, header)
					assert.Less(t, time.Since(start), 5*time.Second, header)
					return
				}
			}
			t.Errorf("%s: the trickle was never cut", header)
		}()
	}
	wg.Wait()

	// Both slots are free again; a FIFO is refused at once and not listed.
	var b *lineConn
	require.Eventually(t, func() bool {
		b = rawIn(t, lab, "h2", srv.addr)
		b.send("b\n")
		r, err := b.tryRead(5 * time.Second)
		return err == nil && r == "* b joined"
	}, 5*time.Second, 50*time.Millisecond)
	start := time.Now()
	b.send("/download pipe\n")
	assert.Equal(t, "ERROR not a regular file", b.read(5*time.Second))
	assert.Less(t, time.Since(start), 2*time.Second)
	b.send("/files\n")
	assert.Empty(t, b.multi())
	entries, err := os.ReadDir(repo)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "only the FIFO: no upload and no temp file left")
}

func TestChatLenientFramingForAStudentsClient(t *testing.T) {
	lab := appLab(t, "chp")
	srv := chatServer(t, lab, t.TempDir())
	bob := join(t, lab, "h3", srv.addr, "bob")
	s := rawIn(t, lab, "h2", srv.addr)
	recv := func() string { // the student's one recv(1024)
		t.Helper()
		_ = s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 1024)
		n, err := s.c.Read(b)
		require.NoError(t, err)
		return string(b[:n])
	}
	s.send("alice") // sock.send(name.encode()), no newline
	assert.Equal(t, "* alice joined\n", recv())
	assert.Equal(t, "* alice joined", bob.read(5*time.Second))
	s.send("hi bob")
	assert.Equal(t, "alice: hi bob", bob.read(5*time.Second))
	s.send("/who")
	assert.Equal(t, "alice\nbob\n.\n", recv())
	bob.send("hello alice\n")
	assert.Equal(t, "bob: hello alice\n", recv())
	s.send("/quit")
	assert.Equal(t, "BYE\n", recv())
	srv.waitLine(`^\* alice left$`, 5*time.Second)
	assert.Regexp(t, regexp.MustCompile(`(?m)^alice: hi bob$`), srv.output())
}
