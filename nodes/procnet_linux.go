package nodes

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
)

// socketUp reports whether the network namespace of process pid has a TCP
// socket listening on port, or a UDP socket bound to it. /proc/PID/net
// shows the sockets of that process's namespace, so this needs no
// connection to the program (a probe connection would count as a client:
// the X/Y server would take it for X).
func socketUp(pid int, proto string, port int) bool {
	for _, f := range []string{proto, proto + "6"} {
		if scanProcNet(fmt.Sprintf("/proc/%d/net/%s", pid, f), proto, port) {
			return true
		}
	}
	return false
}

const tcpListen = "0A"

func scanProcNet(path, proto string, port int) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 {
			continue
		}
		_, hexPort, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		if proto == "udp" || fields[3] == tcpListen {
			return true
		}
	}
	return false
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
