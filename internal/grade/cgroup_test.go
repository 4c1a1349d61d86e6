package grade

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func fakeMounts(t *testing.T, lines ...string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "mounts")
	require.NoError(t, os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	old := mountsFile
	mountsFile = f
	t.Cleanup(func() { mountsFile = old })
}

func TestCgroupV2IsChosenWhereItHasTheControllers(t *testing.T) {
	v2 := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(v2, "cgroup.controllers"), []byte("cpuset cpu io memory pids\n"), 0o644))
	fakeMounts(t, "cgroup2 "+v2+" cgroup2 rw,nosuid 0 0")
	r, mount, err := findCgroupRoot("g1")
	require.NoError(t, err)
	assert.Equal(t, 2, r.version)
	assert.Equal(t, v2, mount)
	assert.Equal(t, []string{filepath.Join(v2, "labctl-grade", "g1")}, r.dirs)

	// A submission's limits, in v2's files.
	require.NoError(t, os.MkdirAll(r.dirs[0], 0o755))
	cg, err := r.child("g1-000", Limits{Memory: 256 << 20, Pids: 64, CPU: 0.5})
	require.NoError(t, err)
	read := func(f string) string {
		b, err := os.ReadFile(filepath.Join(cg.dirs[0], f))
		require.NoError(t, err)
		return string(b)
	}
	assert.Equal(t, "268435456", read("memory.max"))
	assert.Equal(t, "0", read("memory.swap.max"))
	assert.Equal(t, "64", read("pids.max"))
	assert.Equal(t, "50000 100000", read("cpu.max"))
	assert.Equal(t, []string{filepath.Join(cg.dirs[0], "cgroup.procs")}, cg.procsFiles())

	require.NoError(t, os.WriteFile(filepath.Join(cg.dirs[0], "memory.events"), []byte("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(cg.dirs[0], "pids.events"), []byte("max 12\n"), 0o644))
	assert.Equal(t, Stats{OOMKills: 1, PidsLimited: 12}, cg.stats())
}

func TestCgroupV1IsUsedOnAHybridMachine(t *testing.T) {
	v2, cpu, mem, pids := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(v2, "cgroup.controllers"), []byte("hugetlb\n"), 0o644))
	fakeMounts(t,
		"cgroup "+cpu+" cgroup rw,relatime,cpu,cpuacct 0 0",
		"cgroup "+mem+" cgroup rw,relatime,memory 0 0",
		"cgroup "+pids+" cgroup rw,relatime,pids 0 0",
		"cgroup2 "+v2+" cgroup2 rw,relatime 0 0")
	r, _, err := findCgroupRoot("g2")
	require.NoError(t, err)
	assert.Equal(t, 1, r.version)
	require.Len(t, r.dirs, 3)
	for i, m := range []string{cpu, mem, pids} {
		assert.True(t, strings.HasPrefix(r.dirs[i], m), r.dirs[i])
		assert.True(t, strings.HasSuffix(r.dirs[i], "labctl-grade-g2"), r.dirs[i])
	}
	assert.Equal(t, "v1 (cpu, memory, pids)", r.Version())

	fakeMounts(t, "cgroup2 "+v2+" cgroup2 rw,relatime 0 0")
	_, _, err = findCgroupRoot("g3")
	assert.ErrorContains(t, err, "neither cgroup v2 with memory and pids controllers nor a v1")
}
