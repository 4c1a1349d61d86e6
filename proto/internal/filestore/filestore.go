// Package filestore is the one safe file repository behind the file server
// and the chat: flat folder, validated names, every access through os.Root
// (no "..", no absolute paths, no symlinks out), and uploads that appear
// atomically or not at all.
package filestore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest accepted file name, in bytes (ext4's limit).
const MaxNameLen = 255

// Sentinels for errors.Is; their text is what servers put after "ERROR ".
var (
	ErrNotFound   = errors.New("no such file")
	ErrNotRegular = errors.New("not a regular file")
	ErrEscapes    = errors.New("name leads outside the repository")
	ErrTooLarge   = errors.New("file too large")
)

const (
	tempPrefix = ".upload-"
	tempSuffix = ".part"
	// staleAfter: temp files untouched this long belong to no live upload
	// (uploads time out far sooner) and are removed when a store opens.
	staleAfter = 10 * time.Minute
)

// ValidateName checks a file name from the wire. Names are flat (no "/" or
// "\"), non-empty, at most MaxNameLen bytes of valid UTF-8, with no control
// characters, no leading or trailing space, and no leading "." (hidden names
// are reserved for upload temp files and "." / ".." are never names).
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("empty file name")
	case len(name) > MaxNameLen:
		return fmt.Errorf("file name longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(name):
		return errors.New("file name is not valid UTF-8")
	case strings.ContainsAny(name, `/\`):
		return errors.New("file name may not contain '/' or '\\' (the repository is flat)")
	case strings.HasPrefix(name, "."):
		return errors.New("file name may not start with '.'")
	case strings.TrimSpace(name) != name:
		return errors.New("file name may not start or end with a space")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return errors.New("file name may not contain control characters")
		}
	}
	return nil
}

// Store is a repository folder. It is safe for concurrent use.
type Store struct {
	root    *os.Root
	dir     string
	maxSize int64
}

// Open opens (creating it if needed) the repository folder dir. Uploads
// larger than maxSize bytes are refused. Stale upload temp files are removed.
func Open(dir string, maxSize int64) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("repository %q: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", dir, err)
	}
	s := &Store{root: root, dir: dir, maxSize: maxSize}
	s.removeStale()
	return s, nil
}

// Dir is the folder the store was opened on.
func (s *Store) Dir() string { return s.dir }

// MaxSize is the upload limit in bytes.
func (s *Store) MaxSize() int64 { return s.maxSize }

// Close releases the folder handle.
func (s *Store) Close() error { return s.root.Close() }

func (s *Store) removeStale() {
	entries, err := fs.ReadDir(s.root.FS(), ".")
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, tempPrefix) || !strings.HasSuffix(n, tempSuffix) {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleAfter {
			_ = s.root.Remove(n)
		}
	}
}

// List returns the names of the regular files (and of symlinks that resolve
// to regular files inside the repository), sorted, without hidden names.
func (s *Store) List() ([]string, error) {
	entries, err := fs.ReadDir(s.root.FS(), ".")
	if err != nil {
		return nil, fmt.Errorf("list repository %q: %w", s.dir, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		n := e.Name()
		if ValidateName(n) != nil {
			continue
		}
		info, err := s.root.Stat(n) // follows links, only inside the root
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// Open opens a regular file for reading and returns it with its size.
// Errors wrap ErrNotFound, ErrNotRegular or ErrEscapes, or describe an
// invalid name. Only regular files are served: the file is opened with
// O_NONBLOCK, so a FIFO or device in the folder (or a link to one) cannot
// block the open, and is then refused as ErrNotRegular (List leaves such
// names out too).
func (s *Store) Open(name string) (*os.File, int64, error) {
	if err := ValidateName(name); err != nil {
		return nil, 0, err
	}
	f, err := s.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, s.classify(name, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("stat %q: %w", name, err)
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%q: %w", name, ErrNotRegular)
	}
	return f, info.Size(), nil
}

func (s *Store) classify(name string, err error) error {
	if li, lerr := s.root.Lstat(name); lerr == nil && li.Mode()&fs.ModeSymlink != 0 && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%q: %w", name, ErrEscapes)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%q: %w", name, ErrNotFound)
	}
	if strings.Contains(err.Error(), "escapes") {
		return fmt.Errorf("%q: %w", name, ErrEscapes)
	}
	return fmt.Errorf("open %q: %w", name, err)
}

// Upload is a file being received into a hidden temp file. Exactly one of
// Commit and Abort must be called.
type Upload struct {
	s    *Store
	name string
	size int64
	tmp  string
	f    *os.File
	sum  string
}

// Begin starts receiving size bytes for name.
func (s *Store) Begin(name string, size int64) (*Upload, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if size < 0 || size > s.maxSize {
		return nil, fmt.Errorf("%d bytes: %w (limit %d)", size, ErrTooLarge, s.maxSize)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := tempPrefix + hex.EncodeToString(rnd[:]) + tempSuffix
	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create temp for %q: %w", name, err)
	}
	return &Upload{s: s, name: name, size: size, tmp: tmp, f: f}, nil
}

// ReadFrom copies exactly the announced size from r into the temp file and
// fsyncs it. A short read is an error (io.ErrUnexpectedEOF or the reader's).
func (u *Upload) ReadFrom(r io.Reader) (int64, error) {
	h := sha256.New()
	n, err := io.CopyN(io.MultiWriter(u.f, h), r, u.size)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return n, fmt.Errorf("receive %q: got %d of %d bytes: %w", u.name, n, u.size, err)
	}
	if err := u.f.Sync(); err != nil {
		return n, fmt.Errorf("sync %q: %w", u.name, err)
	}
	u.sum = hex.EncodeToString(h.Sum(nil))
	return n, nil
}

// Commit renames the complete temp file into place (replacing any file of
// that name) and returns the SHA-256 of the content as lowercase hex.
func (u *Upload) Commit() (string, error) {
	if err := u.f.Close(); err != nil {
		_ = u.s.root.Remove(u.tmp)
		return "", fmt.Errorf("close %q: %w", u.name, err)
	}
	if u.sum == "" {
		_ = u.s.root.Remove(u.tmp)
		return "", fmt.Errorf("commit %q: content not received", u.name)
	}
	if err := u.s.root.Rename(u.tmp, u.name); err != nil {
		_ = u.s.root.Remove(u.tmp)
		return "", fmt.Errorf("store %q: %w", u.name, err)
	}
	if d, err := u.s.root.Open("."); err == nil { // make the rename durable
		_ = d.Sync()
		d.Close()
	}
	return u.sum, nil
}

// Abort drops the temp file; nothing appears in the repository.
func (u *Upload) Abort() {
	u.f.Close()
	_ = u.s.root.Remove(u.tmp)
}

// Reason is the text a server puts after "ERROR " for a store error: the
// sentinel's words when there is one, else the error itself.
func Reason(err error) string {
	for _, s := range []error{ErrNotFound, ErrNotRegular, ErrEscapes, ErrTooLarge} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return err.Error()
}
