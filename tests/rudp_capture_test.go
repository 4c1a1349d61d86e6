package tests

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A lossy, corrupting /get captured on the client's link (what `labctl
// capture` records) and read back with tshark and scripts/rudp.lua: every
// message kind of the exchange is there.
func TestRUDPCaptureShowsEveryKind(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed (scripts/test.sh installs it)")
	}
	lab, _ := up(t, "rudpcap", "-f", writeLab(t, "cap.yaml", `
seed: 5
hosts: [h1, h2]
switches: [s1]
links:
  - endpoints: [h1, s1]
  - endpoints: [h2, s1]
    netem: {delay: 2ms, loss: 20%, corrupt: 5%}
`), "--test", "none")
	require.Equal(t, "10.0.0.1", inspect(t, lab).addr("h1"))
	repo := t.TempDir()
	require.NoError(t, os.Chmod(repo, 0o755))
	r := rand.New(rand.NewPCG(8, 9))
	writeRandom(t, filepath.Join(repo, "a.bin"), 400_000, r)
	writeRandom(t, filepath.Join(repo, "b.bin"), 30_000, r)
	startServer(t, lab, 5002, "chat-server", "--repo", repo)
	warmARP(t, lab, "h2")

	path := filepath.Join(t.TempDir(), "rudp.pcapng")
	capture := exec.Command(bin, "capture", lab, "h2-s1", "-w", path)
	require.NoError(t, capture.Start())
	capDone := make(chan error, 1)
	go func() { capDone <- capture.Wait() }()
	t.Cleanup(func() { _ = capture.Process.Kill() })
	// The capture is running once its file grows: it writes in 64 KB
	// chunks, so push 1400-byte datagrams across the link until it does.
	noise := hostDial(t, lab, "h2", "udp", "10.0.0.1:9")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if info, err := os.Stat(path); err == nil && info.Size() > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the capture did not start")
		for range 10 {
			_, _ = noise.Write(make([]byte, 1400))
		}
		time.Sleep(10 * time.Millisecond) // polling a file that grows; bounded by the deadline
	}
	out := getter(t, lab, "h2", "cap", t.TempDir(), "/get a.bin sack", "/get b.bin seed").wait(2 * time.Minute)
	require.Len(t, filterSaved(out), 2, "%q", out)
	require.NoError(t, capture.Process.Signal(syscall.SIGINT))
	select {
	case err := <-capDone:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("labctl capture did not stop on SIGINT")
	}

	lua, err := filepath.Abs("../scripts/rudp.lua")
	require.NoError(t, err)
	tshark := exec.Command("tshark", "-X", "lua_script:"+lua, "-r", path, "-Y", "lrudp", "-T", "fields", "-e", "lrudp.kind_name")
	b, err := tshark.Output()
	require.NoError(t, err, "tshark: %s", b)
	seen := map[string]int{}
	for _, k := range strings.Fields(string(b)) {
		seen[k]++
	}
	for _, k := range []string{"SYN", "SYN-ACK", "ACK", "DATA", "SACK", "NACK", "ACK-ALL"} {
		assert.Positive(t, seen[k], "no %s in the capture: %v", k, seen)
	}
}
