//go:build linux

package rudp

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// DisableUDPChecksum makes an IPv4 UDP socket send with no UDP checksum
// (SO_NO_CHECK): a bit flipped on the way then reaches this protocol's own
// CRC-32C (and earns a NACK) instead of being dropped by the kernel.
func DisableUDPChecksum(conn syscall.Conn) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("udp checksum off: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1)
	}); err != nil {
		return fmt.Errorf("udp checksum off: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("udp checksum off: setsockopt SO_NO_CHECK: %w", serr)
	}
	return nil
}
