package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The generated class for the xy lab: each submission is one folder with a
// client (x's program) and/or a server, in Python, C or Java.

const pyClient = `import socket, sys
s = socket.create_connection((sys.argv[1], 12000))
f = s.makefile("rw")
hello = f.readline().strip()
print(hello)
letter = hello.split()[1]
name = input()
msg = "Client %s: %s" % (letter, name)
f.write(msg + "\n"); f.flush()
print(msg)
print(f.readline().strip())
`

const cClient = `#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
	struct addrinfo hints = {0}, *ai;
	hints.ai_socktype = SOCK_STREAM;
	if (argc < 2 || getaddrinfo(argv[1], "12000", &hints, &ai) != 0) return 2;
	int fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) { perror("connect"); return 1; }
	FILE *in = fdopen(fd, "r");
	char hello[256], name[128], reply[512];
	if (!fgets(hello, sizeof hello, in)) return 1;
	hello[strcspn(hello, "\n")] = 0;
	printf("%s\n", hello); fflush(stdout);
	char letter = hello[7];
	if (!fgets(name, sizeof name, stdin)) return 1;
	name[strcspn(name, "\n")] = 0;
	char msg[256];
	snprintf(msg, sizeof msg, "Client %c: %s\n", letter, name);
	write(fd, msg, strlen(msg));
	printf("%s", msg); fflush(stdout);
	if (!fgets(reply, sizeof reply, in)) return 1;
	printf("%s", reply);
	return 0;
}
`

const javaClient = `import java.io.*;
import java.net.*;
public class Client {
	public static void main(String[] args) throws Exception {
		Socket s = new Socket(args[0], 12000);
		BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream()));
		PrintWriter out = new PrintWriter(s.getOutputStream(), true);
		String hello = in.readLine();
		System.out.println(hello);
		String letter = hello.split(" ")[1];
		String name = new BufferedReader(new InputStreamReader(System.in)).readLine();
		String msg = "Client " + letter + ": " + name;
		out.println(msg);
		System.out.println(msg);
		System.out.println(in.readLine());
	}
}
`

const goClient = `package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
)

func main() {
	c, err := net.Dial("tcp", os.Args[1]+":12000")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	in := bufio.NewReader(c)
	hello, _ := in.ReadString('\n')
	hello = strings.TrimSpace(hello)
	fmt.Println(hello)
	name, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	msg := fmt.Sprintf("Client %s: %s", strings.Fields(hello)[1], strings.TrimSpace(name))
	fmt.Fprintln(c, msg)
	fmt.Println(msg)
	reply, _ := in.ReadString('\n')
	fmt.Print(reply)
}
`

// goForBuilds says whether builds find a Go toolchain where labctl grade
// looks (the system's PATH, /usr/local/go/bin, /usr/lib/go/bin).
func goForBuilds() bool {
	for _, d := range []string{"/usr/local/bin", "/usr/bin", "/bin", "/usr/local/go/bin", "/usr/lib/go/bin"} {
		if _, err := os.Stat(filepath.Join(d, "go")); err == nil {
			return true
		}
	}
	return false
}

// pyServer is a correct X/Y server; HOST is where it binds.
const pyServer = `import socket, threading, queue
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((HOST, 12000)); srv.listen(2)
print("Server is started", flush=True)
conns = [srv.accept()[0] for _ in range(2)]
for c, l in zip(conns, "XY"):
    c.sendall(("Client %s connected\n" % l).encode())
q = queue.Queue()
def read(c):
    q.put(c.makefile().readline().strip())
for c in conns:
    threading.Thread(target=read, args=(c,)).start()
first, second = q.get(), q.get()
print(first, flush=True); print(second, flush=True)
def short(m):
    return m[len("Client "):]
reply = "%s received before %s\n" % (short(first), short(second))
for c in conns:
    c.sendall(reply.encode())
print("Sent acknowledgment to both X and Y", flush=True)
`

func pyClientWith(old, new string) string {
	if !strings.Contains(pyClient, old) {
		panic("no " + old)
	}
	return strings.Replace(pyClient, old, new, 1)
}

