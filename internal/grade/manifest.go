package grade

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labctl/labctl/topo"
	"go.yaml.in/yaml/v3"
)

// ManifestName is the file in a submission's folder that says how to run
// it, when the grading's templates do not fit its layout.
const ManifestName = "labctl.yaml"

// Bounds on what a manifest may carry.
const (
	maxManifest      = 64 << 10 // the file itself
	maxManifestFiles = 64       // files to serve, in all
	maxServedFile    = 1 << 20  // each file to serve
	maxStdinFile     = 1 << 20  // each stdin file
	maxPorts         = 16       // per role
)

// manifest is a submission's labctl.yaml:
//
//	roles:
//	  server:
//	    command: python3 src/server.py --port 5555
//	    ports: [5555]          # TCP; "udp:9000" for UDP
//	  x:
//	    command: python3 src/client.py
//	    stdin: inputs/x.txt    # .yaml: a list of stdin lines
//	files:
//	  server:
//	    - {from: data/notes.txt, path: repo/notes.txt}
type manifest struct {
	Roles map[string]manifestRole   `yaml:"roles"`
	Files map[string][]manifestFile `yaml:"files"`
}

type manifestRole struct {
	Command string   `yaml:"command"`
	Ports   []string `yaml:"ports"`
	Stdin   string   `yaml:"stdin"`
}

type manifestFile struct {
	From string `yaml:"from"`
	Path string `yaml:"path"`
}

// manifestPlan is a checked manifest, ready to apply: per role key its command,
// ports and stdin, and the files to put on hosts.
type manifestPlan struct {
	commands map[string]string // role key -> command (a template)
	ports    map[string][]port // role key -> ports
	stdin    map[string]stdinFile
	files    map[string][]topo.File // host -> files
}

type port struct {
	proto string
	n     int
}

type stdinFile struct {
	data []byte
	yaml bool
}

// loadManifest reads and checks dir's labctl.yaml against the lab and the
// grading's roles. No manifest is (nil, nil). Every error names the file
// and what is wrong; the submission then gets that as its reason.
func loadManifest(dir string, lab *topo.Lab, roles []role) (*manifestPlan, error) {
	path := filepath.Join(dir, ManifestName)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestName, unwrapErr(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestName, err)
	}
	if len(b) > maxManifest {
		return nil, fmt.Errorf("%s: over %d KiB", ManifestName, maxManifest>>10)
	}
	var m manifest
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil && !errors.Is(err, io.EOF) {
		// yaml's errors span lines; a row's reason is one.
		return nil, fmt.Errorf("%s: %s", ManifestName, strings.Join(strings.Fields(err.Error()), " "))
	}
	mp := &manifestPlan{commands: map[string]string{}, ports: map[string][]port{}, stdin: map[string]stdinFile{}, files: map[string][]topo.File{}}
	for _, given := range sortedKeys(m.Roles) {
		mr := m.Roles[given]
		// A role of the lab (a pair lab's `client`) stands for each of its
		// programs; anything else names one host or host/program.
		names := []string{given}
		if members, ok := lab.Roles[given]; ok && lab.Node(given) == nil {
			names = members
		}
		for _, name := range names {
			where := fmt.Sprintf("%s: roles.%s", ManifestName, given)
			host, _, _ := strings.Cut(name, "/")
			if lab.Node(host) == nil {
				return nil, fmt.Errorf("%s: the lab %q has no host %q", where, lab.Name, host)
			}
			r, ok := findRole(roles, name)
			if !ok {
				return nil, fmt.Errorf("%s: %q is not a program this grading replaces (%s)", where, name, roleList(roles))
			}
			if strings.TrimSpace(mr.Command) != "" {
				if _, err := topo.SplitCommand(mr.Command); err != nil {
					return nil, fmt.Errorf("%s.command: %w", where, err)
				}
				mp.commands[r.key] = mr.Command
			}
			if len(mr.Ports) > maxPorts {
				return nil, fmt.Errorf("%s.ports: %d ports, more than %d", where, len(mr.Ports), maxPorts)
			}
			for _, s := range mr.Ports {
				p, err := parseManifestPort(s)
				if err != nil {
					return nil, fmt.Errorf("%s.ports: %w", where, err)
				}
				mp.ports[r.key] = append(mp.ports[r.key], p)
			}
			if mr.Stdin != "" {
				data, err := readInside(dir, mr.Stdin, maxStdinFile)
				if err != nil {
					return nil, fmt.Errorf("%s.stdin: %w", where, err)
				}
				ext := strings.ToLower(filepath.Ext(mr.Stdin))
				mp.stdin[r.key] = stdinFile{data: data, yaml: ext == ".yaml" || ext == ".yml"}
			}
		}
	}
	n := 0
	for _, host := range sortedKeys(m.Files) {
		where := fmt.Sprintf("%s: files.%s", ManifestName, host)
		if nd := lab.Node(host); nd == nil || nd.Kind == topo.Switch {
			return nil, fmt.Errorf("%s: the lab %q has no host %q", where, lab.Name, host)
		}
		for i, mf := range m.Files[host] {
			if n++; n > maxManifestFiles {
				return nil, fmt.Errorf("%s: more than %d files to serve", ManifestName, maxManifestFiles)
			}
			w := fmt.Sprintf("%s[%d]", where, i)
			data, err := readInside(dir, mf.From, maxServedFile)
			if err != nil {
				return nil, fmt.Errorf("%s.from: %w", w, err)
			}
			to := mf.Path
			if to == "" {
				to = mf.From
			}
			if !local(to) {
				return nil, fmt.Errorf("%s.path: %q: want a relative path inside the host's home", w, to)
			}
			if !utf8.Valid(data) {
				return nil, fmt.Errorf("%s.from: %q is not text (UTF-8): files here carry text; a binary file reaches a replaced program's host in its copy of the submission", w, mf.From)
			}
			mp.files[host] = append(mp.files[host], topo.File{Path: filepath.Clean(to), Content: string(data)})
		}
	}
	return mp, nil
}

