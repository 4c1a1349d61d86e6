package chat

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/labctl/labctl/proto/rudp"
)

// freePool finds two free UDP ports for a pool.
func freePool(t *testing.T) *rudp.Pool {
	t.Helper()
	for lo := 46001; lo < 46400; lo += 2 {
		p, err := rudp.NewPool("127.0.0.1", lo, lo+1)
		require.NoError(t, err)
		_, rel1, err1 := p.Acquire(context.Background())
		_, rel2, err2 := p.Acquire(context.Background())
		if err1 == nil {
			rel1()
		}
		if err2 == nil {
			rel2()
		}
		if err1 == nil && err2 == nil {
			return p
		}
	}
	t.Skip("no two free UDP ports")
	return nil
}

func TestGetOverUDP(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "files")
	require.NoError(t, os.MkdirAll(repo, 0o755))
	data := make([]byte, 700_000)
	_, _ = rand.Read(data)
	require.NoError(t, os.WriteFile(filepath.Join(repo, "f.bin"), data, 0o644))
	outside := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(outside, []byte("x"), 0o644))
	require.NoError(t, os.Symlink(outside, filepath.Join(repo, "link")))
	require.NoError(t, os.Mkdir(filepath.Join(repo, "dir"), 0o755))

	srv := rudp.NewServer(freePool(t), rudp.SendConfig{Logger: slog.New(slog.DiscardHandler)}, true)
	ts := startServer(t, Config{Repo: repo, Get: RUDPGet(srv)})
	down := t.TempDir()
	var out syncBuffer
	c, err := Dial(context.Background(), ts.addr, ClientConfig{DownloadDir: down}, &out)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Run(context.Background(), "alice", []string{
		"/get f.bin", "/get f.bin seed", "/get nope", "/get link", "/get dir", "/get ../f.bin", "/get f.bin bogus",
	}, nil))
	srv.Wait()
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 1+4+5+1, out.String())
	for i, algo := range []string{"sack", "seed"} {
		assert.Equal(t, "UDP", strings.Fields(lines[1+2*i])[0])
		assert.True(t, strings.HasSuffix(lines[1+2*i], " 700000 "+h), lines[1+2*i])
		assert.Contains(t, lines[2+2*i], "saved "+filepath.Join(down, "f.bin")+" over UDP (700000 bytes, sha256 "+h+", "+algo+"): ")
		assert.Contains(t, lines[2+2*i], "Mbit/s")
	}
	assert.Equal(t, []string{"ERROR no such file", "ERROR name leads outside the repository", "ERROR not a regular file",
		"ERROR file name may not contain '/' or '\\' (the repository is flat)", "ERROR no such file", "BYE"}, lines[5:])
	got, err := os.ReadFile(filepath.Join(down, "f.bin"))
	require.NoError(t, err)
	assert.Equal(t, data, got)
}

func TestGetPoolFull(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "files")
	require.NoError(t, os.MkdirAll(repo, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(repo, "f"), []byte("abc"), 0o644))
	pool := freePool(t)
	// Hold both ports, as two transfers in progress would.
	for range 2 {
		_, rel, err := pool.Acquire(context.Background())
		require.NoError(t, err)
		defer rel()
	}
	srv := rudp.NewServer(pool, rudp.SendConfig{}, true)
	ts := startServer(t, Config{Repo: repo, Get: RUDPGet(srv)})
	a := join(t, ts.addr, "a")
	a.send("/get f\n")
	assert.Equal(t, "ERROR all UDP transfer ports are busy, try later", a.line())
}
