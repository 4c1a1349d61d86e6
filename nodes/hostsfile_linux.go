package nodes

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/labctl/labctl/topo"
)

// EtcNetns is where `ip netns exec NAME` finds files it bind-mounts over
// /etc (NAME/hosts over /etc/hosts).
var EtcNetns = "/etc/netns"

// HostsPath is the hosts file the programs of a lab's host see as
// /etc/hosts.
func HostsPath(lab, host string) string { return filepath.Join(Dir(lab), "etc", host+".hosts") }

// writeHostsFiles writes, for every host and router, the hosts file its
// programs see (every node's name and address), and a copy in
// /etc/netns/lab-LAB-NODE/hosts for `ip netns exec` users. The copy is
// best effort: a read-only /etc only costs ip-netns users the names.
func writeHostsFiles(lab *topo.Lab, st *State) error {
	for _, n := range lab.Nodes {
		if n.Kind == topo.Switch {
			continue
		}
		body := []byte(lab.HostsFile(n.Name, st.Lab))
		p := HostsPath(st.Lab, n.Name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			return fmt.Errorf("node %q: hosts file: %w", n.Name, err)
		}
		d := filepath.Join(EtcNetns, NSName(st.Lab, n.Name))
		if err := os.MkdirAll(d, 0o755); err == nil {
			_ = os.WriteFile(filepath.Join(d, "hosts"), body, 0o644)
		}
	}
	return nil
}

// removeNetnsEtc removes the /etc/netns folders of a lab: only those whose
// hosts file says it is this lab's (labctl wrote it), so a lab named "xy"
// never touches lab "xy-2"'s.
func removeNetnsEtc(lab string) error {
	ents, err := os.ReadDir(EtcNetns)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), NSPrefix+lab+"-") {
			continue
		}
		d := filepath.Join(EtcNetns, e.Name())
		if !ownedHosts(filepath.Join(d, "hosts"), lab) {
			continue
		}
		if err := os.Remove(filepath.Join(d, "hosts")); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		_ = os.Remove(d) // only if empty: a user's own files stay
	}
	return errors.Join(errs...)
}

func ownedHosts(path, lab string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return false
	}
	return strings.HasPrefix(sc.Text(), "# labctl lab "+lab+", host ")
}
