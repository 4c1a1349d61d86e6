package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tempLab gives a test a state root of its own and a lab name no one else
// uses (the lab lock is machine-wide).
func tempLab(t *testing.T) string {
	t.Helper()
	old := StateRoot
	StateRoot = t.TempDir()
	t.Cleanup(func() { StateRoot = old })
	id, _ := newTag("x")
	return "unit-" + id
}

func TestUpdateStateIsOneLockedReadModifyWrite(t *testing.T) {
	lab := tempLab(t)
	st := &State{Lab: lab, Phase: PhaseUp}
	require.NoError(t, st.save())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const writers = 50
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- UpdateState(ctx, lab, func(s *State) error {
				s.Daemons = append(s.Daemons, Daemon{Role: "r", PID: i})
				return nil
			})
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got, err := Load(lab)
	require.NoError(t, err)
	assert.Len(t, got.Daemons, writers, "no update is lost")
	ents, err := os.ReadDir(Dir(lab))
	require.NoError(t, err)
	for _, e := range ents {
		assert.False(t, strings.HasSuffix(e.Name(), ".tmp"), "temporary file %s left", e.Name())
	}

	// A failing change writes nothing.
	boom := errors.New("boom")
	require.ErrorIs(t, UpdateState(ctx, lab, func(s *State) error { s.Daemons = nil; return boom }), boom)
	got, err = Load(lab)
	require.NoError(t, err)
	assert.Len(t, got.Daemons, writers)
}

func TestUpdateStateNeverBringsBackALabThatIsGone(t *testing.T) {
	lab := tempLab(t)
	called := false
	err := UpdateState(context.Background(), lab, func(*State) error { called = true; return nil })
	require.ErrorIs(t, err, ErrNoLab)
	assert.False(t, called)
	_, statErr := os.Stat(Dir(lab))
	assert.True(t, os.IsNotExist(statErr), "no folder made for a lab that is not up")

	st := &State{Lab: lab, Phase: PhaseDestroying}
	require.NoError(t, st.save())
	require.ErrorIs(t, UpdateState(context.Background(), lab, func(*State) error { return nil }), ErrNoLab)
}

func TestStateWritesNeverTear(t *testing.T) {
	lab := tempLab(t)
	require.NoError(t, os.MkdirAll(Dir(lab), 0o755))
	// Writers of different sizes at once: each rename puts one whole file.
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st := &State{Lab: lab, Phase: PhaseUp, Source: strings.Repeat("x", 1+i*500)}
			assert.NoError(t, st.save())
		}(i)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for reads := 0; ; reads++ {
		b, err := os.ReadFile(statePath(lab))
		if err == nil {
			var s State
			require.NoError(t, json.Unmarshal(b, &s), "read %d: a torn state file", reads)
		}
		select {
		case <-done:
			return
		default:
		}
	}
}

func TestLoadSaysWhatIsWrong(t *testing.T) {
	lab := tempLab(t)
	_, err := Load(lab)
	require.ErrorIs(t, err, ErrNoLab)
	require.NoError(t, os.MkdirAll(Dir(lab), 0o755))
	require.NoError(t, os.WriteFile(statePath(lab), nil, 0o644))
	_, err = Load(lab)
	assert.ErrorContains(t, err, "is empty")
	require.NoError(t, os.WriteFile(statePath(lab), []byte(`{"lab":"x"}}`), 0o644))
	_, err = Load(lab)
	assert.ErrorContains(t, err, "invalid character")
	assert.NotErrorIs(t, err, ErrNoLab)

	for _, bad := range []string{"../x", "..", "", "A", "a/b", strings.Repeat("a", 33)} {
		_, err := Load(bad)
		assert.ErrorIs(t, err, ErrBadName, "%q", bad)
		_, err = lockLab(context.Background(), bad)
		assert.ErrorIs(t, err, ErrBadName, "%q", bad)
	}
}

func TestStartDaemonRecordsUnderTheLock(t *testing.T) {
	lab := tempLab(t)
	noop := []string{"-test.run=^$"} // this test binary, exiting at once
	st := &State{Lab: lab, ID: "one", Phase: PhaseUp}
	_, err := StartDaemon(st, "noop", noop)
	require.ErrorIs(t, err, ErrNoLab, "nothing starts for a lab that is not up")
	_, statErr := os.Stat(Dir(lab))
	assert.True(t, os.IsNotExist(statErr))

	require.NoError(t, st.save())
	d, err := StartDaemon(st, "noop", noop)
	require.NoError(t, err)
	assert.Positive(t, d.PID)
	got, err := Load(lab)
	require.NoError(t, err)
	require.Len(t, got.Daemons, 1)
	assert.Equal(t, d.PID, got.Daemons[0].PID)
	assert.Equal(t, got.Daemons, st.Daemons, "the caller's state is refreshed")

	// Another deployment of the same lab name is not this one.
	_, err = StartDaemon(&State{Lab: lab, ID: "two", Phase: PhaseUp}, "noop", noop)
	require.ErrorIs(t, err, ErrNoLab)
	// Inside Deploy the lock is held already: say so rather than wait.
	_, err = StartDaemon(&State{Lab: lab, ID: "one", Phase: PhaseDeploying}, "noop", noop)
	assert.ErrorContains(t, err, "during Deploy")
}