// template is the command a role runs: the manifest's, else the
// grading's template. mp may be nil (no manifest).
func (mp *manifestPlan) template(r role) string {
	if mp != nil {
		if c, ok := mp.commands[r.key]; ok {
			return c
		}
	}
	return r.template
}

// apply puts the manifest's stdin, ports and files into a submission's
// lab, whose roles' programs are already replaced.
func (mp *manifestPlan) apply(lab *topo.Lab, roles []role) error {
	for _, r := range roles {
		if s, ok := mp.stdin[r.key]; ok {
			if err := lab.OverrideStdin(r.ref+"="+ManifestName, s.data, s.yaml); err != nil {
				return err
			}
		}
		ports := mp.ports[r.key]
		if len(ports) == 0 {
			continue
		}
		n := lab.Node(r.host)
		if err := lab.OverrideReady(r.ref + "=" + ports[0].proto + ":" + strconv.Itoa(ports[0].n)); err != nil {
			return err
		}
		for _, p := range ports {
			if !n.Exposed(p.n) {
				n.Expose = append(n.Expose, p.n)
			}
			// The lab's clients of this host reach the port on their
			// localhost, as for the ports labctl learns.
			for _, c := range lab.Nodes {
				if c == n || c.Kind == topo.Switch || !clientOf(c, n.Name) || forwards(c, p.n) {
					continue
				}
				c.Localhost = append(c.Localhost, topo.Forward{Port: p.n, Node: n.Name, ToPort: p.n})
			}
		}
	}
	for host, files := range mp.files {
		n := lab.Node(host)
		n.Files = append(n.Files, files...)
	}
	return nil
}

func clientOf(c *topo.Node, server string) bool {
	if c.LocalhostAuto {
		return true
	}
	for _, f := range c.Localhost {
		if f.Node == server {
			return true
		}
	}
	return false
}

func forwards(c *topo.Node, port int) bool {
	for _, f := range c.Localhost {
		if f.Port == port {
			return true
		}
	}
	return false
}

// parseManifestPort reads "5555", "tcp:5555" or "udp:9000".
func parseManifestPort(s string) (port, error) {
	proto, num := "tcp", s
	if p, n, ok := strings.Cut(s, ":"); ok {
		proto, num = p, n
	}
	n, err := strconv.Atoi(num)
	if (proto != "tcp" && proto != "udp") || err != nil || n < 1 || n > 65535 {
		return port{}, fmt.Errorf("%q: want a port 1-65535 (or tcp:PORT, udp:PORT)", s)
	}
	return port{proto: proto, n: n}, nil
}

// readInside reads a file the manifest names: a relative path that stays
// inside the submission, symlinks followed, at most limit bytes.
func readInside(dir, rel string, limit int64) ([]byte, error) {
	if !local(rel) {
		return nil, fmt.Errorf("%q is outside the submission", rel)
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(filepath.Join(root, rel))
	if err != nil {
		return nil, fmt.Errorf("%q: %w", rel, unwrapErr(err))
	}
	if r, err := filepath.Rel(root, real); err != nil || !filepath.IsLocal(r) {
		return nil, fmt.Errorf("%q is outside the submission (it leads to %q)", rel, real)
	}
	fi, err := os.Stat(real)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%q: %w", rel, unwrapErr(err))
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%q is not a file", rel)
	case fi.Size() > limit:
		return nil, fmt.Errorf("%q: %d bytes, more than %d", rel, fi.Size(), limit)
	}
	return os.ReadFile(real)
}

// local: a relative path that does not climb out of its folder.
func local(p string) bool { return p != "" && filepath.IsLocal(p) }

func findRole(roles []role, name string) (role, bool) {
	for _, r := range roles {
		if name == r.ref || name == r.key || name == r.host {
			return r, true
		}
	}
	return role{}, false
}

func roleList(roles []role) string {
	var s []string
	for _, r := range roles {
		s = append(s, r.ref)
	}
	return "the roles: " + strings.Join(s, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
