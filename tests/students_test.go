package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Real student programs, run unmodified: they hard-code localhost, bind
// 127.0.0.1 or gethostname(), print labels and prompts. The Python here
// uses only the standard library, as the submissions do.

// studentClient is a PA3 client the way the seed's figures show it: it
// connects to localhost:12000, prints what the server says with a label,
// asks for a message with a prompt and sends it bare, with no newline,
// reading each reply with one recv.
const studentClient = `import socket

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.connect(("localhost", 12000))
print("From Server:", sock.recv(1024).decode().strip())
msg = input("Enter message: ")
sock.send(msg.encode())
print(msg)
print("From Server:", sock.recv(1024).decode().strip())
sock.close()
`

// studentServer is a PA3 server that binds BIND (127.0.0.1 or
// gethostname()): only the lab's expose: makes it reachable.
const studentServer = `# The server needs a thread per client: each blocks in recv, and the
# first message to arrive, from either, must be seen first.
import socket, threading

srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((BIND, 12000))
srv.listen(2)
print("Server is started")
conns = []
for letter in "XY":
    c, _ = srv.accept()
    conns.append((letter, c))
for letter, c in conns:
    c.sendall(("Client %s connected\n" % letter).encode())
order, lock = [], threading.Lock()
def read(letter, c):
    line = c.makefile("r").readline().strip()
    with lock:
        print(line)
        order.append((letter, line.split(": ", 1)[-1]))
ts = [threading.Thread(target=read, args=lc) for lc in conns]
for t in ts: t.start()
for t in ts: t.join()
ack = "%s: %s received before %s: %s\n" % (order[0][0], order[0][1], order[1][0], order[1][1])
for _, c in conns:
    c.sendall(ack.encode())
    c.close()
print("Sent acknowledgment to both X and Y")
`

// inFolder writes files into a fresh folder and returns it.
func inFolder(t *testing.T, files map[string]string) string {
	t.Helper()
	d := t.TempDir()
	require.NoError(t, os.Chmod(d, 0o755))
	for name, body := range files {
		require.NoError(t, os.WriteFile(filepath.Join(d, name), []byte(body), 0o644))
	}
	return d
}

// labctlIn runs labctl from a folder, as a teacher does from a submission's.
func labctlIn(t *testing.T, dir string, args ...string) result {
	t.Helper()
	old, err := os.Getwd()
	require.NoError(t, err)
	require.NoError(t, os.Chdir(dir))
	defer func() { require.NoError(t, os.Chdir(old)) }()
	return labctl(t, args...)
}

func TestStudentClientWithHardCodedLocalhostPassesTheXYLab(t *testing.T) {
	dir := inFolder(t, map[string]string{"client.py": studentClient})
	r := labctlIn(t, dir, "run", "xy", "--name", labName("stcl"), "--program", "x=python3 client.py")
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "11 passed, 0 failed, 2 for a person, score 70/100", "%s", r)
	assert.Contains(t, r.stdout, "From Server: Y: Bob received before X: Alice")
	// The prompt is a line of its own, not glued to what follows.
	assert.Regexp(t, `x/client\s+\| Enter message: \n`, r.stdout)
}

func TestStudentServerOnLoopbackIsExposed(t *testing.T) {
	for _, bind := range []string{`"127.0.0.1"`, `socket.gethostname()`} {
		t.Run(bind, func(t *testing.T) {
			dir := inFolder(t, map[string]string{"server.py": strings.Replace(studentServer, "BIND", bind, 1)})
			r := labctlIn(t, dir, "run", "xy", "--name", labName("stsv"), "--program", "server=python3 server.py")
			require.Equal(t, 0, r.code, "%s", r)
			assert.Contains(t, r.stdout, "11 passed, 0 failed", "%s", r)
			assert.Contains(t, r.stdout, "tcp port 12000 listens on 127.0")
		})
	}
}