// gradeCase is one generated submission and the outcome it must get. needs
// names the helper work the outcome depends on (not merged yet: the
// outcome without it is what the report must say today).
type gradeCase struct {
	name    string
	files   map[string]string
	outcome string
	reason  string // a substring of the report's reason
	needs   string // "supervisor: ..." / "servers: ..."
	without string // the outcome while that is missing ("a|b": either, as timing decides)
}

func gradeClass() []gradeCase {
	return []gradeCase{
		{name: "py-correct", files: map[string]string{"client.py": pyClient}, outcome: "pass"},
		{name: "c-correct", files: map[string]string{"client.c": cClient}, outcome: "pass"},
		{name: "java-correct", files: map[string]string{"Client.java": javaClient}, outcome: "pass"},
		{name: "py-server-correct", files: map[string]string{"server.py": "HOST = '0.0.0.0'\n" + pyServer}, outcome: "pass"},
		{name: "py-wrong-order", outcome: "fail", reason: "each client what it sent and the reply", files: map[string]string{"client.py": pyClientWith(
			"print(msg)\nprint(f.readline().strip())", "print(f.readline().strip())\nprint(msg)")}},
		{name: "py-wrong-wording", outcome: "fail", reason: "X: Client X - Alice", files: map[string]string{"client.py": pyClientWith(
			`"Client %s: %s"`, `"Client %s - %s"`)}},
		{name: "c-silent-crash", outcome: "crashed", reason: "exited with status 3, printing nothing", files: map[string]string{"client.c": "int main(void) { return 3; }\n"}},
		{name: "c-segfault", outcome: "crashed", reason: "killed by signal SEGV", files: map[string]string{"client.c": "int main(void) { volatile int *p = 0; return *p; }\n"}},
		{name: "py-syntax-error", outcome: "not-gradable", reason: "SyntaxError", files: map[string]string{"client.py": "def main(:\n    pass\n"}},
		{name: "py-hang", outcome: "timeout", reason: "x/client ran past its time limit", files: map[string]string{"client.py": pyClientWith(
			"name = input()", "import time\nwhile True: time.sleep(1)")}},
		{name: "c-fork-bomb", outcome: "timeout", reason: "pids limit", files: map[string]string{"client.c": "#include <unistd.h>\nint main(void) { for (;;) fork(); }\n"}},
		{name: "py-1gb-output", outcome: "pass", reason: "output capped", files: map[string]string{"client.py": pyClient +
			"import sys\nchunk = b'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.buffer.write(chunk)\n"}},
		{name: "py-out-of-memory", outcome: "out-of-memory", reason: "memory limit of 512 MiB", files: map[string]string{"client.py": pyClientWith(
			"name = input()", "hog = []\nwhile True: hog.append(b'x' * (16 << 20))")}},
		{name: "py-gives-up", outcome: "fail", reason: "", files: map[string]string{"client.py": pyClientWith(
			"name = input()", "raise SystemExit(0)")}},
		{name: "py-localhost", outcome: "pass", needs: "supervisor: localhost: forwarding", without: "crashed", files: map[string]string{"client.py": pyClientWith(
			"(sys.argv[1], 12000)", `("localhost", 12000)`)}},
		{name: "py-server-loopback", outcome: "pass", needs: "supervisor: expose:", without: "timeout", files: map[string]string{"server.py": "HOST = '127.0.0.1'\n" + pyServer}},
		{name: "py-prompt", outcome: "pass", needs: "supervisor: prompts captured as such", without: "fail", files: map[string]string{"client.py": pyClientWith(
			"name = input()", `name = input("Enter your name: ")`)}},
		{name: "py-no-newline", outcome: "pass", needs: "servers: lenient framing", without: "fail|timeout", files: map[string]string{"client.py": pyClientWith(
			`f.write(msg + "\n"); f.flush()`, `s.send(msg.encode())`) + ""}},
		{name: "empty", outcome: "not-gradable", reason: "empty", files: map[string]string{}},
	}
}

