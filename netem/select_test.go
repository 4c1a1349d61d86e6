package netem_test

import (
	"context"
	"errors"
	"testing"

	"github.com/labctl/labctl/netem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type fake struct{ name string }

func (f fake) Name() string                                               { return f.name }
func (fake) Create(context.Context, *netem.Link) error                    { return nil }
func (fake) Set(context.Context, netem.Link, netem.Dir, netem.Spec) error { return nil }
func (fake) Show(context.Context, netem.Link) (netem.Spec, netem.Spec, error) {
	return netem.Spec{}, netem.Spec{}, nil
}

func cand(name string, avail error) netem.Candidate {
	return netem.Candidate{Name: name, Available: func(context.Context) error { return avail }, New: func() netem.Backend { return fake{name} }}
}

func TestSelect(t *testing.T) {
	ctx := context.Background()
	noNetem := errors.New("no sch_netem")
	k, u := cand(netem.BackendKernel, noNetem), cand(netem.BackendUserspace, nil)

	b, err := netem.Select(ctx, netem.BackendAuto, k, u)
	require.NoError(t, err)
	assert.Equal(t, netem.BackendUserspace, b.Name(), "auto: the first that works")
	b, err = netem.Select(ctx, "", cand(netem.BackendKernel, nil), u)
	require.NoError(t, err)
	assert.Equal(t, netem.BackendKernel, b.Name(), "kernel first where it works")

	_, err = netem.Select(ctx, netem.BackendKernel, k, u)
	assert.ErrorIs(t, err, noNetem, "asked by name: no fallback")
	_, err = netem.Select(ctx, netem.BackendAuto, k, cand(netem.BackendUserspace, errors.New("no /dev/net/tun")))
	assert.ErrorIs(t, err, netem.ErrNoBackend)
	assert.ErrorContains(t, err, "no sch_netem")
	assert.ErrorContains(t, err, "no /dev/net/tun")
	_, err = netem.Select(ctx, "tc", k, u)
	assert.ErrorContains(t, err, `backend "tc"`)

	b, err = netem.ForState(netem.BackendUserspace, "lab", k, u)
	require.NoError(t, err)
	assert.Equal(t, netem.BackendUserspace, b.Name(), "a lab's backend, without probing")
	b, err = netem.ForState(netem.BackendNone, "lab")
	require.NoError(t, err)
	assert.ErrorIs(t, b.Set(ctx, netem.Link{ID: "x"}, netem.AtoB, netem.Spec{Loss: 1}), netem.ErrNoBackend, "plain links refuse impairments")
	_, err = netem.ForState("weird", "lab", k, u)
	assert.Error(t, err)
}
