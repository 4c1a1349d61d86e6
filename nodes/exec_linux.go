package nodes

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/labctl/labctl/internal/nsdo"
)

// ExecReplace replaces this process with argv running inside the node's
// namespace, as `ip netns exec` does: stdio, signals and the exit status
// are the command's own. It returns only on failure.
func ExecReplace(st *State, node string, argv []string) error {
	n, ok := st.Node(node)
	if !ok {
		return fmt.Errorf("no node %q in lab %q", node, st.Lab)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("node %q: %w", node, err)
	}
	env := append(os.Environ(), "LABCTL_LAB="+st.Lab, "LABCTL_NODE="+node)
	return nsdo.DoNamed(n.NS, func() error {
		// execve from this locked thread: the new program keeps the
		// thread's namespace, and the other threads are gone.
		return fmt.Errorf("node %q: exec %q: %w", node, path, syscall.Exec(path, argv, env))
	})
}
