// Package testnet is the one helper for root tests: skip unless root, and
// throwaway network namespaces and links, removed in t.Cleanup. Every
// package's root tests use it instead of a copy of their own.
package testnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/netem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// NeedRoot skips the test unless it runs as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
}

// ID is a fresh random id, for names that must not collide with another
// test's or a user's lab.
func ID() string {
	var r [3]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// Namespace makes a named network namespace for the test (skipping the test
// unless root) and removes it in t.Cleanup. With disableIPv6 the namespace
// sends no router solicitations or MLD reports, so a link carries only the
// test's packets.
func Namespace(t testing.TB, name string, disableIPv6 bool) {
	t.Helper()
	NeedRoot(t)
	require.NoError(t, nsdo.NewNamed(name))
	t.Cleanup(func() { assert.NoError(t, nsdo.DeleteNamed(name)) })
	if !disableIPv6 {
		return
	}
	require.NoError(t, nsdo.DoNamed(name, func() error {
		for _, k := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0o644); err != nil {
				return err
			}
		}
		return nil
	}))
}

// Link lays out a link "a-b" between two fresh throwaway namespaces (made
// here, removed in t.Cleanup) with the given impairments; the caller
// creates it with a backend. prefix keeps the names of different packages'
// tests apart, e.g. "u" for the userspace engine's.
func Link(t testing.TB, prefix string, ab, ba netem.Spec) netem.Link {
	t.Helper()
	id := ID()
	l := netem.Link{Lab: prefix + id, ID: "a-b", Tag: "labctl-test-" + id, AtoB: ab, BtoA: ba,
		A: netem.End{Node: "a", NS: "labctl-" + prefix + "-" + id + "-a", Iface: "a-eth0"},
		B: netem.End{Node: "b", NS: "labctl-" + prefix + "-" + id + "-b", Iface: "b-eth0"}}
	for _, ns := range []string{l.A.NS, l.B.NS} {
		Namespace(t, ns, true)
	}
	return l
}

// Create makes a link with the backend and fails the test if it cannot.
// Deleting the namespaces (in t.Cleanup) removes it.
func Create(t testing.TB, b netem.Backend, l *netem.Link) {
	t.Helper()
	require.NoError(t, b.Create(context.Background(), l))
}
