package nodes

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/labctl/labctl/topo"
)

// Plan is what a lab's supervisor runs: the programs of every host with
// their commands resolved (addresses expanded, "labctl" pointing at the
// lab's copy of the binary), the checks and the timeline. `up` writes it to
// DIR/plan.json; the supervisor reads it.
type Plan struct {
	Lab      string        `json:"lab"`
	Seed     int64         `json:"seed"`
	UID      int           `json:"uid"`
	GID      int           `json:"gid"`
	User     string        `json:"user"`
	Hosts    []PlanHost    `json:"hosts"`
	Checks   []topo.Check  `json:"checks"`
	Timeline []topo.Event  `json:"timeline"`
	Created  time.Time     `json:"created"`
	Deadline time.Duration `json:"deadline"` // bound on the whole run of the tasks
	// BinDir holds the lab's copy of labctl; it leads the programs' PATH, so
	// "labctl app ..." works inside their scripts too.
	BinDir string `json:"bin_dir"`
	// Path: the lab's path: folders, first on every program's PATH.
	Path []string `json:"path,omitempty"`
	// LogMark starts the log records of labctl's own processes in the
	// lab (see LogMarkEnv).
	LogMark string `json:"log_mark,omitempty"`
}

// PlanHost is one host's share of the plan.
type PlanHost struct {
	Name     string         `json:"name"`
	NS       string         `json:"netns"`
	Home     string         `json:"home"`
	Files    []topo.File    `json:"files,omitempty"`
	Programs []topo.Program `json:"programs"`
	// Addrs are the host's lab addresses (no prefix length).
	Addrs []string `json:"addrs,omitempty"`
	// Hosts is the hosts file its programs see as /etc/hosts.
	Hosts     string         `json:"hosts,omitempty"`
	Localhost []topo.Forward `json:"localhost,omitempty"`
	Expose    []int          `json:"expose,omitempty"`
	// LocalhostAuto: the host forwards the ports replaced servers learn
	// (autoports_linux.go).
	LocalhostAuto bool `json:"localhost_auto,omitempty"`
	// CopyFrom is the folder whose files an overridden program finds in
	// its home (a writable copy), "" if none.
	CopyFrom string `json:"copy_from,omitempty"`
}

// HomeDir is where a host's programs run by default and its files live.
func HomeDir(lab, host string) string { return filepath.Join(Dir(lab), "hosts", host) }

// LogDir holds a lab's program logs, one file per program.
func LogDir(lab string) string { return filepath.Join(Dir(lab), "logs") }

// ProgramLog is the log file of one program.
func ProgramLog(lab, host, prog string) string {
	return filepath.Join(LogDir(lab), host, prog+".log")
}

// OutputLog interleaves the output of all a lab's programs, in the order the
// supervisor read it.
func OutputLog(lab string) string { return filepath.Join(Dir(lab), "output.log") }

// ResultPath holds the outcome of the checks once the tasks are over.
func ResultPath(lab string) string { return filepath.Join(Dir(lab), "result.json") }

func planPath(lab string) string { return filepath.Join(Dir(lab), "plan.json") }

// Save writes the plan.
func (p *Plan) Save() error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(planPath(p.Lab), b, 0o644)
}

// LoadPlan reads a lab's plan.
func LoadPlan(lab string) (*Plan, error) {
	b, err := os.ReadFile(planPath(lab))
	if err != nil {
		return nil, fmt.Errorf("lab %q: plan: %w", lab, err)
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("lab %q: plan: %w", lab, err)
	}
	return &p, nil
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Result is what the supervisor reports when the tasks are over.
type Result struct {
	Checks   []CheckResult   `json:"checks"`
	Programs []ProgramStatus `json:"programs"`
	Passed   int             `json:"passed"`
	Failed   int             `json:"failed"`
	Manual   int             `json:"manual,omitempty"` // checks only a person can judge
	// Score and MaxScore sum the points of the checks that carry them
	// (manual ones count in MaxScore only).
	Score    int           `json:"score,omitempty"`
	MaxScore int           `json:"max_score,omitempty"`
	Took     time.Duration `json:"took"`
}

// CheckResult is the verdict of one check.
type CheckResult struct {
	Title  string `json:"title"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail,omitempty"`
	Line   int    `json:"line,omitempty"`
	// Points the check is worth, and the Score it earned (Points or 0).
	Points int  `json:"points,omitempty"`
	Score  int  `json:"score,omitempty"`
	Manual bool `json:"manual,omitempty"` // needs a person: neither passed nor failed
}

// ProgramStatus says how a program fared.
type ProgramStatus struct {
	Program  string `json:"program"` // host/program
	State    string `json:"state"`   // running, ready, exited, killed, timed out, skipped, failed
	Status   *int   `json:"status,omitempty"`
	Signal   string `json:"signal,omitempty"`
	Restarts int    `json:"restarts,omitempty"`
	Detail   string `json:"detail,omitempty"`
	// LabSignal: the signal that ended it came from labctl (the timeline,
	// the time limit), so it did not crash.
	LabSignal bool `json:"lab_signal,omitempty"`
	// Window: it ran under a virtual display (display: true) and drew
	// something; Screenshot is the last such frame, a PNG.
	Window     bool   `json:"window,omitempty"`
	Screenshot string `json:"screenshot,omitempty"`
}

// LoadResult reads the result, or an error wrapping os.ErrNotExist while
// the run goes on.
func LoadResult(lab string) (*Result, error) {
	b, err := os.ReadFile(ResultPath(lab))
	if err != nil {
		return nil, err
	}
	var r Result
	return &r, json.Unmarshal(b, &r)
}

func newLogMark() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "labctl-log-" + hex.EncodeToString(b) + " "
}

