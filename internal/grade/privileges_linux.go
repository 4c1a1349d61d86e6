package grade

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Capabilities labctl grade needs, by number (linux/capability.h).
const (
	capNetAdmin = 12
	capSysAdmin = 21
)

// statusFile is read for the capabilities; a variable so tests can say so.
var statusFile = "/proc/self/status"

// CheckPrivileges fails at once, with what to do, where the process may
// not make network namespaces: a container without CAP_NET_ADMIN (as
// Gradescope's and most CI containers are) would otherwise fail on the
// first lab of every submission.
func CheckPrivileges() error {
	b, err := os.ReadFile(statusFile)
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(l, "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return fmt.Errorf("read capabilities %q: %w", v, err)
		}
		var missing []string
		if caps&(1<<capNetAdmin) == 0 {
			missing = append(missing, "CAP_NET_ADMIN")
		}
		if caps&(1<<capSysAdmin) == 0 {
			missing = append(missing, "CAP_SYS_ADMIN")
		}
		if len(missing) > 0 {
			return fmt.Errorf("this sandbox lacks %s, which network namespaces need: run labctl grade as root on a VM or CI runner, or in a privileged container (docker run --privileged; Kubernetes securityContext.privileged: true); see docs/grading.md", strings.Join(missing, " and "))
		}
		return nil
	}
	return fmt.Errorf("read capabilities: no CapEff line in %s", statusFile)
}
