package nodes

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/labctl/labctl/internal/nsdo"
)

// ExecIn runs argv inside the node as `ip netns exec` does, stdio
// attached, and returns its exit status: in the node's network namespace,
// with the node's hostname and the lab's /etc/hosts (the hostexec wrapper,
// in fresh UTS and mount namespaces), as root.
func ExecIn(st *State, node string, argv []string) (int, error) {
	n, ok := st.Node(node)
	if !ok {
		return 0, fmt.Errorf("no node %q in lab %q", node, st.Lab)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return 0, fmt.Errorf("node %q: %w", node, err)
	}
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cwd, _ := os.Getwd()
	hs := hostSetup{Hostname: node, UID: -1, GID: -1, Dir: cwd, Path: path}
	if _, err := os.Stat(HostsPath(st.Lab, node)); err == nil {
		hs.Hosts = HostsPath(st.Lab, node)
	}
	setup, err := json.Marshal(hs)
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(self, append([]string{"hostexec", string(setup)}, argv...)...)
	cmd.Args[0] = "labctl"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "LABCTL_LAB="+st.Lab, "LABCTL_NODE="+node)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUTS | syscall.CLONE_NEWNS}
	// The command shares our terminal's process group: Ctrl-C is its to
	// handle; we only wait for it.
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Reset(syscall.SIGINT, syscall.SIGQUIT)
	if err := nsdo.DoNamed(n.NS, cmd.Start); err != nil {
		return 0, fmt.Errorf("node %q: %w", node, err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, err
}