// dependencyMerged says whether the work a case needs is in this tree: the
// xy lab declares localhost forwarding and exposure once the supervisor's
// work is in, and the protocol doc describes lenient framing once the
// servers' is.
func dependencyMerged(t *testing.T, needs string) bool {
	lab, err := os.ReadFile("../topo/labs/xy.yaml")
	require.NoError(t, err)
	protocols, err := os.ReadFile("../docs/PROTOCOLS.md")
	require.NoError(t, err)
	switch {
	case strings.HasPrefix(needs, "supervisor: localhost"):
		return strings.Contains(string(lab), "localhost:")
	case strings.HasPrefix(needs, "supervisor: expose"):
		return strings.Contains(string(lab), "expose:")
	case strings.HasPrefix(needs, "supervisor: prompts"):
		return strings.Contains(string(lab), "after:") && strings.Contains(string(lab), "localhost:")
	case strings.HasPrefix(needs, "servers:"):
		return strings.Contains(strings.ToLower(string(protocols)), "lenient")
	}
	return false
}

func writeClass(t *testing.T, cases []gradeCase) string {
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	for _, c := range cases {
		d := filepath.Join(dir, c.name)
		require.NoError(t, os.MkdirAll(d, 0o755))
		for f, body := range c.files {
			require.NoError(t, os.WriteFile(filepath.Join(d, f), []byte(body), 0o644))
		}
	}
	return dir
}

// gradeReport is the part of report.json the tests read.
type gradeReport struct {
	Grading     string         `json:"grading"`
	Cgroup      string         `json:"cgroup"`
	Interrupted bool           `json:"interrupted"`
	Submissions int            `json:"submissions"`
	Shards      []string       `json:"shards"`
	Counts      map[string]int `json:"counts"`
	Checks      []struct {
		Title  string  `json:"title"`
		Points float64 `json:"points"`
	} `json:"checks"`
	Rows []struct {
		Submission string  `json:"submission"`
		Outcome    string  `json:"outcome"`
		Reason     string  `json:"reason"`
		Points     float64 `json:"points"`
		MaxPoints  float64 `json:"max_points"`
		Checks     []struct {
			Title  string  `json:"title"`
			Pass   bool    `json:"pass"`
			Manual bool    `json:"manual"`
			Max    float64 `json:"max"`
			Detail string  `json:"detail"`
		} `json:"checks"`
		Logs []string `json:"logs"`
	} `json:"rows"`
}

func (r gradeReport) maxPoints() float64 {
	var n float64
	for _, c := range r.Checks {
		n += c.Points
	}
	return n
}

// manualPoints are the points of the checks only a person can judge.
func (r gradeReport) manualPoints() float64 {
	var n float64
	if len(r.Rows) > 0 {
		for _, c := range r.Rows[0].Checks {
			if c.Manual {
				n += c.Max
			}
		}
	}
	return n
}

func readReport(t *testing.T, dir string) gradeReport {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	require.NoError(t, err)
	var r gradeReport
	require.NoError(t, json.Unmarshal(b, &r))
	return r
}

// requireNoGradingLeft checks that no lab and no cgroup of the grading is
// left on the machine.
func requireNoGradingLeft(t *testing.T, name string) {
	t.Helper()
	labRE := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `-[0-9]{3,}$`)
	nsRE := regexp.MustCompile(`^lab-` + regexp.QuoteMeta(name) + `-[0-9]{3,}-`)
	ents, _ := os.ReadDir("/run/labctl")
	for _, e := range ents {
		require.False(t, labRE.MatchString(e.Name()), "lab %s of grading %s left behind", e.Name(), name)
	}
	ns, _ := os.ReadDir("/run/netns")
	for _, e := range ns {
		require.False(t, nsRE.MatchString(e.Name()), "netns %s left behind", e.Name())
	}
	own, _ := os.ReadFile("/proc/self/cgroup")
	dirs := []string{"/sys/fs/cgroup/labctl-grade/" + name, "/sys/fs/cgroup/unified/labctl-grade/" + name}
	for _, l := range strings.Split(string(own), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) == 3 && (f[1] == "cpu" || f[1] == "memory" || f[1] == "pids") {
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup", f[1], f[2], "labctl-grade-"+name))
		}
	}
	for _, d := range dirs {
		_, err := os.Stat(d)
		require.True(t, os.IsNotExist(err), "cgroup %s left behind", d)
	}
	_, err := os.Stat(filepath.Join("/var/lib/labctl-grade", name))
	require.True(t, os.IsNotExist(err), "the grading's copies are left behind")
}

