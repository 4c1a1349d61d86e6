package tests

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A CP372 pair (seed 002) in a student's own wording: the server names
// Client01.., refuses a 4th with its own sentence, answers "status" and
// "list" with END-terminated lists and "get" with "FILE size" and the
// bytes; the client prompts and stores downloads in received/.
const cp372Server = `# A CP372 server in a student's own wording (seed 002): names Client01..,
# at most 3 at a time, echo with ACK, status, list, get, exit.
import datetime
import os
import socket
import threading

PORT = 12345
MAX_CLIENTS = 3
REPO = "repository"
lock = threading.Lock()
active = 0
counter = 0
cache = {}


def now():
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def serve(conn, name):
    global active
    f = conn.makefile("rb")
    try:
        conn.sendall(("Welcome! You are " + name + "\n").encode())
        for raw in f:
            msg = raw.decode(errors="replace").strip()
            if msg == "exit":
                conn.sendall(b"Goodbye\n")
                break
            if msg == "status":
                with lock:
                    rows = ["%s connected %s disconnected %s" % (n, c, d or "never") for n, (c, d) in cache.items()]
                conn.sendall(("\n".join(rows) + "\nEND\n").encode())
            elif msg == "list":
                conn.sendall(("\n".join(sorted(os.listdir(REPO))) + "\nEND\n").encode())
            elif msg.startswith("get "):
                path = os.path.join(REPO, os.path.basename(msg[4:].strip()))
                if not os.path.isfile(path):
                    conn.sendall(b"File not found\nEND\n")
                    continue
                with open(path, "rb") as fh:
                    data = fh.read()
                conn.sendall(("FILE %d\n" % len(data)).encode() + send_form(data))
            else:
                conn.sendall((msg + " ACK\n").encode())
    finally:
        with lock:
            cache[name][1] = now()
            active -= 1
        conn.close()
        print(name, "left", flush=True)


def send_form(data):
    return data


def main():
    global active, counter
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", PORT))
    s.listen(5)
    print("Server listening on port", PORT, flush=True)
    while True:
        conn, addr = s.accept()
        with lock:
            if active >= MAX_CLIENTS:
                conn.sendall(b"Sorry, the server is full. Please try again later.\n")
                conn.close()
                print("turned a client away: full", flush=True)
                continue
            active += 1
            counter += 1
            name = "Client%02d" % counter
            cache[name] = [now(), None]
        print(name, "joined from", addr[0], flush=True)
        threading.Thread(target=serve, args=(conn, name), daemon=True).start()


main()
`

const cp372Client = `# A CP372 client in a student's own wording: prompts for commands and
# stores downloads in received/.
import os
import socket
import sys

s = socket.create_connection(("localhost", 12345))
f = s.makefile("rb")
first = f.readline().decode().strip()
print(first)
if "full" in first.lower():
    sys.exit(0)


def until_end():
    for raw in f:
        line = raw.decode().rstrip("\n")
        if line == "END":
            return
        print(line)


while True:
    try:
        cmd = input("Enter a command: ")
    except EOFError:
        break
    s.sendall((cmd + "\n").encode())
    if cmd == "exit":
        print(f.readline().decode().strip())
        break
    if cmd in ("status", "list"):
        until_end()
    elif cmd.startswith("get "):
        head = f.readline().decode().strip()
        if not head.startswith("FILE "):
            print(head)
            until_end()
            continue
        size = int(head.split()[1])
        data = f.read(size)
        os.makedirs("received", exist_ok=True)
        name = os.path.basename(cmd[4:].strip())
        with open(os.path.join("received", name), "wb") as out:
            out.write(data)
        print("Downloaded %s (%d bytes)" % (name, len(data)))
    else:
        print(f.readline().decode().strip())
`

// cp372Wrong is the same server with three bugs: every client is
// Client01, there is no limit, and a download's last byte is flipped.
var cp372Wrong = strings.NewReplacer(
	"            counter += 1", "            counter = 1  # the bug: every client is Client01",
	"            if active >= MAX_CLIENTS:", "            if False:  # the bug: no limit",
	"    return data\n", "    return data[:-1] + bytes([data[-1] ^ 1]) if data else data  # the bug\n",
).Replace(cp372Server)