// nobody is the user programs run as when no one invoked labctl via sudo.
const nobody = 65534

// BuildPlan resolves a deployed lab's programs into a plan: the programs'
// user (SUDO_UID/SUDO_GID, else nobody), a copy of this labctl binary that
// user can run, addresses expanded in commands and environments, and
// working folders. cwd is where labctl was invoked: commands given with
// --program run there.
func BuildPlan(lab *topo.Lab, st *State, cwd string) (*Plan, error) {
	plan := &Plan{Lab: st.Lab, Seed: lab.Seed, UID: nobody, GID: nobody, User: "nobody",
		Checks: lab.Checks, Timeline: lab.Timeline, Created: time.Now().UTC(), Path: lab.Path, LogMark: newLogMark()}
	if u, g := os.Getenv("SUDO_UID"), os.Getenv("SUDO_GID"); u != "" && g != "" && u != "0" {
		if _, err := fmt.Sscan(u, &plan.UID); err != nil {
			return nil, fmt.Errorf("SUDO_UID %q: %w", u, err)
		}
		if _, err := fmt.Sscan(g, &plan.GID); err != nil {
			return nil, fmt.Errorf("SUDO_GID %q: %w", g, err)
		}
		plan.User = os.Getenv("SUDO_USER")
	}
	exe, err := copySelf(st.Lab)
	if err != nil {
		return nil, err
	}
	plan.BinDir = filepath.Dir(exe)
	labDir := ""
	if !strings.HasPrefix(lab.Source, "builtin:") && !strings.HasPrefix(lab.Source, "topo:") {
		labDir, _ = filepath.Abs(filepath.Dir(lab.Source))
	}
	var longest, delays time.Duration
	for _, n := range lab.Nodes {
		if n.Kind == topo.Switch || (len(n.Programs) == 0 && len(n.Files) == 0 && len(n.Localhost) == 0 && !n.LocalhostAuto) {
			continue
		}
		h := PlanHost{Name: n.Name, NS: NSName(st.Lab, n.Name), Home: HomeDir(st.Lab, n.Name), Files: n.Files,
			Hosts: HostsPath(st.Lab, n.Name), Expose: n.Expose, LocalhostAuto: n.LocalhostAuto}
		for _, i := range n.Ifaces {
			if i.Addr != "" {
				h.Addrs = append(h.Addrs, strings.SplitN(i.Addr, "/", 2)[0])
			}
		}
		for _, f := range n.Localhost {
			f.Addr = lab.Node(f.Node).Addr()
			h.Localhost = append(h.Localhost, f)
		}
		for _, p := range n.Programs {
			rp, err := resolveProgram(lab, p, h.Home, labDir)
			if err != nil {
				return nil, fmt.Errorf("host %q: program %q: %w", n.Name, p.Name, err)
			}
			if p.Overridden {
				h.CopyFrom = cwd
			}
			h.Programs = append(h.Programs, rp)
			delays += p.StartDelay.D()
			limit := p.TimeLimit.D()
			if limit == 0 {
				limit = defaultTaskMax
			}
			if !p.Service && limit > longest {
				longest = limit
			}
			if p.Ready != nil {
				delays += p.Ready.Timeout.D()
			}
		}
		plan.Hosts = append(plan.Hosts, h)
	}
	plan.Deadline = longest + delays + 10*time.Second
	return plan, nil
}

// resolveProgram expands ${host} in a program's command, environment and
// stdin lines, and settles its folder: an overridden program's is its
// host's home, which holds a copy of the folder labctl was started in.
func resolveProgram(lab *topo.Lab, p topo.Program, home, labDir string) (topo.Program, error) {
	args := make([]string, len(p.Command))
	for i, a := range p.Command {
		v, err := lab.Expand(a)
		if err != nil {
			return p, err
		}
		args[i] = v
	}
	// "labctl" stays as written: the lab's copy leads the programs' PATH,
	// and the logs show the command the lab file gave.
	p.Command = args
	env := map[string]string{}
	for k, v := range p.Env {
		x, err := lab.Expand(v)
		if err != nil {
			return p, fmt.Errorf("env %s: %w", k, err)
		}
		env[k] = x
	}
	p.Env = env
	stdin := make([]topo.StdinLine, len(p.Stdin))
	for i, l := range p.Stdin {
		x, err := lab.Expand(l.Text)
		if err != nil {
			return p, fmt.Errorf("stdin: %w", err)
		}
		l.Text = x
		stdin[i] = l
	}
	p.Stdin = stdin
	base := home
	switch {
	case p.Overridden:
		p.Dir = ""
	case p.Dir != "" && labDir != "":
		base = labDir
	}
	switch {
	case p.Dir == "":
		p.Dir = base
	case !filepath.IsAbs(p.Dir):
		p.Dir = filepath.Join(base, p.Dir)
	}
	return p, nil
}

// BinRoot holds, per lab, the copy of labctl its programs run. It is not
// under StateRoot because /run is often mounted noexec (Ubuntu's is).
var BinRoot = "/var/lib/labctl"

// BinDir is where a lab's copy of labctl lives.
func BinDir(lab string) string { return filepath.Join(BinRoot, lab) }

// copySelf puts a copy of this binary where the programs' unprivileged user
// can run it (the original may sit in a home folder that user cannot
// enter).
func copySelf(lab string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	dst := filepath.Join(BinDir(lab), "labctl")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	in, err := os.Open(exe)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", err
	}
	return dst, out.Close()
}