// requireNoSubmissionProcess checks that no process of a submission's
// user is left (the slots' users start at 1879048192) once no grading
// runs any more: one being killed may take a moment to go.
func requireNoSubmissionProcess(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := submissionProcesses()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of a submission's user are left: %s", strings.Join(left, "; "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func submissionProcesses() []string {
	var left []string
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		b, err := os.ReadFile(filepath.Join("/proc", p.Name(), "status"))
		if err != nil {
			continue
		}
		var name, state string
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			switch {
			case len(f) > 1 && f[0] == "Name:":
				name = f[1]
			case len(f) > 1 && f[0] == "State:":
				state = f[1]
			case len(f) > 1 && f[0] == "Uid:" && strings.HasPrefix(f[1], "18790481"):
				left = append(left, fmt.Sprintf("pid %s %s (%s, uid %s)", p.Name(), name, state, f[1]))
			}
		}
	}
	return left
}

func TestGradeClassOfGeneratedSubmissions(t *testing.T) {
	for _, tool := range []string{"gcc", "javac", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (scripts/test.sh installs it)", tool)
		}
	}
	cases := gradeClass()
	if goForBuilds() {
		cases = append(cases, gradeCase{name: "go-correct", files: map[string]string{"client.go": goClient}, outcome: "pass"})
	}
	dir := writeClass(t, cases)
	// An unreadable submission: a link to nowhere.
	require.NoError(t, os.Symlink("/nonexistent/labctl-grade", filepath.Join(dir, "unreadable")))
	name := labName("gt")
	out := filepath.Join(t.TempDir(), "report")
	if keep := os.Getenv("LABCTL_GRADE_REPORT"); keep != "" {
		out = keep // to look at the report and its logs afterwards
	}
	t.Cleanup(func() {
		labctl(t, "grade", "down", name)
		requireNoGradingLeft(t, name)
	})
	r := labctl(t, "grade", "xy", "--submissions", dir, "--name", name, "--out", out, "--jobs", "2",
		"--time-limit", "8s",
		"--program", "x={run?:client} ${server}", "--program", "server={run?:server}")
	require.Equal(t, 0, r.code, "%s", r)
	require.Contains(t, r.stdout, "submissions graded")
	requireNoSubmissionProcess(t) // the fork bomb's included
	rep := readReport(t, out)
	require.Len(t, rep.Rows, len(cases)+1, "%s", r)
	assert.Contains(t, rep.Cgroup, "v", "the report says which cgroup interface confined the submissions")
	assert.Contains(t, r.stdout, "cgroup "+rep.Cgroup)
	got := map[string]int{}
	for i, row := range rep.Rows {
		got[row.Submission] = i
	}
	var table []string
	for _, c := range cases {
		i, ok := got[c.name]
		require.True(t, ok, "no row for %s", c.name)
		row := rep.Rows[i]
		want, note := c.outcome, ""
		if c.needs != "" && !dependencyMerged(t, c.needs) {
			want, note = c.without, "  (needs "+c.needs+"; "+c.outcome+" once merged)"
		}
		table = append(table, c.name+": want "+want+", got "+row.Outcome+note+" -- "+row.Reason)
		if strings.Contains(want, "|") && strings.Contains("|"+want+"|", "|"+row.Outcome+"|") {
			want = row.Outcome
		}
		if assert.Equal(t, want, row.Outcome, "%s: %s", c.name, row.Reason) && c.reason != "" && want == c.outcome {
			assert.Contains(t, row.Reason, c.reason, c.name)
		}
		assert.Equal(t, rep.maxPoints(), row.MaxPoints, c.name)
		if row.Outcome == "pass" {
			assert.Equal(t, row.MaxPoints-rep.manualPoints(), row.Points, "%s: every check but those a person grades", c.name)
		}
	}
	t.Logf("expected vs actual:\n  %s", strings.Join(table, "\n  "))
	ur := rep.Rows[got["unreadable"]]
	assert.Equal(t, "not-gradable", ur.Outcome)
	assert.Contains(t, ur.Reason, "cannot read")

	// The capped output: the log keeps the first MiB, the rest is counted.
	big := rep.Rows[got["py-1gb-output"]]
	assert.Contains(t, big.Reason, "more bytes discarded")
	fi, err := os.Stat(filepath.Join(out, "logs", "py-1gb-output", "x", "client.log"))
	require.NoError(t, err)
	assert.Less(t, fi.Size(), int64(4<<20))

	for _, f := range []string{"report.csv", "report.html"} {
		b, err := os.ReadFile(filepath.Join(out, f))
		require.NoError(t, err)
		assert.Contains(t, string(b), "py-correct")
	}
	html, _ := os.ReadFile(filepath.Join(out, "report.html"))
	assert.Contains(t, string(html), `href="logs/py-correct/x/client.log"`)
}

