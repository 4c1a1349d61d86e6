package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Their own ports: students pick a port of their own and bind 127.0.0.1.
// labctl learns it from the replaced server's sockets, exposes it to the
// lab, forwards the clients' localhost:PORT to it, and leads the lab's own
// port to it for the reference clients.

// ownPortServer is studentServer on port 5555, bound to 127.0.0.1, reading
// each message with one recv (studentClient sends it bare, with no
// newline).
var ownPortServer = strings.NewReplacer("BIND", `"127.0.0.1"`, "12000", "5555",
	`c.makefile("r").readline().strip()`, `c.recv(1024).decode().strip()`).Replace(studentServer)

// ownPortClient is studentClient connecting to localhost:5555.
var ownPortClient = strings.Replace(studentClient, "12000", "5555", 1)

func TestStudentServerAndClientOnTheirOwnPortPassTheXYLab(t *testing.T) {
	dir := inFolder(t, map[string]string{"server.py": ownPortServer, "client.py": ownPortClient})
	r := labctlIn(t, dir, "run", "xy", "--name", labName("ownp"),
		"--program", "server=python3 server.py", "--program", "x=python3 client.py")
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, " 0 failed", "%s", r)
	assert.Contains(t, r.stdout, "listens on tcp port 5555 (on 127.0.0.1, exposed on 10.0.0.1); localhost:5555 on x, y leads to it", "%s", r)
	assert.Contains(t, r.stdout, "the lab's tcp port 12000 leads to xy's own port 5555", "%s", r)
	// x is the student's client (on localhost:5555), y the reference one
	// (on server:12000): both reach the student's server.
	assert.Contains(t, r.stdout, "From Server: Y: Bob received before X: Alice", "%s", r)
}

func TestLocalhostAutoForwardsAServersOwnUDPPort(t *testing.T) {
	// A lab that names no port at all: b's localhost: auto takes whatever
	// port a's replaced server binds (UDP here, on 127.0.0.1).
	server := "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('127.0.0.1', 7171))\nwhile True:\n    b, peer = s.recvfrom(100)\n    print('got', b.decode(), flush=True)\n    s.sendto(b.upper(), peer)\n"
	client := "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(5)\nfor m in ['one', 'two']:\n    s.sendto(m.encode(), ('localhost', 7171))\n    print(s.recvfrom(100)[0].decode())\n"
	dir := inFolder(t, map[string]string{"server.py": server, "client.py": client})
	f := writeLab(t, "auto.yaml", twoHosts+`
hosts:
  a:
    programs:
      - {name: srv, command: "true", service: true, ready: {udp: 9000, timeout: 5s}}
  b:
    localhost: auto
    programs:
      - {name: cl, command: "true", after: [a/srv]}
checks:
  - {output: b/cl, matches: ['^ONE$', '^TWO$'], in_order: true}
  - {output: a/srv, contains: [got one, got two]}
  - {exit: b/cl}
`)
	r := labctlIn(t, dir, "run", "--name", labName("auto"), "-f", f,
		"--program", "a=python3 server.py", "--program", "b=python3 client.py")
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "3 passed, 0 failed", "%s", r)
	assert.Contains(t, r.stdout, "localhost:7171 on b leads to it", "%s", r)
}

func TestLocalhostAutoIsOnlyAWordOrAFlag(t *testing.T) {
	f := writeLab(t, "badauto.yaml", twoHosts+`
hosts:
  a: {}
  b:
    localhost: everything
`)
	r := labctl(t, "up", "--name", labName("bada"), "-f", f)
	require.NotEqual(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stderr, `"everything": want auto, or a mapping of ports to NODE or NODE:PORT`, "%s", r)
}

// manifestServer is ownPortServer on port 6060 that prints the first line
// of motd.txt, a file its labctl.yaml serves, as its start line.
var manifestServer = strings.NewReplacer("5555", "6060",
	`print("Server is started")`, `print(open("motd.txt").read().strip())`).Replace(ownPortServer)

