package kernel

// Offloads through the SIOCETHTOOL ioctl. The socket that carries the ioctl
// is opened inside the interface's namespace (through nsdo, the one setns
// helper); the descriptor then names interfaces of that namespace from any
// thread.

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/netem"
	"golang.org/x/sys/unix"
)

// Legacy one-feature ethtool commands (linux/ethtool.h). They map onto the
// netdev feature bits (TSO covers every TSO flavour) on every kernel since
// 2.6.39 and need no string set.
const (
	ethtoolGTSO = 0x1e
	ethtoolSTSO = 0x1f
	ethtoolGGSO = 0x23
	ethtoolSGSO = 0x24
	ethtoolGGRO = 0x2b
	ethtoolSGRO = 0x2c
)

// offloadCmds are the features that turn one netem drop into a burst: with
// TSO/GSO a TCP sender hands the qdisc 64 KB super-packets (one drop loses
// ~44 segments, one "packet" of delay carries them all), and GRO merges
// them again on the way in.
var offloadCmds = []struct {
	name     string
	get, set uint32
}{
	{"tso", ethtoolGTSO, ethtoolSTSO},
	{"gso", ethtoolGGSO, ethtoolSGSO},
	{"gro", ethtoolGGRO, ethtoolSGRO},
}

type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with ifr_data: a 16-byte name, then a pointer
// (the union is 24 bytes; the tail is padding).
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte
}

func ethtool(fd int, iface string, v *ethtoolValue) error {
	var ifr ifreqData
	copy(ifr.name[:unix.IFNAMSIZ-1], iface)
	ifr.data = unsafe.Pointer(v)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(v)
	if errno != 0 {
		return errno
	}
	return nil
}

// nsSocket opens an AF_INET datagram socket inside a named namespace, for
// ioctls on that namespace's interfaces.
func nsSocket(ns string) (int, error) {
	fd := -1
	err := nsdo.DoNamed(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("netns %q: socket: %w", ns, err)
	}
	return fd, nil
}

// OffloadsOff turns TSO, GSO and GRO off on one end of a link, so that a
// netem drop, delay slot or rate token is one wire-sized packet.
func OffloadsOff(e netem.End) error {
	fd, err := nsSocket(e.NS)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, c := range offloadCmds {
		if err := ethtool(fd, e.Iface, &ethtoolValue{cmd: c.set}); err != nil {
			return fmt.Errorf("node %q: %q: turn %s off: %w", e.Node, e.Iface, c.name, err)
		}
	}
	return nil
}

// Offloads reports the TSO, GSO and GRO state of one end ("tso": true = on).
func Offloads(e netem.End) (map[string]bool, error) {
	fd, err := nsSocket(e.NS)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	m := map[string]bool{}
	for _, c := range offloadCmds {
		v := ethtoolValue{cmd: c.get}
		if err := ethtool(fd, e.Iface, &v); err != nil {
			return nil, fmt.Errorf("node %q: %q: read %s: %w", e.Node, e.Iface, c.name, err)
		}
		m[c.name] = v.data != 0
	}
	return m, nil
}
