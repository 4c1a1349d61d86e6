package nodes

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"syscall"
	"time"
)

// lockLab serialises every change of one lab across processes: up, down,
// clean and each UpdateState. The lock
// is an abstract unix socket (@labctl/lock/LAB): only one process can bind
// it, the kernel frees it when that process ends however it ends, and it
// leaves no file behind. It waits, bounded by ctx, for another labctl
// working on the same lab.
func lockLab(ctx context.Context, lab string) (unlock func(), err error) {
	if err := checkLabName(lab); err != nil {
		return nil, err
	}
	addr := &net.UnixAddr{Name: "@labctl/lock/" + lab, Net: "unix"}
	for {
		l, err := net.ListenUnix("unix", addr)
		if err == nil {
			return func() { l.Close() }, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("lab %q: lock: %w", lab, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lab %q: another labctl is working on it: %w", lab, ctx.Err())
		case <-time.After(time.Duration(5+mrand.IntN(20)) * time.Millisecond):
			// Jittered, so that many waiters do not retry in step.
		}
	}
}
