package netem

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

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
	needRoot(t)
	before := probeLeftovers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := KernelAvailable(ctx)
	if err == nil {
		t.Log("this kernel has sch_netem")
	} else {
		t.Logf("KernelAvailable: %v", err)
		if errors.Is(err, ErrUnsupported) {
			assert.Contains(t, err.Error(), "sch_netem")
		}
	}
	assert.Equal(t, before, probeLeftovers(t), "the probe namespace must be gone")
}
