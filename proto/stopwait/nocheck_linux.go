//go:build linux

package stopwait

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// DisableUDPChecksum makes an IPv4 UDP socket send datagrams with no UDP
// checksum (SO_NO_CHECK), so a bit flipped on the way (netem corrupt) is
// not dropped by the receiving kernel but reaches the server's own CRC and
// earns a NACK. IPv6 requires the checksum and ignores the option.
func DisableUDPChecksum(conn syscall.Conn) error {
	return setNoCheck(conn, 1)
}

func setNoCheck(conn syscall.Conn, v int) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("udp checksum off: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, v)
	}); err != nil {
		return fmt.Errorf("udp checksum off: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("udp checksum off: setsockopt SO_NO_CHECK: %w", serr)
	}
	return nil
}

// udpChecksumDisabled reads SO_NO_CHECK back (for tests).
func udpChecksumDisabled(conn syscall.Conn) (bool, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return false, err
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		v, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK)
	}); err != nil {
		return false, err
	}
	return v != 0, serr
}