func TestGradeOwnPortsAndManifests(t *testing.T) {
	good := map[string]string{"server.py": ownPortServer, "client.py": ownPortClient}
	withManifest := func(m string) map[string]string {
		return map[string]string{"server.py": ownPortServer, "client.py": ownPortClient, "labctl.yaml": m}
	}
	cases := []gradeCase{
		{name: "own-port", files: good},
		// An odd layout, graded without touching the code: the manifest
		// names the commands, the port, x's typing and a file to serve.
		{name: "manifest", files: map[string]string{
			"src/srv_main.py":  manifestServer,
			"app/cli.py":       strings.Replace(studentClient, "12000", "6060", 1),
			"data/motd.txt":    "Server is started\n",
			"inputs/x.yaml":    "- {line: Alice, delay: 1500ms}\n",
			"notes/README.txt": "not code\n",
			"labctl.yaml": `roles:
  server: {command: python3 src/srv_main.py, ports: [6060]}
  x: {command: python3 app/cli.py, stdin: inputs/x.yaml}
files:
  server:
    - {from: data/motd.txt, path: motd.txt}
`}},
		{name: "bad-host", files: withManifest("roles:\n  nosuch: {command: python3 server.py}\n")},
		{name: "bad-port", files: withManifest("roles:\n  server: {ports: [70000]}\n")},
		{name: "bad-file", files: withManifest("roles:\n  x: {stdin: ../../../etc/passwd}\n")},
	}
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	for _, c := range cases {
		for f, body := range c.files {
			p := filepath.Join(dir, c.name, f)
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		}
	}
	name := labName("gp")
	out := filepath.Join(t.TempDir(), "report")
	t.Cleanup(func() {
		labctl(t, "grade", "down", name)
		requireNoGradingLeft(t, name)
	})
	r := labctl(t, "grade", "xy", "--submissions", dir, "--name", name, "--out", out,
		"--program", "server={run:server}", "--program", "x={run:client}")
	require.Equal(t, 0, r.code, "%s", r)
	rep := readReport(t, out)
	require.Len(t, rep.Rows, len(cases))
	got := map[string][2]string{}
	for _, row := range rep.Rows {
		got[row.Submission] = [2]string{row.Outcome, row.Reason}
	}
	assert.Equal(t, "pass", got["own-port"][0], got["own-port"][1])
	assert.Equal(t, "pass", got["manifest"][0], got["manifest"][1])
	assert.Equal(t, [2]string{"not-gradable", `labctl.yaml: roles.nosuch: the lab "xy" has no host "nosuch"`}, got["bad-host"])
	assert.Equal(t, [2]string{"not-gradable", `labctl.yaml: roles.server.ports: "70000": want a port 1-65535 (or tcp:PORT, udp:PORT)`}, got["bad-port"])
	assert.Equal(t, [2]string{"not-gradable", `labctl.yaml: roles.x.stdin: "../../../etc/passwd" is outside the submission`}, got["bad-file"])
}

func TestReadyFlagMakesAReplacedServerWaitForThatPort(t *testing.T) {
	// The server opens a port of no interest first, and its service port
	// a second later: with --ready only the named port makes it ready, and
	// b's localhost reaches both.
	server := `import socket, time
def listen(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(4); return s
admin = listen(5555)
print("admin up", flush=True)
time.sleep(1)
srv = listen(7000)
print("service up", flush=True)
c, _ = srv.accept()
c.sendall(b"hello from 7000\n")
c.close()
`
	client := "import socket\ns = socket.create_connection(('localhost', 7000), timeout=5)\nprint(s.makefile().readline().strip())\n"
	dir := inFolder(t, map[string]string{"server.py": server, "client.py": client})
	f := writeLab(t, "strict.yaml", twoHosts+`
hosts:
  a:
    programs:
      - {name: srv, command: "true", ready: {tcp: 9000, timeout: 10s}, time_limit: 20s}
  b:
    localhost: auto
    programs:
      - {name: cl, command: "true", after: [a/srv]}
checks:
  - {output: b/cl, contains: hello from 7000}
`)
	r := labctlIn(t, dir, "run", "--name", labName("strict"), "-f", f,
		"--program", "a=python3 server.py", "--program", "b=python3 client.py", "--ready", "a=tcp:7000")
	require.Equal(t, 0, r.code, "%s", r)
	assert.Regexp(t, `(?s)listens on tcp port 5555 .*service up.*listens on tcp port 7000 .*ready \(tcp port 7000 reachable from the lab\).*b/cl\s+\* started`, r.stdout)
	assert.NotContains(t, r.stdout, "a port it listens on is reachable")
	assert.Contains(t, r.stdout, "the lab's tcp port 9000 leads to srv's own port 7000", "the named port stands for the lab's, not the first")
}
