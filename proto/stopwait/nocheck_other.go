//go:build !linux

package stopwait

import (
	"errors"
	"syscall"
)

// DisableUDPChecksum is Linux-only (SO_NO_CHECK).
func DisableUDPChecksum(conn syscall.Conn) error { return errors.ErrUnsupported }

func udpChecksumDisabled(conn syscall.Conn) (bool, error) { return false, errors.ErrUnsupported }
