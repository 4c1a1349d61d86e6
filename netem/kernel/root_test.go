package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/internal/testnet"
	"github.com/labctl/labctl/netem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func probeLeftovers(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(nsdo.RunDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var left []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "labctl-probe-") {
			left = append(left, e.Name())
		}
	}
	return left
}

func TestKernelAvailableReportsAndCleans(t *testing.T) {
	testnet.NeedRoot(t)
	// A probe namespace of a dead process (PID 0 never names a live one
	// under /proc) is reaped.
	dead := probePrefix + "0-deadbeef"
	require.NoError(t, nsdo.NewNamed(dead))
	t.Cleanup(func() { _ = nsdo.DeleteNamed(dead) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Available(ctx)
	if err == nil {
		t.Log("this kernel has sch_netem")
	} else {
		t.Logf("Available: %v", err)
		if errors.Is(err, netem.ErrUnsupported) {
			assert.Contains(t, err.Error(), "sch_netem")
		}
	}
	assert.NotContains(t, probeLeftovers(t), dead, "a dead probe's namespace is reaped")
	for _, n := range probeLeftovers(t) {
		assert.NotContains(t, n, fmt.Sprintf("%s%d-", probePrefix, os.Getpid()), "this probe's namespace must be gone")
	}
}
