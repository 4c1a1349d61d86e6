package filestore

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUploadIsAtomic(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "repo"), 100)
	require.NoError(t, err)
	defer s.Close()

	up, err := s.Begin("a.txt", 5)
	require.NoError(t, err)
	_, err = up.ReadFrom(strings.NewReader("abc"))
	assert.Error(t, err)
	up.Abort()
	names, err := s.List()
	require.NoError(t, err)
	assert.Empty(t, names)
	entries, _ := os.ReadDir(s.Dir())
	assert.Empty(t, entries, "no temp file left")

	up, err = s.Begin("a.txt", 3)
	require.NoError(t, err)
	names, _ = s.List()
	assert.Empty(t, names, "temp files never listed")
	_, err = up.ReadFrom(strings.NewReader("abc"))
	require.NoError(t, err)
	sum, err := up.Commit()
	require.NoError(t, err)
	assert.Equal(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", sum)
	f, size, err := s.Open("a.txt")
	require.NoError(t, err)
	f.Close()
	assert.EqualValues(t, 3, size)

	_, err = s.Begin("big", 101)
	assert.ErrorIs(t, err, ErrTooLarge)
}

func TestOpenRefusesEscapes(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	require.NoError(t, os.MkdirAll(filepath.Join(repo, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("s"), 0o644))
	require.NoError(t, os.Symlink("../secret", filepath.Join(repo, "rel")))
	require.NoError(t, os.Symlink(filepath.Join(dir, "secret"), filepath.Join(repo, "abs")))
	s, err := Open(repo, 100)
	require.NoError(t, err)
	defer s.Close()
	_, _, err = s.Open("rel")
	assert.ErrorIs(t, err, ErrEscapes)
	_, _, err = s.Open("abs")
	assert.ErrorIs(t, err, ErrEscapes)
	_, _, err = s.Open("sub")
	assert.ErrorIs(t, err, ErrNotRegular)
	_, _, err = s.Open("nope")
	assert.ErrorIs(t, err, ErrNotFound)
	for _, bad := range []string{"../secret", "/etc/passwd", "..", ".", "sub/x", "", " x", "a\x00b", ".hidden"} {
		_, _, err = s.Open(bad)
		assert.Error(t, err, bad)
	}
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"a.txt", "..", ".", "../x", "/etc/passwd", "a b", "a\\b", "\x00", "é.txt", " x"} {
		f.Add(s)
	}
	dir := f.TempDir()
	s, err := Open(filepath.Join(dir, "repo"), 1<<20)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateName(name) != nil {
			return
		}
		if strings.ContainsAny(name, "/\\\x00") || strings.HasPrefix(name, ".") || len(name) > MaxNameLen {
			t.Fatalf("accepted %q", name)
		}
		// A valid name lands inside the repository, as exactly that entry.
		up, err := s.Begin(name, 1)
		if err != nil {
			t.Fatalf("begin %q: %v", name, err)
		}
		if _, err := up.ReadFrom(bytes.NewReader([]byte{1})); err != nil {
			t.Fatal(err)
		}
		if _, err := up.Commit(); err != nil {
			t.Fatalf("commit %q: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "repo", name)); err != nil {
			t.Fatalf("%q not inside the repository: %v", name, err)
		}
		_ = os.Remove(filepath.Join(dir, "repo", name))
	})
}

// A FIFO (or a link to one) is neither listed nor opened: opening it must
// not block the server (issue 13.4).
func TestFIFONeverBlocks(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644))
	require.NoError(t, os.Symlink("pipe", filepath.Join(dir, "link")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ok.txt"), []byte("x"), 0o644))
	s, err := Open(dir, 1<<20)
	require.NoError(t, err)
	defer s.Close()
	names, err := s.List()
	require.NoError(t, err)
	assert.Equal(t, []string{"ok.txt"}, names)
	for _, n := range []string{"pipe", "link"} {
		done := make(chan error, 1)
		go func() {
			f, _, err := s.Open(n)
			if f != nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			assert.ErrorIs(t, err, ErrNotRegular, n)
		case <-time.After(5 * time.Second):
			t.Fatalf("open %q blocked", n)
		}
	}
}
