package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tkClient is a GUI client (as seed 004's tkinter one): a window with a
// label and a button, waiting for a person to click.
const tkClient = `import tkinter as tk
root = tk.Tk()
root.title("chat")
tk.Label(root, text="Hello from a GUI client", font=("TkDefaultFont", 28), bg="white").pack(padx=30, pady=30)
tk.Button(root, text="Send", command=lambda: print("hello", flush=True)).pack(pady=10)
root.mainloop()
`

func TestGradeAGUIClientNeedsAPersonWithItsScreenshot(t *testing.T) {
	if _, err := exec.LookPath("Xvfb"); err != nil {
		t.Skip("Xvfb is not installed (scripts/test.sh installs xvfb)")
	}
	if exec.Command("/usr/bin/python3", "-c", "import tkinter").Run() != nil {
		t.Skip("python3-tk is not installed (scripts/test.sh installs it)")
	}
	lab := writeLab(t, "gui.yaml", `name: gui
hosts:
  a:
    programs:
      - name: client
        command: echo hello
        time_limit: 10s
        student: {display: true, time_limit: 5s}
  b: {}
links:
  - endpoints: [a, b]
checks:
  - {name: a says hello, output: a/client, contains: hello}
  - {name: a ends cleanly, exit: a/client}
`)
	dir := writeClass(t, []gradeCase{
		{name: "cli", files: map[string]string{"client.py": "print('hello')\n"}},
		{name: "tk", files: map[string]string{"client.py": tkClient}},
	})
	name := labName("gt")
	out := filepath.Join(t.TempDir(), "report")
	t.Cleanup(func() {
		labctl(t, "grade", "down", name)
		requireNoGradingLeft(t, name)
	})
	r := labctl(t, "grade", "-f", lab, "--submissions", dir, "--name", name, "--out", out,
		"--program", "a=/usr/bin/python3 client.py")
	require.Equal(t, 0, r.code, "%s", r)
	rep := readReport(t, out)
	require.Len(t, rep.Rows, 2)
	cli, tk := rep.Rows[0], rep.Rows[1]
	assert.Equal(t, "pass", cli.Outcome, cli.Reason)
	assert.Equal(t, "not-gradable", tk.Outcome, "a GUI client is not failed: %s", tk.Reason)
	assert.Contains(t, tk.Reason, "needs a person: a/client is a GUI program that typing cannot drive")
	assert.Contains(t, tk.Reason, "its screenshot: logs/tk/a/client.png")
	assert.Contains(t, tk.Logs, "a/client.png")
	require.NotEmpty(t, tk.Checks)
	assert.Contains(t, tk.Checks[0].Detail, "a/client is a GUI program: a person can judge its screenshot")
	b, err := os.ReadFile(filepath.Join(out, "logs", "tk", "a", "client.png"))
	require.NoError(t, err)
	assert.Equal(t, "\x89PNG", string(b[:4]), "the screenshot is a PNG")
	assert.Greater(t, len(b), 2000, "a drawn frame: blank ones are never kept")
}
