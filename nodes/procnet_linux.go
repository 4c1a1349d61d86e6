package nodes

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// socketAddrs returns the local addresses of the sockets listening on a
// TCP port (or bound to a UDP port) in the network namespace of process
// pid. /proc/PID/net shows the sockets of that process's namespace, so
// this needs no connection to the program (a probe connection would count
// as a client: the X/Y server would take it for X).
func socketAddrs(pid int, proto string, port int) []netip.Addr {
	return procSockets(fmt.Sprintf("/proc/%d/net", pid), proto, port)
}

// procSockets reads DIR/tcp and DIR/tcp6 (or udp).
func procSockets(dir, proto string, port int) []netip.Addr {
	var out []netip.Addr
	for _, f := range []string{proto, proto + "6"} {
		out = append(out, scanProcNet(dir+"/"+f, proto, port)...)
	}
	return out
}

// public reports whether any address is reachable from other hosts (not
// loopback).
func public(addrs []netip.Addr) bool {
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() {
			return true
		}
	}
	return false
}

const tcpListen = "0A"

func scanProcNet(path, proto string, port int) []netip.Addr {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []netip.Addr
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 {
			continue
		}
		hexAddr, hexPort, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		if proto == "udp" || fields[3] == tcpListen {
			if a, ok := parseProcAddr(hexAddr); ok {
				out = append(out, a)
			}
		}
	}
	return out
}

// parseProcAddr reads /proc/net's hex address: 32-bit words in host
// (little-endian) order.
func parseProcAddr(h string) (netip.Addr, bool) {
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.Addr{}, false
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	a, ok := netip.AddrFromSlice(b)
	return a, ok
}

// seededBytes is an endless stream of pseudo-random bytes fixed by the lab's
// seed and a name, so a lab's generated files are the same on every run.
func seededBytes(seed int64, name string) io.Reader {
	h := sha256.Sum256([]byte(fmt.Sprintf("%d/%s", seed, name)))
	return &prngReader{r: rand.New(rand.NewPCG(binary.LittleEndian.Uint64(h[:8]), binary.LittleEndian.Uint64(h[8:16])))}
}

type prngReader struct{ r *rand.Rand }

func (p *prngReader) Read(b []byte) (int, error) {
	for i := 0; i < len(b); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], p.r.Uint64())
		copy(b[i:], w[:])
	}
	return len(b), nil
}