// A stop-and-wait pair (seed 000) in a student's own wording: frames
// "seq crc32 message" over TCP, ACK/NACK, the server prints "Message
// received: ..." once per message.
const swServer = `# Stop-and-wait server in a student's own wording (seed 000): frames are
# "seq checksum message"; ACK or NACK; each message printed once.
import socket
import threading
import zlib


def worker(conn, addr):
    print("Connection established with", addr[0], flush=True)
    expected = 0
    f = conn.makefile("rb")
    for raw in f:
        parts = raw.decode(errors="replace").rstrip("\n").split(" ", 2)
        if len(parts) != 3:
            conn.sendall(b"NACK -1\n")
            continue
        seq, checksum, msg = parts
        if checksum != "%08x" % (zlib.crc32(msg.encode()) & 0xFFFFFFFF):
            conn.sendall(("NACK %s\n" % seq).encode())
            continue
        if int(seq) == expected:
            print("Message received:", msg, flush=True)
            expected += 1
        conn.sendall(("ACK %s\n" % seq).encode())
    conn.close()
    print("Connection closed with", addr[0], flush=True)


server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", 9000))
server.listen(5)
print("Server is started", flush=True)
while True:
    c, a = server.accept()
    threading.Thread(target=worker, args=(c, a), daemon=True).start()
`

const swClient = `# Stop-and-wait client: messages separated by "||"; TCHAU ends.
import socket
import zlib

client = socket.create_connection(("localhost", 9000))
client.settimeout(5)
f = client.makefile("rb")
seq = 0
done = False
while not done:
    try:
        line = input("Enter messages separated by ||: ")
    except EOFError:
        break
    msgs = line.split("||")
    for msg in msgs:
        if msg == "TCHAU":
            done = True
            break
        frame = "%d %08x %s\n" % (seq, zlib.crc32(msg.encode()) & 0xFFFFFFFF, msg)
        while True:
            client.sendall(frame.encode())
            reply = f.readline().decode().strip()
            if reply == "ACK %d" % seq:
                print("Server acknowledged", msg)
                break
            print("Got", reply, "- sending", msg, "again")
        seq += 1
client.close()
print("Bye")
`

// swWrong's client never sends the last message of a line.
var swWrong = strings.Replace(swClient, "    for msg in msgs:", "    for msg in msgs[:-1]:  # the bug", 1)

// A chat pair (seed 003) in a student's own wording: "<nick> text" to
// every other client, "[nick entered the room]".
const pairChatServer = `# Chat server in a student's own wording (seed 003): the first line is the
# nickname; every other line goes to every other client.
import socket
import threading

clients = {}
lock = threading.Lock()


def broadcast(sender, text):
    with lock:
        others = [c for c in clients if c is not sender]
    for c in others:
        try:
            c.sendall(text.encode())
        except OSError:
            pass


def handle(conn):
    f = conn.makefile("rb")
    nick = f.readline().decode().strip()
    with lock:
        clients[conn] = nick
    print(nick, "has joined the chat", flush=True)
    broadcast(conn, "[%s entered the room]\n" % nick)
    for raw in f:
        text = raw.decode(errors="replace").rstrip("\n")
        if text == "/quit":
            break
        broadcast(conn, "<%s> %s\n" % (nick, text))
    with lock:
        del clients[conn]
    conn.close()
    broadcast(conn, "[%s left]\n" % nick)


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5002))
s.listen(10)
print("Chat server running on port 5002", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
`

const pairChatClient = `# Chat client: asks for a nickname, prints what arrives while the user types.
import socket
import sys
import threading

sock = socket.create_connection(("localhost", 5002))


def receive():
    for raw in sock.makefile("rb"):
        print(raw.decode(errors="replace").rstrip("\n"), flush=True)


threading.Thread(target=receive, daemon=True).start()
nick = input("Choose a nickname: ")
sock.sendall((nick + "\n").encode())
for line in sys.stdin:
    sock.sendall(line.encode())
    if line.strip() == "/quit":
        break
sock.close()
`

// pairChatWrong's server gives each line to the first other client only.
var pairChatWrong = strings.Replace(pairChatServer, "            pass\n", "            pass\n        break  # the bug\n", 1)

func TestPairLabsPassWithTheReferencePrograms(t *testing.T) {
	for _, lab := range []string{"filesvc-pair", "stopwait-pair", "chat-pair"} {
		name := labName("pr")
		t.Cleanup(func() { requireNoLeftovers(t, name) })
		r := labctl(t, "run", lab, "--name", name)
		require.Equal(t, 0, r.code, "%s: %s", lab, r)
		assert.NotContains(t, r.stdout, "FAIL", lab)
		assert.Contains(t, r.stdout, "score 100/100", lab)
	}
}

func TestPairRunFillsEveryClientHostWithOneCommand(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed (scripts/test.sh installs it)")
	}
	dir := writeClass(t, []gradeCase{{name: "pair", files: map[string]string{"server.py": cp372Server, "client.py": cp372Client}}})
	name := labName("pr")
	t.Cleanup(func() {
		labctl(t, "down", name)
		requireNoLeftovers(t, name)
	})
	// One --program for the four client hosts, as a list.
	r := labctlIn(t, filepath.Join(dir, "pair"), "run", "filesvc-pair", "--name", name,
		"--program", "server=python3 server.py", "--program", "client1,client2,client3,client4=python3 client.py")
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "score 100/100")
	assert.Contains(t, r.stdout, "Sorry, the server is full", "the 4th client printed its own refusal")
}

