// Package nodes is labctl's runtime: it deploys a topo.Lab as named network
// namespaces (one per host, switch and router), veth or TAP links made by
// a netem backend, bridges, addresses and routes; it starts processes inside
// hosts, keeps lab state on disk and destroys all of it again.
package nodes

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// labNameRE is topo's rule for lab names. Every path and lock is built from
// a lab's name, so a name from the command line is checked against it
// before any is: "../x" must never reach a RemoveAll.
var labNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// ErrBadName is returned for a string that cannot be a lab's name.
var ErrBadName = errors.New("not a lab name (1-32 of a-z, 0-9 and '-', starting with a letter or digit)")

func checkLabName(lab string) error {
	if !labNameRE.MatchString(lab) {
		return fmt.Errorf("lab %q: %w", lab, ErrBadName)
	}
	return nil
}

// NSPrefix starts the name of every network namespace labctl makes.
const NSPrefix = "lab-"

// TagPrefix starts the alias labctl sets on every interface it makes,
// including each namespace's loopback, which marks the namespace as ours.
const TagPrefix = "labctl:"

// NSName is the network namespace of a lab's node: `ip netns exec
// lab-xy-server ...` works on it.
func NSName(lab, node string) string { return NSPrefix + lab + "-" + node }

// newTag returns a fresh deployment id and the tag that carries it.
func newTag(lab string) (id, tag string) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id = hex.EncodeToString(b)
	return id, TagPrefix + lab + ":" + id
}

// labOfTag returns the lab named in a tag, or "".
func labOfTag(tag string) string {
	rest, ok := strings.CutPrefix(tag, TagPrefix)
	if !ok {
		return ""
	}
	lab, _, _ := strings.Cut(rest, ":")
	return lab
}