func TestGradeRejectsAHostTheLabLacksBeforeAnythingRuns(t *testing.T) {
	dir := writeClass(t, []gradeCase{{name: "a", files: map[string]string{"client.py": pyClient}}})
	name := labName("gt")
	out := filepath.Join(t.TempDir(), "report")
	r := labctl(t, "grade", "xy", "--submissions", dir, "--name", name, "--out", out, "--program", "nohost=python3 client.py")
	require.Equal(t, 2, r.code, "%s", r)
	assert.Contains(t, r.stderr, `no host "nohost"`)
	_, err := os.Stat(out)
	assert.True(t, os.IsNotExist(err), "nothing ran, nothing was written")
	requireNoGradingLeft(t, name)
}

func TestGradeShardsMergeBackIntoTheWholeClass(t *testing.T) {
	var cases []gradeCase
	for _, n := range []string{"ann", "bob", "cat", "dan", "eve"} {
		cases = append(cases, gradeCase{name: n, files: map[string]string{"client.py": pyClient}})
	}
	cases = append(cases, gradeCase{name: "zed", files: map[string]string{}})
	dir := writeClass(t, cases)
	name := labName("gt")
	t.Cleanup(func() {
		labctl(t, "grade", "down", name)
		requireNoGradingLeft(t, name)
	})
	tmp := t.TempDir()
	var outs []string
	seen := map[string]bool{}
	for k := 0; k < 2; k++ {
		out := filepath.Join(tmp, "shard"+string(rune('0'+k)))
		outs = append(outs, out)
		r := labctl(t, "grade", "xy", "--submissions", dir, "--name", name, "--out", out, "--jobs", "2",
			"--shard", string(rune('0'+k))+"/2", "--format", "json,gradescope", "--program", "x=python3 client.py ${server}")
		require.Equal(t, 0, r.code, "%s", r)
		for _, row := range readReport(t, out).Rows {
			assert.False(t, seen[row.Submission], "%s graded by two shards", row.Submission)
			seen[row.Submission] = true
		}
	}
	assert.Len(t, seen, len(cases), "every submission is in exactly one shard")
	merged := filepath.Join(tmp, "all")
	r := labctl(t, "grade", "merge", "--out", merged, outs[0], outs[1])
	require.Equal(t, 0, r.code, "%s", r)
	rep := readReport(t, merged)
	require.Len(t, rep.Rows, len(cases))
	assert.Equal(t, 5, rep.Counts["pass"], "%+v", rep.Rows)
	assert.Equal(t, 1, rep.Counts["not-gradable"])
	assert.Equal(t, []string{"0/2", "1/2"}, rep.Shards)
	for _, row := range rep.Rows {
		for _, l := range row.Logs {
			_, err := os.Stat(filepath.Join(merged, "logs", row.Submission, l))
			assert.NoError(t, err, "merged report links to %s/%s", row.Submission, l)
		}
	}
	// Gradescope's results.json, per submission.
	var gs struct {
		Score         float64 `json:"score"`
		ExecutionTime float64 `json:"execution_time"`
		Output        string  `json:"output"`
		Tests         []struct {
			Name       string  `json:"name"`
			Score      float64 `json:"score"`
			MaxScore   float64 `json:"max_score"`
			Status     string  `json:"status"`
			Visibility string  `json:"visibility"`
		} `json:"tests"`
	}
	var found bool
	for _, out := range outs {
		b, err := os.ReadFile(filepath.Join(out, "gradescope", "ann", "results.json"))
		if err != nil {
			continue
		}
		found = true
		require.NoError(t, json.Unmarshal(b, &gs))
	}
	require.True(t, found, "a results.json for ann")
	assert.Equal(t, rep.maxPoints()-rep.manualPoints(), gs.Score, "every automatic check passed")
	var automatic int
	for _, c := range rep.Rows[0].Checks {
		if !c.Manual {
			automatic++
		}
	}
	require.Len(t, gs.Tests, automatic, "one test per check a program can judge")
	var sum float64
	for _, tc := range gs.Tests {
		assert.Equal(t, "passed", tc.Status, tc.Name)
		assert.Equal(t, "visible", tc.Visibility)
		assert.Equal(t, tc.MaxScore, tc.Score, tc.Name)
		sum += tc.Score
	}
	assert.Equal(t, gs.Score, sum)
}