func TestLoopbackOnlyServerIsNotReadyAndSaysWhy(t *testing.T) {
	// The lab's own program (a replaced one would have its port learned
	// and exposed: ports_test.go).
	dir := inFolder(t, map[string]string{"server.py": strings.Replace(studentServer, "BIND", `"127.0.0.1"`, 1)})
	f := writeLab(t, "noexpose.yaml", twoHosts+`
hosts:
  a:
    programs:
      - name: srv
        command: python3 server.py
        dir: `+dir+`
        service: true
        ready: {tcp: 12000, timeout: 2s}
  b:
    programs:
      - {name: cl, command: "true", after: [a/srv]}
checks:
  - {output: b/cl, contains: anything}
`)
	r := labctl(t, "run", "--name", labName("noexp"), "-f", f)
	assert.Equal(t, 1, r.code, "%s", r)
	assert.Contains(t, r.stdout, "tcp port 12000 is bound to 127.0.0.1 only, which other hosts cannot reach (bind 0.0.0.0, or give host a `expose: [12000]`)", "%s", r)
	assert.Contains(t, r.stdout, "b/cl never started (a/srv did not become ready)")
}

func TestHostsHaveTheirNamesAndResolveEachOther(t *testing.T) {
	f := writeLab(t, "names.yaml", twoHosts+`
hosts:
  a:
    programs:
      - name: names
        command: ["python3", "-c", "import socket; print(socket.gethostname()); print(socket.gethostbyname('b')); print(socket.gethostbyname(socket.gethostname()))"]
      - {name: idle, command: ["sleep", "300"], service: true}
  b:
    programs:
      - {name: name, command: ["hostname"]}
checks:
  - output: a/names
    matches: ['^a$', '^10\.0\.0\.2$', '^127\.0\.1\.1$']
    in_order: true
  - {output: b/name, matches: '^b$'}
`)
	lab, r := up(t, "names", "-f", f)
	require.Contains(t, r.stdout, "2 passed, 0 failed", "%s", r)
	// `ip netns exec` users see the names too, until down.
	etc := filepath.Join("/etc/netns", "lab-"+lab+"-a", "hosts")
	b, err := os.ReadFile(etc)
	require.NoError(t, err)
	assert.Contains(t, string(b), "10.0.0.2\tb\n")
	require.Equal(t, 0, labctl(t, "down", lab).code)
	_, err = os.Stat(filepath.Dir(etc))
	assert.True(t, os.IsNotExist(err), "%s left behind", etc)
}

func TestPromptThenReadIsAnsweredAfterThePrompt(t *testing.T) {
	f := writeLab(t, "prompt.yaml", twoHosts+`
hosts:
  a:
    programs:
      - name: ask
        command: ["python3", "-c", "import time; time.sleep(0.5); n = input('Your name: '); print('Hello', n); s = input('Server? '); print('using', s)"]
        stdin:
          - {line: Alice, after: 'name: $'}
          - {line: "${b}:12000", after: '\?'}
  b: {}
checks:
  - output: a/ask
    matches: ['^Your name: $', '^Hello Alice$', '^Server\? $', '^using 10\.0\.0\.2:12000$']
    in_order: true
  - before:
      - {output: a/ask, matches: '^Your name: $'}
      - {output: a/ask, matches: '^Hello Alice$'}
`)
	_, r := up(t, "prompt", "-f", f)
	assert.Contains(t, r.stdout, "2 passed, 0 failed", "%s", r)
}

func TestFailedProgramsFailTheirChecksAndSayWhy(t *testing.T) {
	dir := inFolder(t, map[string]string{
		"crash.py":  "print('starting')\nraise RuntimeError('boom')\n",
		"syntax.py": "print('hello'\n",
	})
	f := writeLab(t, "crash.yaml", twoHosts+`
hosts:
  a:
    programs:
      - {name: crash, command: python3 crash.py}
      - {name: syntax, command: python3 syntax.py}
      - {name: silent, command: "true"}
      - {name: late, command: "sleep 5", ready: {line: never, timeout: 300ms}}
      - {name: never, command: "true", after: [late]}
  b: {}
checks:
  - {name: crash absent, output: a/crash, absent: ERROR}
  - {name: syntax contains, output: a/syntax, contains: hello}
  - {name: silent absent, output: a/silent, absent: ERROR}
  - {name: never absent, output: a/never, absent: ERROR}
`)
	r := labctlIn(t, dir, "run", "--name", labName("crash"), "-f", f, "--program", "a/crash=python3 crash.py", "--program", "a/syntax=python3 syntax.py")
	require.Equal(t, 1, r.code, "%s", r)
	assert.Contains(t, r.stdout, "0 passed, 4 failed", "%s", r)
	assert.Contains(t, r.stdout, `a/crash crashed (exited with status 1); the last of its stderr:`)
	assert.Contains(t, r.stdout, `"RuntimeError: boom"`)
	assert.Regexp(t, `a/syntax crashed \(exited with status 1\); the last of its stderr: .*SyntaxError`, r.stdout)
	assert.Contains(t, r.stdout, "a/silent printed nothing (exited with status 0)")
	assert.Contains(t, r.stdout, "a/never never started (a/late did not become ready)")
}

