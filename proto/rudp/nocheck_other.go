//go:build !linux

package rudp

import "syscall"

// DisableUDPChecksum does nothing off Linux (no SO_NO_CHECK).
func DisableUDPChecksum(syscall.Conn) error { return nil }