func TestGradeInterruptTearsDownEveryLabAndReportsWhatFinished(t *testing.T) {
	cases := []gradeCase{{name: "a-empty", files: map[string]string{}}}
	for _, n := range []string{"h1", "h2", "h3"} {
		cases = append(cases, gradeCase{name: n, files: map[string]string{"client.py": pyClientWith("name = input()", "import time\nwhile True: time.sleep(1)")}})
	}
	dir := writeClass(t, cases)
	name := labName("gt")
	out := filepath.Join(t.TempDir(), "report")
	t.Cleanup(func() {
		labctl(t, "grade", "down", name)
		requireNoGradingLeft(t, name)
	})
	cmd := exec.Command(bin, "grade", "xy", "--submissions", dir, "--name", name, "--out", out, "--jobs", "2",
		"--time-limit", "60s", "--program", "x=python3 client.py ${server}")
	var stdout strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	require.NoError(t, cmd.Start())
	// Wait until a hung submission's program runs in its lab.
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join("/run/labctl", name+"-001", "logs", "x", "client.log"))
		if strings.Contains(string(b), "started as pid") {
			break
		}
		require.True(t, time.Now().Before(deadline), "the hung submission never started")
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, 130, ee.ExitCode(), stdout.String())
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("labctl grade did not stop after Ctrl-C")
	}
	rep := readReport(t, out)
	assert.True(t, rep.Interrupted)
	require.Len(t, rep.Rows, 1, "only the empty folder finished")
	assert.Equal(t, "a-empty", rep.Rows[0].Submission)
	requireNoGradingLeft(t, name)
	requireNoSubmissionProcess(t)
}

func TestGradeAnExitStatusAloneNeverPassesARole(t *testing.T) {
	lab := writeLab(t, "greet.yaml", `name: greet
hosts:
  a:
    programs:
      - {name: hello, command: echo hello, time_limit: 10s}
  b: {}
links:
  - endpoints: [a, b]
checks:
  - {name: a says hello, output: a/hello, contains: hello}
  - {name: a ends cleanly, exit: a/hello}
`)
	dir := writeClass(t, []gradeCase{
		{name: "quits", files: map[string]string{"quit.sh": "exit 0\n"}},
		{name: "greets", files: map[string]string{"quit.sh": "echo hello\n"}},
	})
	name := labName("gt")
	out := filepath.Join(t.TempDir(), "report")
	t.Cleanup(func() {
		labctl(t, "grade", "down", name)
		requireNoGradingLeft(t, name)
	})
	r := labctl(t, "grade", "-f", lab, "--submissions", dir, "--name", name, "--out", out, "--program", "a=sh quit.sh")
	require.Equal(t, 0, r.code, "%s", r)
	rep := readReport(t, out)
	require.Len(t, rep.Rows, 2)
	greets, quits := rep.Rows[0], rep.Rows[1]
	assert.Equal(t, "pass", greets.Outcome, greets.Reason)
	assert.Equal(t, float64(2), greets.Points)
	assert.Equal(t, "fail", quits.Outcome)
	assert.Equal(t, float64(0), quits.Points, "its exit status 0 earns nothing")
	require.Len(t, quits.Checks, 2)
	assert.False(t, quits.Checks[1].Pass)
	assert.Equal(t, "a/hello exited 0 without doing: a says hello", quits.Checks[1].Detail)
}