func TestLooseCountAndPoints(t *testing.T) {
	f := writeLab(t, "loose.yaml", twoHosts+`
hosts:
  a:
    programs:
      - name: p
        command: ["sh", "-c", "echo 'FROM SERVER:  x: alice   received before Y: Bob!!'; echo ping; echo ping"]
  b: {}
checks:
  - name: loose
    points: 3
    output: a/p
    loose: true
    matches: '^(.* )?X: Alice received before Y: Bob$'
  - name: strict
    points: 2
    output: a/p
    matches: '^X: Alice received before Y: Bob$'
  - {name: twice, points: 4, output: a/p, contains: ping, count: 2}
  - {name: once, points: 1, output: a/p, contains: ping, count: 1}
  - {name: read it, points: 10, manual: a person reads the code}
`)
	r := labctl(t, "run", "--name", labName("loose"), "-f", f)
	require.Equal(t, 1, r.code, "%s", r)
	assert.Contains(t, r.stdout, "PASS  loose [3/3]")
	assert.Contains(t, r.stdout, "FAIL  strict [0/2]")
	assert.Contains(t, r.stdout, "PASS  twice [4/4]")
	assert.Contains(t, r.stdout, "FAIL  once [0/1]")
	assert.Contains(t, r.stdout, "2 lines contain \"ping\", want exactly 1")
	assert.Contains(t, r.stdout, "TODO  read it [0/10]")
	assert.Contains(t, r.stdout, "2 passed, 2 failed, 1 for a person, score 7/20")
}

func TestTTYProgramSeesATerminal(t *testing.T) {
	f := writeLab(t, "tty.yaml", twoHosts+`
hosts:
  a:
    programs:
      - name: term
        tty: true
        command: ["python3", "-c", "import os, sys; print(os.isatty(0), os.isatty(1), os.isatty(2)); n = input('Name: '); print('hi', n); print(sys.stdin.read() == '')"]
        stdin: [{line: Alice, after: 'Name: '}]
  b: {}
checks:
  - output: a/term
    matches: ['^True True True$', '^Name: $', '^hi Alice$', '^True$']
    in_order: true
  - exit: a/term
`)
	_, r := up(t, "tty", "-f", f)
	assert.Contains(t, r.stdout, "2 passed, 0 failed", "%s", r)
}

func TestOutputCannotDriveTheTerminalButRawCaptureKeepsIt(t *testing.T) {
	f := writeLab(t, "ctl.yaml", twoHosts+`
hosts:
  a:
    programs:
      - name: p
        command: ["python3", "-c", "import sys; sys.stdout.buffer.write(b'\\x1b[31mred\\x1b[0m \\x1b[2J\\x1b]0;title\\x07 cr\\rover nul\\x00 bad\\xff\\n')"]
  b: {}
checks:
  - {output: a/p, contains: red}
`)
	lab, r := up(t, "ctl", "-f", f)
	require.Contains(t, r.stdout, "1 passed", "%s", r)
	for _, out := range []string{r.stdout, labctl(t, "logs", lab).stdout} {
		assert.Contains(t, out, "\x1b[31mred\x1b[0m \\x1b[2J\\x1b]0;title\\x07 cr\\rover nul\\x00 bad\\xff")
		assert.NotContains(t, out, "\x1b[2J")
		assert.NotContains(t, out, "\r")
	}
	log, err := os.ReadFile(filepath.Join("/run/labctl", lab, "logs", "a", "p.log"))
	require.NoError(t, err)
	assert.Contains(t, string(log), ` cr\rover nul\x00 bad\xff`, "the log is text")
	raw, err := os.ReadFile(filepath.Join("/run/labctl", lab, "logs", "a", "p.stdout.raw"))
	require.NoError(t, err)
	assert.Equal(t, "\x1b[31mred\x1b[0m \x1b[2J\x1b]0;title\x07 cr\rover nul\x00 bad\xff\n", string(raw))
}

