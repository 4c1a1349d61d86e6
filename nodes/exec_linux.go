package nodes

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/labctl/labctl/internal/nsdo"
)

// ExecReplace replaces this process with argv running inside the node, as
// `ip netns exec` does: stdio, signals, the pid and the exit status are
// the command's own. It runs through the hostexec wrapper, so the command
// also has the node's hostname and the lab's /etc/hosts (as root). It
// returns only on failure.
func ExecReplace(st *State, node string, argv []string) error {
	n, ok := st.Node(node)
	if !ok {
		return fmt.Errorf("no node %q in lab %q", node, st.Lab)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("node %q: %w", node, err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cwd, _ := os.Getwd()
	hs := hostSetup{Hostname: node, UID: -1, GID: -1, Dir: cwd, Path: path, Unshare: true}
	if _, err := os.Stat(HostsPath(st.Lab, node)); err == nil {
		hs.Hosts = HostsPath(st.Lab, node)
	}
	setup, err := json.Marshal(hs)
	if err != nil {
		return err
	}
	env := append(os.Environ(), "LABCTL_LAB="+st.Lab, "LABCTL_NODE="+node)
	args := append([]string{"labctl", "hostexec", string(setup)}, argv...)
	return nsdo.DoNamed(n.NS, func() error {
		// execve from this locked thread: the wrapper keeps the thread's
		// network namespace, and the other threads are gone.
		return fmt.Errorf("node %q: exec %q: %w", node, path, syscall.Exec(self, args, env))
	})
}