func TestGradeDownAfterACrashTakesDownExactlyThatGrading(t *testing.T) {
	cases := []gradeCase{}
	for _, n := range []string{"h1", "h2"} {
		cases = append(cases, gradeCase{name: n, files: map[string]string{"client.py": pyClientWith("name = input()", "import time\nwhile True: time.sleep(1)")}})
	}
	dir := writeClass(t, cases)
	name := labName("gt")
	out := filepath.Join(t.TempDir(), "report")
	t.Cleanup(func() {
		labctl(t, "grade", "down", name)
		requireNoGradingLeft(t, name)
	})
	// Someone else's lab whose name starts like the grading's must survive.
	other := name + "-web"
	t.Cleanup(func() { labctl(t, "down", other) })
	require.Equal(t, 0, labctl(t, "up", "--name", other, "--topo", "minimal", "--test", "none").code)
	cmd := exec.Command(bin, "grade", "xy", "--submissions", dir, "--name", name, "--out", out, "--jobs", "2",
		"--time-limit", "60s", "--program", "x=python3 client.py ${server}")
	require.NoError(t, cmd.Start())
	deadline := time.Now().Add(60 * time.Second)
	for {
		b0, _ := os.ReadFile(filepath.Join("/run/labctl", name+"-000", "logs", "x", "client.log"))
		b1, _ := os.ReadFile(filepath.Join("/run/labctl", name+"-001", "logs", "x", "client.log"))
		if strings.Contains(string(b0), "started as pid") && strings.Contains(string(b1), "started as pid") {
			break
		}
		require.True(t, time.Now().Before(deadline), "the submissions never started")
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Kill()) // a crash: no chance to clean up
	_ = cmd.Wait()

	st := labctl(t, "status")
	require.Equal(t, 0, st.code, "%s", st)
	assert.Contains(t, st.stdout, name+"-000")
	assert.Contains(t, st.stdout, "orphaned: labctl grade down "+name)
	assert.NotEmpty(t, submissionProcesses(), "the crash left the submissions running")

	r := labctl(t, "grade", "down", name)
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "2 labs taken down")
	requireNoGradingLeft(t, name)
	requireNoSubmissionProcess(t)
	st = labctl(t, "status")
	assert.Contains(t, st.stdout, other, "another lab is not the grading's")
}

func TestGradeInASandboxWithoutNetAdminFailsAtOnceWithOneLine(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	dir := writeClass(t, []gradeCase{{name: "a", files: map[string]string{"client.py": pyClient}}})
	out := filepath.Join(t.TempDir(), "report")
	// As Docker's default container: root, without CAP_NET_ADMIN and CAP_SYS_ADMIN.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, setpriv, "--bounding-set=-net_admin,-sys_admin", "--", bin,
		"grade", "xy", "--submissions", dir, "--out", out, "--program", "x=python3 client.py ${server}")
	b, err := cmd.CombinedOutput()
	require.NoError(t, ctx.Err(), "it must not hang")
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s", b)
	assert.Equal(t, 2, ee.ExitCode(), "%s", b)
	assert.Contains(t, string(b), "lacks CAP_NET_ADMIN")
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(string(b)), "\n")+1, "one line: %s", b)
	_, err = os.Stat(out)
	assert.True(t, os.IsNotExist(err), "nothing ran")
}