func TestOverrideFlagsAndWritableCopy(t *testing.T) {
	dir := inFolder(t, map[string]string{
		"ask.py":      "a = input('First? ')\nb = input('Second? ')\nopen('answers.txt', 'w').write(a + b)\nprint('got', a, b)\n",
		"answers.txt": "",
		"typed.txt":   "one\ntwo\n",
	})
	require.NoError(t, os.Chmod(filepath.Join(dir, "answers.txt"), 0o444))
	f := writeLab(t, "flags.yaml", twoHosts+`
hosts:
  a:
    programs:
      - name: ask
        command: ["sleep", "30"]
        time_limit: 1s
        stdin: [wrong]
        student:
          time_limit: 20s
  b: {}
checks:
  - {output: a/ask, contains: got one two}
  - {exit: a/ask}
  - {same_file: ["a:answers.txt", "a:expected.txt"]}
`)
	lab, r := func() (string, result) {
		old, err := os.Getwd()
		require.NoError(t, err)
		require.NoError(t, os.Chdir(dir))
		defer func() { require.NoError(t, os.Chdir(old)) }()
		return upExpect(t, 1, "flags", "-f", f, "--program", "a=python3 ask.py", "--stdin", "a=typed.txt", "--ready", "a=none")
	}()
	// expected.txt is not there: the same_file check fails, the others pass.
	assert.Contains(t, r.stdout, "2 passed, 1 failed", "%s", r)
	got, err := os.ReadFile(filepath.Join("/run/labctl", lab, "hosts", "a", "answers.txt"))
	require.NoError(t, err)
	assert.Equal(t, "onetwo", string(got), "the program wrote in its copy")
	orig, err := os.ReadFile(filepath.Join(dir, "answers.txt"))
	require.NoError(t, err)
	assert.Empty(t, orig, "the original folder is untouched")
}

// TestPathReachesAnInterpreterUnderAClosedFolder runs a pyenv python3
// (under /root, which is 0700) as nobody, through path:.
func TestPathReachesAnInterpreterUnderAClosedFolder(t *testing.T) {
	bins, _ := filepath.Glob("/root/.pyenv/versions/3.*/bin/python3")
	if len(bins) == 0 {
		t.Skip("no pyenv python3 under /root on this machine")
	}
	dir := filepath.Dir(bins[len(bins)-1])
	f := writeLab(t, "path.yaml", twoHosts+`
hosts:
  a:
    programs:
      - name: py
        command: ["python3", "-c", "import os, sys, tkinter; print(os.getuid(), sys.executable, tkinter.TkVersion > 0); print(sorted(os.listdir('/root')))"]
        path: [`+dir+`]
  b: {}
checks:
  - output: a/py
    matches: ['^65534 `+regexp.QuoteMeta(dir)+`/python3 True$', "^\\['.pyenv'\\]$"]
`)
	_, r := up(t, "path", "-f", f)
	assert.Contains(t, r.stdout, "1 passed, 0 failed", "%s", r)
}

// TestUDPServerOnLoopbackAndClientOnLocalhost: a UDP echo server bound to
// 127.0.0.1 (exposed) and a client that sends to localhost (forwarded).
func TestUDPServerOnLoopbackAndClientOnLocalhost(t *testing.T) {
	f := writeLab(t, "udp.yaml", twoHosts+`
hosts:
  a:
    expose: [9000]
    programs:
      - name: echo
        service: true
        command: ["python3", "-c", "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('127.0.0.1', 9000))\nwhile True:\n    b, peer = s.recvfrom(100)\n    print('got', b.decode(), flush=True)\n    s.sendto(b.upper(), peer)"]
        ready: {udp: 9000, timeout: 5s}
  b:
    localhost: {9000: a}
    programs:
      - name: cl
        after: [a/echo]
        command: ["python3", "-c", "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(5)\nfor m in ['one', 'two']:\n    s.sendto(m.encode(), ('localhost', 9000))\n    print(s.recvfrom(100)[0].decode())"]
checks:
  - {output: b/cl, matches: ['^ONE$', '^TWO$'], in_order: true}
  - {output: a/echo, contains: [got one, got two]}
  - {exit: b/cl}
`)
	_, r := up(t, "udp", "-f", f)
	assert.Contains(t, r.stdout, "3 passed, 0 failed", "%s", r)
	assert.Contains(t, r.stdout, "udp port 9000 listens on 127.0.0.1 only: exposed on 10.0.0.1")
}
