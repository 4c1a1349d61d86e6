package grade

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labctl/labctl/topo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func manifestDir(t *testing.T, files map[string]string) string {
	t.Helper()
	d := t.TempDir()
	for name, body := range files {
		p := filepath.Join(d, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	return d
}

func xyRoles() []role {
	return []role{{key: "server/xy", host: "server", ref: "server", template: "{run:server}"},
		{key: "x/client", host: "x", ref: "x", template: "{run:client}"}}
}

func TestManifestIsCheckedAndApplied(t *testing.T) {
	lab, err := topo.Builtin("xy")
	require.NoError(t, err)
	dir := manifestDir(t, map[string]string{
		"in/x.txt": "Alice\n",
		"d/motd":   "hello\n",
		ManifestName: "roles:\n  server: {command: python3 s/srv.py, ports: [5555, 'udp:9000']}\n  x: {stdin: in/x.txt}\n" +
			"files:\n  server: [{from: d/motd, path: srv/motd}]\n",
	})
	mp, err := loadManifest(dir, lab, xyRoles())
	require.NoError(t, err)
	assert.Equal(t, "python3 s/srv.py", mp.template(xyRoles()[0]))
	assert.Equal(t, "{run:client}", mp.template(xyRoles()[1]))
	for _, r := range xyRoles() {
		_, err := overrideIn(lab, r.ref)
		require.NoError(t, err)
	}
	require.NoError(t, mp.apply(lab, xyRoles()))
	srv := lab.Node("server")
	assert.Equal(t, "5555", srv.Programs[0].Ready.TCP)
	assert.True(t, srv.Programs[0].StrictReady)
	assert.Equal(t, "12000", srv.Programs[0].LabReady.TCP)
	assert.True(t, srv.Exposed(5555))
	assert.True(t, srv.Exposed(9000))
	assert.Contains(t, srv.Files, topo.File{Path: "srv/motd", Content: "hello\n"})
	var fwd []int
	for _, f := range lab.Node("y").Localhost {
		fwd = append(fwd, f.Port)
	}
	assert.Equal(t, []int{12000, 5555, 9000}, fwd, "y, a client of server, reaches its ports on localhost")
	require.Len(t, lab.Node("x").Programs[0].Stdin, 1)
	assert.Equal(t, "Alice", lab.Node("x").Programs[0].Stdin[0].Text)
	require.NoError(t, lab.Build())

	none, err := loadManifest(t.TempDir(), lab, xyRoles())
	require.NoError(t, err)
	assert.Nil(t, none)
	assert.Equal(t, "{run:server}", none.template(xyRoles()[0]))
}

func TestBadManifestsSayWhatIsWrong(t *testing.T) {
	lab, err := topo.Builtin("xy")
	require.NoError(t, err)
	outside := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(outside, []byte("no"), 0o644))
	for _, c := range []struct{ manifest, want string }{
		{"roles:\n  nosuch: {command: a}\n", `labctl.yaml: roles.nosuch: the lab "xy" has no host "nosuch"`},
		{"roles:\n  y: {command: a}\n", `labctl.yaml: roles.y: "y" is not a program this grading replaces (the roles: server, x)`},
		{"roles:\n  server: {ports: [0]}\n", `labctl.yaml: roles.server.ports: "0": want a port 1-65535 (or tcp:PORT, udp:PORT)`},
		{"roles:\n  server: {ports: [sctp:5]}\n", `want a port 1-65535`},
		{"roles:\n  x: {stdin: /etc/passwd}\n", `labctl.yaml: roles.x.stdin: "/etc/passwd" is outside the submission`},
		{"roles:\n  x: {stdin: link}\n", `labctl.yaml: roles.x.stdin: "link" is outside the submission (it leads to`},
		{"roles:\n  x: {stdin: missing.txt}\n", `labctl.yaml: roles.x.stdin: "missing.txt": no such file or directory`},
		{"files:\n  s1: [{from: a.txt}]\n", `labctl.yaml: files.s1: the lab "xy" has no host "s1"`},
		{"files:\n  server: [{from: a.txt, path: ../a.txt}]\n", `labctl.yaml: files.server[0].path: "../a.txt": want a relative path inside the host's home`},
		{"files:\n  server: [{from: bin}]\n", `is not text (UTF-8)`},
		{"role: {}\n", `labctl.yaml: yaml: unmarshal errors: line 1: field role not found`},
		{"roles: [\n", `labctl.yaml: yaml:`},
	} {
		dir := manifestDir(t, map[string]string{ManifestName: c.manifest, "a.txt": "a\n", "bin": "\xff\xfe"})
		require.NoError(t, os.Symlink(outside, filepath.Join(dir, "link")))
		_, err := loadManifest(dir, lab, xyRoles())
		require.Error(t, err, c.manifest)
		assert.Contains(t, err.Error(), c.want, c.manifest)
		assert.NotContains(t, err.Error(), "\n", "one line")
	}
	big := manifestDir(t, map[string]string{ManifestName: "# " + strings.Repeat("x", maxManifest) + "\n"})
	_, err = loadManifest(big, lab, xyRoles())
	assert.EqualError(t, err, "labctl.yaml: over 64 KiB")
}

// A pair lab's role (`client`) in a manifest stands for each of its hosts.
func TestManifestRoleOfTheLabCoversItsHosts(t *testing.T) {
	lab, err := topo.Builtin("filesvc-pair")
	require.NoError(t, err)
	var roles []role
	for _, h := range lab.Roles["client"] {
		n := lab.Node(h)
		require.NotNil(t, n, h)
		roles = append(roles, role{key: h + "/" + n.Programs[0].Name, host: h, ref: h, template: "{run:client}"})
	}
	dir := manifestDir(t, map[string]string{"in.txt": "list\n", ManifestName: "roles:\n  client: {command: python3 c.py, stdin: in.txt}\n"})
	mp, err := loadManifest(dir, lab, roles)
	require.NoError(t, err)
	for _, r := range roles {
		assert.Equal(t, "python3 c.py", mp.template(r), r.host)
		assert.Contains(t, mp.stdin, r.key)
	}
}
