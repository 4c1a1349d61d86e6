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
	n, self, args, env, err := hostArgv(st, node, argv)
	if err != nil {
		return err
	}
	return nsdo.DoNamed(n.NS, func() error {
		// execve from this locked thread: the wrapper keeps the thread's
		// network namespace, and the other threads are gone.
		return fmt.Errorf("node %q: exec %q: %w", node, argv[0], syscall.Exec(self, args, env))
	})
}

// StartIn starts cmd inside the node as `labctl exec` would run it (the
// node's network namespace, hostname and /etc/hosts, as root): cmd's
// program becomes the wrapper's, forked from a thread switched into the
// namespace, so it is born there (DESIGN rule 2).
func StartIn(st *State, node string, cmd *exec.Cmd) error {
	n, self, args, env, err := hostArgv(st, node, cmd.Args)
	if err != nil {
		return err
	}
	if cmd.Env != nil {
		env = append(cmd.Env, "LABCTL_LAB="+st.Lab, "LABCTL_NODE="+node)
	}
	cmd.Path, cmd.Args, cmd.Env, cmd.Err = self, args, env, nil
	return nsdo.DoNamed(n.NS, cmd.Start)
}

// hostArgv is the hostexec wrapper's command line for argv in node.
func hostArgv(st *State, node string, argv []string) (n *NodeState, self string, args, env []string, err error) {
	n, ok := st.Node(node)
	if !ok {
		return nil, "", nil, nil, fmt.Errorf("no node %q in lab %q", node, st.Lab)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, "", nil, nil, fmt.Errorf("node %q: %w", node, err)
	}
	if self, err = os.Executable(); err != nil {
		return nil, "", nil, nil, err
	}
	cwd, _ := os.Getwd()
	hs := hostSetup{Hostname: node, UID: -1, GID: -1, Dir: cwd, Path: path, Unshare: true}
	if _, err := os.Stat(HostsPath(st.Lab, node)); err == nil {
		hs.Hosts = HostsPath(st.Lab, node)
	}
	setup, err := json.Marshal(hs)
	if err != nil {
		return nil, "", nil, nil, err
	}
	env = append(os.Environ(), "LABCTL_LAB="+st.Lab, "LABCTL_NODE="+node)
	args = append([]string{"labctl", "hostexec", string(setup)}, argv...)
	return n, self, args, env, nil
}
