package nodes

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// An overridden program (--program) runs in a writable copy of the folder
// labctl was started in, inside its host's home, owned by the programs'
// user: a student's program may write next to itself, and cannot touch
// the original. A folder over these limits is not copied: the program
// runs in it, and the log says so.
const (
	copyMaxFiles = 2000
	copyMaxBytes = 64 << 20
)

var errTooBig = errors.New("too big to copy")

// copyTree copies the regular files, folders and symlinks under src into
// dst (which exists), owned by uid/gid. Other kinds of files are skipped,
// and so is what uid/gid could not read in the original (labctl copies as
// root: the copy must not hand the programs' user a file it may not see).
func copyTree(src, dst string, uid, gid int) error {
	var files int
	var bytes int64
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		files++
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				bytes += fi.Size()
			}
		}
		if files > copyMaxFiles || bytes > copyMaxBytes {
			return fmt.Errorf("folder %q: more than %d files or %d MiB: %w", src, copyMaxFiles, copyMaxBytes>>20, errTooBig)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		to := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !mayRead(fi, uid, gid, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(to, fi.Mode().Perm()|0o700); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(l, to); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
		case d.Type().IsRegular():
			if err := copyFile(p, to, fi.Mode().Perm()|0o600); err != nil {
				return err
			}
		default:
			return nil // FIFOs, sockets, devices: not a program's files
		}
		return os.Lchown(to, uid, gid)
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// mayRead says whether uid/gid (with no other groups) may read fi, and for
// a folder also enter it.
func mayRead(fi fs.FileInfo, uid, gid int, dir bool) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || uid == 0 {
		return true
	}
	want := fs.FileMode(0o4)
	if dir {
		want = 0o5
	}
	m := fi.Mode().Perm()
	switch {
	case int(st.Uid) == uid:
		m >>= 6
	case int(st.Gid) == gid:
		m >>= 3
	}
	return m&want == want
}