func TestGradeFileServerPairsFromEvidence(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed (scripts/test.sh installs it)")
	}
	dir := writeClass(t, []gradeCase{
		{name: "correct", files: map[string]string{"server.py": cp372Server, "client.py": cp372Client}},
		{name: "wrong", files: map[string]string{"server.py": cp372Wrong, "client.py": cp372Client}},
	})
	name := labName("gt")
	out := filepath.Join(t.TempDir(), "report")
	t.Cleanup(func() {
		labctl(t, "grade", "down", name)
		requireNoGradingLeft(t, name)
	})
	// client is the lab's role: client1..client4 each run the client.
	r := labctl(t, "grade", "filesvc-pair", "--submissions", dir, "--name", name, "--out", out, "--jobs", "2",
		"--program", "server=python3 server.py", "--program", "client=python3 client.py")
	require.Equal(t, 0, r.code, "%s", r)
	rep := readReport(t, out)
	require.Len(t, rep.Rows, 2, "%s", r)
	correct, wrong := rep.Rows[0], rep.Rows[1]
	require.Equal(t, "correct", correct.Submission)
	assert.Equal(t, "pass", correct.Outcome, correct.Reason)
	assert.Equal(t, correct.MaxPoints, correct.Points)
	assert.Equal(t, "fail", wrong.Outcome)
	details := map[string]string{}
	for _, c := range wrong.Checks {
		if !c.Pass {
			details[c.Title] = c.Detail
		}
	}
	assert.Equal(t, `client1/session and client2/session were both given "1" ("Welcome! You are Client01" and "Welcome! You are Client01")`,
		details["each client is given a name of its own (Client01, Client02, Client03)"])
	assert.Contains(t, details["a 200 KB binary file downloads intact (stored anywhere)"],
		"no file matching client1:**/data.bin has the same bytes as server:repository/data.bin: 200000 bytes")
	assert.Contains(t, details["a 200 KB binary file downloads intact (stored anywhere)"], "found client1:received/data.bin: 200000 bytes")
	assert.Contains(t, details["the 4th client is refused while three are connected"], "none of 2 holds")
	assert.Less(t, wrong.Points, correct.Points/2, "%v", details)
}

func TestStopAndWaitPairsFromEvidence(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed (scripts/test.sh installs it)")
	}
	dir := writeClass(t, []gradeCase{
		{name: "correct", files: map[string]string{"server.py": swServer, "client.py": swClient}},
		{name: "wrong", files: map[string]string{"server.py": swServer, "client.py": swWrong}},
	})
	run := func(sub string) result {
		name := labName("pr")
		t.Cleanup(func() {
			labctl(t, "down", name)
			requireNoLeftovers(t, name)
		})
		return labctlIn(t, filepath.Join(dir, sub), "run", "stopwait-pair", "--name", name,
			"--program", "server=python3 server.py", "--program", "client=python3 client.py")
	}
	r := run("correct")
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "score 100/100")
	r = run("wrong")
	require.Equal(t, 1, r.code, "%s", r)
	assert.Contains(t, r.stdout, "FAIL  the server delivers client1's ten messages in the order sent")
	assert.Contains(t, r.stdout, `no line matches /\ba-10\b/ after the lines before it`)
	assert.Contains(t, r.stdout, "PASS  nothing typed after TCHAU reaches the server")
}

func TestChatPairsFromEvidence(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed (scripts/test.sh installs it)")
	}
	require.NotEqual(t, pairChatServer, pairChatWrong)
	dir := writeClass(t, []gradeCase{
		{name: "correct", files: map[string]string{"server.py": pairChatServer, "client.py": pairChatClient}},
		{name: "wrong", files: map[string]string{"server.py": pairChatWrong, "client.py": pairChatClient}},
	})
	run := func(sub string) result {
		name := labName("pr")
		t.Cleanup(func() {
			labctl(t, "down", name)
			requireNoLeftovers(t, name)
		})
		return labctlIn(t, filepath.Join(dir, sub), "run", "chat-pair", "--name", name,
			"--program", "server=python3 server.py", "--program", "client=python3 client.py")
	}
	r := run("correct")
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "score 100/100")
	r = run("wrong")
	require.Equal(t, 1, r.code, "%s", r)
	assert.Contains(t, r.stdout, `carol/chat prints "hello from alice": 0 lines contain "hello from alice", want exactly 1`)
	assert.Contains(t, r.stdout, `bob/chat prints /carol-1\b/`)
	assert.Contains(t, r.stdout, `0 lines match /carol-1\b/, want exactly 1`)
}
