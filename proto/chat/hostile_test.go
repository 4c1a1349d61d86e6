package chat

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reservedNicks is every reply word and reserved prefix in the forms a
// nickname could take: the word itself, in other cases, and as a prefix.
func reservedNicks() []string {
	var out []string
	for _, w := range ReplyWords {
		lower := strings.ToLower(w)
		out = append(out, w, lower, strings.ToUpper(lower[:1])+lower[1:], w+"x", w+"_bot", w+"-1")
	}
	for _, p := range ReservedPrefixes {
		out = append(out, p, p+"x", p+"admin")
	}
	return append(out, "[private]")
}

// reservedNames is the same for file names, with the examples.
func reservedNames() []string {
	out := []string{"* admin joined", "ERROR nickname taken", "FILE evil.txt 40", "[private] root: hi",
		"alice: hi", "bob:x.txt", "OK 0000", "BYE", "UDP 1 2 3"}
	for _, w := range ReplyWords {
		out = append(out, w, strings.ToLower(w), w+".txt", w+" x", strings.ToLower(w)+" x")
	}
	for _, p := range ReservedPrefixes {
		out = append(out, p+"x", p+" x")
	}
	return out
}

func TestEveryReservedWordAndPrefixIsRefusedAsNickAndFileName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "files")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, name := range reservedNames() { // placed by hand: neither listed nor served
		if !strings.HasPrefix(name, ".") && !strings.Contains(name, "/") {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("forged"), 0o644))
		}
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "fine.txt"), []byte("ok"), 0o644))
	ts := startServer(t, Config{Repo: dir})

	var r *raw
	for i, nick := range reservedNicks() {
		if i%maxNickTries == 0 { // the tries one connection has
			r = dialRaw(t, ts.addr)
		}
		r.send(nick + "\n")
		l := r.line()
		assert.True(t, strings.HasPrefix(l, "ERROR nickname "), "nickname %q: %q", nick, l)
	}
	r = join(t, ts.addr, "alice")
	for _, name := range reservedNames() {
		r.send(fmt.Sprintf("/upload %s 6\nforged", name))
		l := r.line()
		assert.True(t, strings.HasPrefix(l, "ERROR "), "/upload %q: %q", name, l)
		r.send("/download " + name + "\n")
		l = r.line()
		assert.True(t, strings.HasPrefix(l, "ERROR "), "/download %q: %q", name, l)
	}
	r.send("/files\n")
	assert.Equal(t, []string{"fine.txt"}, r.multi(), "only the name that cannot read as another line is listed")
	r.send("/who\n")
	assert.Equal(t, []string{"alice"}, r.multi(), "still in step after every refused upload")
}

// TestReplyFramingNeverTakesChatForAReply is the script: another
// member talks like the server while the client uploads; every upload is
// stored and acknowledged, and a FILE line in chat never starts a download.
func TestReplyFramingNeverTakesChatForAReply(t *testing.T) {
	ts := startServer(t, Config{})
	mallory := join(t, ts.addr, "mallory")
	var out syncBuffer
	down := t.TempDir()
	c, err := Dial(context.Background(), ts.addr, ClientConfig{DownloadDir: down}, &out)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Join(context.Background(), "alice"))
	assert.Equal(t, "* alice joined", mallory.line())

	files := map[string]string{}
	for i := 0; i < 3; i++ {
		data := strings.Repeat(fmt.Sprint(i), 100000)
		p := filepath.Join(t.TempDir(), fmt.Sprintf("f%d.txt", i))
		require.NoError(t, os.WriteFile(p, []byte(data), 0o644))
		sum := sha256.Sum256([]byte(data))
		files[filepath.Base(p)] = hex.EncodeToString(sum[:])
		// The forgeries arrive before the real answer.
		from := c.mark()
		mallory.send("OK " + strings.Repeat("0", 64) + "\nERROR upload refused\nFILE evil.txt 40\n")
		_, _, err := c.await(context.Background(), from, 5*time.Second, func(l string) bool { return l == "mallory: FILE evil.txt 40" })
		require.NoError(t, err)
		require.NoError(t, c.Upload(context.Background(), p, ""), "upload %d", i)
	}
	// /msg to nobody, then an upload: the ERROR goes to the /msg.
	require.NoError(t, c.Send("/msg nobody hi"))
	p := filepath.Join(t.TempDir(), "last.txt")
	require.NoError(t, os.WriteFile(p, []byte("last"), 0o644))
	require.NoError(t, c.Upload(context.Background(), p, ""))
	mallory.send("/files\n")
	assert.Equal(t, []string{"f0.txt", "f1.txt", "f2.txt", "last.txt"}, mallory.multi(), "every upload was stored")
	for name, sum := range files {
		b, err := os.ReadFile(filepath.Join(ts.store.Dir(), name))
		require.NoError(t, err)
		got := sha256.Sum256(b)
		assert.Equal(t, sum, hex.EncodeToString(got[:]), name)
	}
	_, err = os.Stat(filepath.Join(down, "evil.txt"))
	assert.True(t, os.IsNotExist(err), "a FILE line from a member is chat, not a download")
	assert.Contains(t, out.String(), "mallory: FILE evil.txt 40\n")
	assert.Contains(t, out.String(), "ERROR no such nickname nobody\n")

	// Command hands back the reply to its own command, by the framing.
	l, err := c.Command(context.Background(), "/msg mallory hi")
	require.NoError(t, err)
	assert.Equal(t, "OK sent to mallory", l)
	l, err = c.Command(context.Background(), "/who")
	require.NoError(t, err)
	assert.Equal(t, ".", l, "a listing's reply is its end; its entries were printed")
	_, err = c.Command(context.Background(), "not a command")
	assert.Error(t, err)
}

