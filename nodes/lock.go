package nodes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// lockLab serialises up/down/clean of one lab across processes. It waits,
// bounded by ctx, for another labctl working on the same lab.
func lockLab(ctx context.Context, lab string) (unlock func(), err error) {
	if err := os.MkdirAll(StateRoot, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(StateRoot, "."+lab+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lab %q: lock: %w", lab, err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if err != unix.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("lab %q: lock: %w", lab, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lab %q: another labctl is working on it: %w", lab, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
