package nodes

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProgramSocketsAreTheTreesListenersOnly(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()
	// A connected UDP socket and a TCP client are not listeners.
	cu, err := net.Dial("udp4", pc.LocalAddr().String())
	require.NoError(t, err)
	defer cu.Close()
	ct, err := net.Dial("tcp4", ln.Addr().String())
	require.NoError(t, err)
	defer ct.Close()

	got := map[string]int{}
	for _, lp := range programSockets(os.Getpid()) {
		got[lp.proto+"/"+lp.addrs[0].String()] = lp.port
		assert.NotEqual(t, cu.LocalAddr().(*net.UDPAddr).Port, lp.port, "a connected UDP socket listens on nothing")
		assert.NotEqual(t, ct.LocalAddr().(*net.TCPAddr).Port, lp.port, "a TCP client listens on nothing")
	}
	assert.Equal(t, ln.Addr().(*net.TCPAddr).Port, got["tcp/127.0.0.1"])
	assert.Equal(t, pc.LocalAddr().(*net.UDPAddr).Port, got["udp/127.0.0.1"])
}

func TestProcessTreeHoldsDescendants(t *testing.T) {
	// sh's child sleep is in the tree; this test process is not in sh's.
	cmd := exec.Command("sh", "-c", "sleep 30; true")
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var tree []int
	require.Eventually(t, func() bool {
		tree = processTree(cmd.Process.Pid)
		return len(tree) == 2
	}, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, cmd.Process.Pid, tree[0])
	comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(tree[1]), "comm"))
	require.NoError(t, err)
	assert.Equal(t, "sleep\n", string(comm))
	assert.NotContains(t, tree, os.Getpid())
}