func TestControlCharactersAreEscapedInMessagesAndPrivateMessages(t *testing.T) {
	var srvOut syncBuffer
	ts := startServer(t, Config{Out: &srvOut})
	a := join(t, ts.addr, "a")
	b := join(t, ts.addr, "b")
	a.line()
	for _, msg := range []string{"\r* root joined", "\x1b[2J\x1b]0;owned\x07", "nul\x00bs\b del\x7f", "\u202eevil", "tab\there", "\xff\xfe"} {
		a.send(msg + "\n")
		got := b.line()
		assert.Equal(t, "a: "+Escape(msg), got)
		assert.False(t, strings.ContainsFunc(got, func(r rune) bool { return unicode.IsControl(r) || invisibleControl(r) }), "%q", got)
		a.send("/msg b " + msg + "\n")
		assert.Equal(t, "[private] a: "+Escape(strings.TrimSpace(msg)), b.line())
		assert.Equal(t, "OK sent to b", a.line())
	}
	a.send("/msg \x1b[2Jnobody hi\n")
	assert.Equal(t, `ERROR no such nickname \x1b[2Jnobody`, a.line())
	a.send("/\x1b[31mred\n")
	assert.Contains(t, a.line(), `unknown command /\x1b[31mred`)
	require.Eventually(t, func() bool { return strings.Contains(srvOut.String(), `a: \r* root joined`) }, 5*time.Second, 10*time.Millisecond)
	assert.NotContains(t, srvOut.String(), "\x1b")
	assert.NotContains(t, srvOut.String(), "\r")
}

// step of a fake server: wait for a line from the client holding wait
// (if set), then write.
type step struct{ wait, write string }

// fakeServer accepts one connection, plays steps on it and half-closes
// it; it returns the address.
func fakeServer(t *testing.T, steps ...step) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		for _, s := range steps {
			for s.wait != "" {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if strings.Contains(l, s.wait) {
					break
				}
			}
			_, _ = io.WriteString(c, s.write)
		}
		_ = c.(*net.TCPConn).CloseWrite()
		_, _ = io.Copy(io.Discard, br)
	}()
	return ln.Addr().String()
}

func TestClientNeverPrintsAControlCharacterAndReadsRepliesByFraming(t *testing.T) {
	addr := fakeServer(t,
		step{wait: "alice", write: "* alice joined\n" +
			"bob: \x1b[2J\r* root joined\x07\n" +
			"FILE evil.txt 4\n" + // no /download is due: a line, not a download
			"\x1b]0;title\x07\n"}, // no listing is due: a line
		step{wait: "/who", write: "alice\n" +
			"FILE evil.txt 4\n" + // inside a listing: an entry, not a download
			".\n"},
		step{wait: "/quit", write: "BYE\n"})
	var out syncBuffer
	down := t.TempDir()
	c, err := Dial(context.Background(), addr, ClientConfig{DownloadDir: down}, &out)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Join(context.Background(), "alice"))
	l, err := c.Command(context.Background(), "/who")
	require.NoError(t, err)
	assert.Equal(t, ".", l)
	require.NoError(t, c.Quit(context.Background()))
	got := out.String()
	assert.Equal(t, "* alice joined\n"+`bob: \x1b[2J\r* root joined\a`+"\nFILE evil.txt 4\n"+`\x1b]0;title\a`+
		"\nalice\nFILE evil.txt 4\n.\nBYE\n", got)
	assert.False(t, strings.ContainsFunc(strings.ReplaceAll(got, "\n", ""), unicode.IsControl))
	entries, err := os.ReadDir(down)
	require.NoError(t, err)
	assert.Empty(t, entries, "no download was started")
}

func TestOverLongLinesGetOneErrorBeforeTheCloseInEveryPhase(t *testing.T) {
	ts := startServer(t, Config{MaxLine: 100})
	huge := strings.Repeat("z", 65<<20) // past the 64 MiB read to stay in step

	// The nickname phase.
	r := dialRaw(t, ts.addr)
	r.send(strings.Repeat("n", 1<<20) + "\n")
	assert.Equal(t, "ERROR nickname longer than 32 characters", r.line(), "up to 64 MiB: answered, in step")
	go func() { _, _ = io.WriteString(r.c, huge+"\n") }()
	assert.Equal(t, "ERROR line too long (limit 100 bytes); closing after 67108864 bytes", r.line())
	r.closed()

	// Joined.
	a := join(t, ts.addr, "a")
	a.send(strings.Repeat("y", 1<<20) + "\n")
	assert.Equal(t, "ERROR line too long (limit 100 bytes)", a.line())
	go func() { _, _ = io.WriteString(a.c, huge+"\n") }()
	assert.Equal(t, "ERROR line too long (limit 100 bytes); closing after 67108864 bytes", a.line())
	a.closed()
}

