package tests

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/labctl/labctl/netem"
)

// firstWrite signals when the capture's first bytes (the pcapng header
// the engine sends once it captures) arrive.
type firstWrite struct {
	w     *os.File
	once  sync.Once
	first chan struct{}
}

func (f *firstWrite) Write(p []byte) (int, error) {
	f.once.Do(func() { close(f.first) })
	return f.w.Write(p)
}

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
	file, err := os.Create(path)
	require.NoError(t, err)
	defer file.Close()
	fw := &firstWrite{w: file, first: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- netem.Capture(ctx, lab, "h2-s1", "delivered", fw) }()
	select {
	case <-fw.first:
	case <-time.After(10 * time.Second):
		t.Fatal("capture did not start")
	}
	out := getter(t, lab, "h2", "cap", t.TempDir(), "/get a.bin sack", "/get b.bin seed").wait(2 * time.Minute)
	require.Len(t, filterSaved(out), 2, "%q", out)
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, file.Close())

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