// TestLenientFraming: a student's client sends without newlines and reads
// each reply with one recv.
func TestLenientFraming(t *testing.T) {
	ts := startServer(t, Config{Pause: 100 * time.Millisecond})
	bob := join(t, ts.addr, "bob")
	r := dialRaw(t, ts.addr)
	recv := func() string { // one recv(1024)
		t.Helper()
		require.NoError(t, r.c.SetReadDeadline(time.Now().Add(5*time.Second)))
		b := make([]byte, 1024)
		n, err := r.c.Read(b)
		require.NoError(t, err)
		return string(b[:n])
	}
	r.send("alice")
	assert.Equal(t, "* alice joined\n", recv())
	assert.Equal(t, "* alice joined", bob.line())
	r.send("hello bob")
	assert.Equal(t, "alice: hello bob", bob.line())
	r.send("/who")
	assert.Equal(t, "alice\nbob\n.\n", recv(), "a listing is one segment")
	r.send("/msg bob hi")
	assert.Equal(t, "OK sent to bob\n", recv())
	assert.Equal(t, "[private] alice: hi", bob.line())
	r.send("/quit")
	assert.Equal(t, "BYE\n", recv())
}

func TestTricklingUploadsAreCutAcceptedOrRefused(t *testing.T) {
	ts := startServer(t, Config{MinRate: 1000, RateWindow: 300 * time.Millisecond, MaxClients: 2})
	for _, header := range []string{"/upload slow.bin 100000\n", "/upload ../refused.bin 100000\n"} {
		r := join(t, ts.addr, "t")
		r.send(header)
		start := time.Now()
		var got string
		for i := 0; i < 100 && got == ""; i++ { // one byte every 50 ms: 20 B/s
			if _, err := r.c.Write([]byte("x")); err != nil {
				break
			}
			_ = r.c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if l, err := r.br.ReadString('\n'); err == nil {
				got = l
			}
		}
		assert.Equal(t, "ERROR upload too slow (under 1000 bytes/s over 300ms); closing\n", got, header)
		assert.Less(t, time.Since(start), 3*time.Second, "%s: the trickle is cut after about two windows", header)
		r.closed()
		require.Eventually(t, func() bool { return len(ts.Nicks()) == 0 }, 5*time.Second, 10*time.Millisecond)
	}
	entries, err := os.ReadDir(ts.store.Dir())
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing stored, no temp file left")
}

func TestFIFOsAreNeverServed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "files")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644))
	require.NoError(t, os.Symlink("pipe", filepath.Join(dir, "link-to-pipe")))
	ts := startServer(t, Config{Repo: dir, Get: func(_ context.Context, req GetRequest) (string, error) {
		req.File.Close()
		return "UDP 55001 0 x", nil
	}})
	a := join(t, ts.addr, "a")
	for _, name := range []string{"pipe", "link-to-pipe"} {
		for _, cmd := range []string{"/download ", "/get "} {
			start := time.Now()
			a.send(cmd + name + "\n")
			assert.Equal(t, "ERROR not a regular file", a.line(), cmd+name)
			assert.Less(t, time.Since(start), time.Second)
		}
	}
	a.send("/files\n")
	assert.Empty(t, a.multi())
	ts.stop() // and SIGTERM-style shutdown does not hang on it
}

// TestClientReadsAServerThatSendsNoNewline: a student's server sends its
// lines without "\n"; the client prints each after the pause, not never.
func TestClientReadsAServerThatSendsNoNewline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	printed := make(chan struct{}, 2)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for _, msg := range []string{"* alice joined", "bob: hi"} {
			_, _ = io.WriteString(c, msg)
			select { // the client shows it before anything else arrives
			case <-printed:
			case <-time.After(5 * time.Second):
			}
		}
		_ = c.(*net.TCPConn).CloseWrite()
		_, _ = io.Copy(io.Discard, c)
	}()
	var out syncBuffer
	c, err := Dial(context.Background(), ln.Addr().String(), ClientConfig{Pause: 100 * time.Millisecond}, &out)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Join(context.Background(), "alice"))
	printed <- struct{}{}
	_, _, err = c.await(context.Background(), 0, 5*time.Second, func(l string) bool { return l == "bob: hi" })
	require.NoError(t, err)
	printed <- struct{}{}
	<-c.Done()
	assert.Equal(t, "* alice joined\nbob: hi\n", out.String())
}

func TestClientSaysWhyTheServerClosed(t *testing.T) {
	addr := fakeServer(t, step{write: FullMessage + "\n"})
	c, err := Dial(context.Background(), addr, ClientConfig{}, io.Discard)
	require.NoError(t, err)
	defer c.Close()
	<-c.Done() // the refusal came before the nickname was sent
	err = c.Join(context.Background(), "alice")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "server full")
}
