package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The page of `labctl web`, driven in a real headless Chromium (Debian's
// chromium package) through the DevTools protocol.

// browser starts a fresh headless Chromium and returns a tab, and the
// JavaScript exceptions the page throws.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	exe, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (scripts/test.sh installs it)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1600, 1000),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	var mu sync.Mutex
	var exceptions []string
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventConsoleAPICalled); ok && e.Type == "error" {
			for _, a := range e.Args {
				t.Logf("console.error: %s %s", a.Value, a.Description)
			}
		}
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			mu.Lock()
			exceptions = append(exceptions, fmt.Sprintf("%s (line %d)", e.ExceptionDetails.Text, e.ExceptionDetails.LineNumber))
			mu.Unlock()
		}
	}), "start chromium")
	t.Cleanup(func() { cancelB(); cancelA() })
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), exceptions...)
	}
}

// startWeb runs `labctl web ARGS` and returns the URL it prints; the
// server is stopped (by its PID) when the test ends.
func startWeb(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"web"}, args...)...)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if _, u, ok := strings.Cut(sc.Text(), "open "); ok {
				urls <- u
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case u := <-urls:
		return u
	case <-time.After(20 * time.Second):
		t.Fatal("labctl web printed no URL")
	}
	return ""
}

// waitJS evaluates a JavaScript expression until it is true, or fails the
// test after d.
func waitJS(t *testing.T, ctx context.Context, d time.Duration, what, expr string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.labctlWeb.stats) + ' counters ' + JSON.stringify(window.labctlWeb.counters) + '\n' + document.body.innerText.slice(0, 3000)`))
		t.Fatalf("within %s: %s (%s): %v\nthe page says:\n%s", d, what, expr, err, text)
	}
}

func jsString(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	require.NoError(t, err, expr)
	return s
}

func jsNumber(t *testing.T, ctx context.Context, expr string) float64 {
	t.Helper()
	f, err := chromedp.Run(ctx, chromedp.Evaluate[float64](expr))
	require.NoError(t, err, expr)
	return f
}

// click clicks an element (SVG ones too) by selector.
func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(
		`(() => { const e = document.querySelector(%q); if (!e) return false; e.dispatchEvent(new MouseEvent('click', {bubbles: true})); return true; })()`, sel)))
	require.NoError(t, err)
	require.True(t, ok, "no element %s", sel)
}

func setField(t *testing.T, ctx context.Context, sel, value string) {
	t.Helper()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(
		`(() => { const e = document.querySelector(%q); if (!e) return false; e.value = %q; e.dispatchEvent(new Event('input', {bubbles: true})); return true; })()`, sel, value)))
	require.NoError(t, err)
	require.True(t, ok, "no element %s", sel)
}

// webLab has two hosts on a switch: a service that prints a numbered line
// to stdout and to stderr twice a second, and a task whose two checks
// (one passes, one fails by design) give the page results to show.
const webLab = `
hosts:
  server:
    programs:
      - name: ticker
        command: sh -c 'i=0; while :; do i=$((i+1)); echo "tick $i"; echo "warn $i" >&2; sleep 0.5; done'
        service: true
  client:
    programs:
      - name: hello
        command: sh -c 'echo hello-from-client'
switches: [s1]
links:
  - endpoints: [server, s1]
  - endpoints: [client, s1]
    netem: {delay: 5ms}
checks:
  - output: client/hello
    contains: [hello-from-client]
  - output: client/hello
    contains: [never-printed]
`

func netemShow(t *testing.T, lab string) map[string]map[string]any {
	t.Helper()
	r := labctl(t, "netem", "show", lab, "--json")
	require.Equal(t, 0, r.code, "%s", r)
	var rows []struct {
		Link       string         `json:"link"`
		From       string         `json:"from"`
		Configured map[string]any `json:"configured"`
		Live       map[string]any `json:"live"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rows))
	out := map[string]map[string]any{}
	for _, row := range rows {
		out[row.Link+" from "+row.From] = row.Live
	}
	return out
}

func TestWebPage(t *testing.T) {
	ctx, exceptions := browser(t)
	f := writeLab(t, "web.yaml", "name: web"+webLab)
	lab, _ := up(t, "web", "-f", f, "--backend", "userspace", "-d")
	url := startWeb(t, "--listen", "127.0.0.1:0")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join("/run/labctl", lab, "engine.log"))
			t.Logf("engine.log:\n%s", b)
			b, _ = os.ReadFile(filepath.Join("/run/labctl", lab, "state.json"))
			t.Logf("state.json:\n%s", b)
		}
	})
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(url+"#lab="+lab)))

	// The graph: the lab's nodes and links, with the impairment on the link.
	waitJS(t, ctx, 10*time.Second, "the graph is drawn", `document.querySelectorAll('#graph .node').length === 3`)
	nodes := jsString(t, ctx, `[...document.querySelectorAll('#graph .node')].map(n => n.dataset.node + ':' + n.dataset.kind).sort().join(',')`)
	assert.Equal(t, "client:host,s1:switch,server:host", nodes)
	links := jsString(t, ctx, `[...document.querySelectorAll('#graph .link')].map(n => n.dataset.link).sort().join(',')`)
	assert.Equal(t, "client-s1,server-s1", links)
	assert.Equal(t, "→ delay 5ms", jsString(t, ctx, `document.querySelector('#graph .link[data-link="client-s1"] text[data-dir="a"]').textContent`))
	assert.Contains(t, jsString(t, ctx, `document.querySelector('#graph .node[data-node="client"] title').textContent`), "10.0.0.")
	assert.Equal(t, "changes allowed", jsString(t, ctx, `document.querySelector('#mode').textContent`))
	// The wheel zooms, a double click fits again.
	fit := jsString(t, ctx, `document.querySelector('#graph').getAttribute('viewBox')`)
	zoomed := jsString(t, ctx, `(() => { const g = document.querySelector('#graph'), r = g.getBoundingClientRect();
		g.dispatchEvent(new WheelEvent('wheel', {deltaY: -100, clientX: r.left + r.width / 2, clientY: r.top + r.height / 2, bubbles: true, cancelable: true}));
		return g.getAttribute('viewBox'); })()`)
	assert.NotEqual(t, fit, zoomed)
	assert.Equal(t, fit, jsString(t, ctx, `(() => { const g = document.querySelector('#graph'); g.dispatchEvent(new MouseEvent('dblclick', {bubbles: true})); return g.getAttribute('viewBox'); })()`))

	// A line the program prints shows within 2 s, stdout and stderr apart.
	waitJS(t, ctx, 10*time.Second, "the ticker's output shows", `[...document.querySelectorAll('#log .line.s-out .x')].some(x => x.textContent.startsWith('tick '))`)
	latest := func() int {
		b, err := os.ReadFile(filepath.Join("/run/labctl", lab, "logs", "server", "ticker.log"))
		require.NoError(t, err)
		m := regexp.MustCompile(`out tick (\d+)\n`).FindAllSubmatch(b, -1)
		require.NotEmpty(t, m)
		n, _ := strconv.Atoi(string(m[len(m)-1][1]))
		return n
	}
	n := latest()
	waitJS(t, ctx, 2*time.Second, fmt.Sprintf("tick %d (just printed) on the page", n),
		fmt.Sprintf(`[...document.querySelectorAll('#log .line.s-out .x')].some(x => x.textContent === 'tick %d')`, n))
	waitJS(t, ctx, 2*time.Second, "stderr shows as stderr", `[...document.querySelectorAll('#log .line.s-err .x')].some(x => x.textContent.startsWith('warn '))`)

	// Program states and check results, as they happen.
	waitJS(t, ctx, 20*time.Second, "the checks are in", `document.querySelectorAll('#checks .check').length === 2`)
	assert.Equal(t, "1", jsString(t, ctx, `String(document.querySelectorAll('#checks .check.pass').length)`))
	assert.Contains(t, jsString(t, ctx, `document.querySelector('#checks .check.fail .why').textContent`), `no line contains "never-printed"`)
	waitJS(t, ctx, 5*time.Second, "program states", `document.querySelector('#programs tr[data-program="client/hello"]').dataset.state === 'exited' &&
		['running', 'ready'].includes(document.querySelector('#programs tr[data-program="server/ticker"]').dataset.state)`)

	// Counters rise while a ping runs.
	pkts := `Number(document.querySelector('#links tr[data-link="client-s1"][data-dir="a"] .c-packets').dataset.v)`
	before := jsNumber(t, ctx, pkts)
	ping := exec.Command(bin, "ping", "--lab", lab, "client", "server", "-c", "15", "-i", "100ms")
	require.NoError(t, ping.Start())
	waitJS(t, ctx, 10*time.Second, "client-s1's a->b packets rise with the ping", fmt.Sprintf(`%s >= %v`, pkts, before+5))
	_ = ping.Wait()
	assert.Greater(t, jsNumber(t, ctx, `Number(document.querySelector('#links tr[data-link="client-s1"][data-dir="a"] .c-bytes').dataset.v)`), 0.0)

	// 100 % loss from the page: the ping fails, netem show agrees, the
	// counters show the losses.
	click(t, ctx, `#graph .link[data-link="client-s1"]`)
	waitJS(t, ctx, 5*time.Second, "the link's form", `!!document.querySelector('#netem-form[data-link="client-s1"]')`)
	assert.Equal(t, "5ms", jsString(t, ctx, `document.querySelector('#f-delay').value`))
	setField(t, ctx, "#f-loss", "100%")
	click(t, ctx, "#netem-apply")
	waitJS(t, ctx, 5*time.Second, "the change is confirmed", `document.querySelector('#netem-error').textContent.startsWith('set:')`)
	show := netemShow(t, lab)
	assert.Equal(t, "100%", show["client-s1 from client"]["loss"], "%v", show)
	assert.Equal(t, "100%", show["client-s1 from s1"]["loss"], "%v", show)
	r := labctl(t, "ping", "--lab", lab, "client", "server", "-c", "3", "-i", "100ms", "-W", "300ms")
	assert.NotEqual(t, 0, r.code, "ping across 100%% loss: %s", r)
	waitJS(t, ctx, 3*time.Second, "losses counted on the page", `!!document.querySelector('#links tr[data-link="client-s1"][data-dir="a"] .drops [data-cause="lost"]')`)
	waitJS(t, ctx, 3*time.Second, "the graph's label says so", `document.querySelector('#graph .link[data-link="client-s1"] text[data-dir="a"]').textContent.includes('loss 100%')`)

	// A bad impairment: the CLI's one-line error next to the field, and the
	// link keeps what it had.
	setField(t, ctx, "#f-loss", "110%")
	click(t, ctx, "#netem-apply")
	waitJS(t, ctx, 5*time.Second, "the error by the field", `document.querySelector('.err[data-field="loss"]').textContent !== ''`)
	pageErr := jsString(t, ctx, `document.querySelector('.err[data-field="loss"]').textContent`)
	assert.Contains(t, pageErr, `bad percentage "110%": outside 0-100%`)
	cli := labctl(t, "netem", "set", lab, "client-s1", "--loss", "110%")
	assert.Equal(t, 2, cli.code, "%s", cli)
	assert.Equal(t, "labctl: "+pageErr+"\n", cli.stderr, "the page says what the command line says")
	assert.Equal(t, "100%", netemShow(t, lab)["client-s1 from client"]["loss"])

	// A capture of the link, downloaded as the page's link offers it.
	magic, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => {
		const a = document.querySelector('#cap-link');
		const r = await fetch(a.href.replace(/seconds=[^&]*/, 'seconds=1'));
		const b = new Uint8Array(await r.arrayBuffer());
		return r.status + ' ' + r.headers.get('Content-Disposition') + ' ' + [...b.slice(0, 4)].map(x => x.toString(16).padStart(2, '0')).join('');
	})()`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	assert.Regexp(t, `^200 attachment; filename="`+lab+`-client-s1-\d+\.pcapng" 0a0d0d0a$`, magic, "a pcapng section header block")

	// Clean again, then the other link down and up from the page.
	setField(t, ctx, "#f-loss", "")
	click(t, ctx, "#netem-apply")
	waitJS(t, ctx, 5*time.Second, "clean again", `document.querySelector('#netem-error').textContent.startsWith('set:')`)
	click(t, ctx, `#graph .link[data-link="server-s1"]`)
	waitJS(t, ctx, 5*time.Second, "the other link's form", `!!document.querySelector('#netem-form[data-link="server-s1"]')`)
	click(t, ctx, "#link-down")
	waitJS(t, ctx, 3*time.Second, "the link shows down", `document.querySelector('#graph .link[data-link="server-s1"]').classList.contains('down')`)
	r = labctl(t, "ping", "--lab", lab, "client", "server", "-c", "2", "-i", "100ms", "-W", "300ms")
	assert.NotEqual(t, 0, r.code, "ping across a link that is down: %s", r)
	click(t, ctx, "#link-up")
	waitJS(t, ctx, 3*time.Second, "the link shows up", `!document.querySelector('#graph .link[data-link="server-s1"]').classList.contains('down')`)
	r = labctl(t, "ping", "--lab", lab, "client", "server", "-c", "2", "-i", "100ms")
	assert.Equal(t, 0, r.code, "ping once the link is up again: %s", r)

	// Restart a program from the page.
	click(t, ctx, `#programs tr[data-program="server/ticker"] button.restart`)
	waitJS(t, ctx, 5*time.Second, "the restart shows in the output", `[...document.querySelectorAll('#log .line.s-sys .x')].some(x => x.textContent === 'web: restart server/ticker')`)
	waitJS(t, ctx, 10*time.Second, "it prints again from 1", `[...document.querySelectorAll('#log .line .x')].filter(x => x.textContent === 'tick 1').length >= 2`)

	// A task that ended runs again.
	click(t, ctx, `#programs tr[data-program="client/hello"] button.restart`)
	waitJS(t, ctx, 5*time.Second, "the task prints again", `[...document.querySelectorAll('#log .line.s-out .x')].filter(x => x.textContent === 'hello-from-client').length >= 2`)

	// A second page at once sees the same state.
	tab2, cancel2 := chromedp.NewContext(ctx)
	defer cancel2()
	require.NoError(t, chromedp.Do(tab2, chromedp.Navigate(url+"#lab="+lab)))
	waitJS(t, tab2, 10*time.Second, "the second page draws the lab", `document.querySelectorAll('#graph .node').length === 3 && document.querySelectorAll('#checks .check').length === 2`)

	if p := os.Getenv("LABCTL_WEB_SCREENSHOT_TEST"); p != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, png, 0o644))
	}

	// The lab goes down: the page says so and keeps working.
	r = labctl(t, "down", lab)
	require.Equal(t, 0, r.code, "%s", r)
	waitJS(t, ctx, 5*time.Second, "the page says the lab is down", `!document.querySelector('#banner').hidden && document.querySelector('#banner').textContent.includes('is down')`)
	waitJS(t, ctx, 5*time.Second, "nodes show gone", `document.querySelector('#graph .node[data-node="server"]').classList.contains('st-gone')`)
	click(t, ctx, `#graph .node[data-node="server"]`)
	assert.Contains(t, jsString(t, ctx, `document.querySelector('#detail').textContent`), "eth0")
	assert.Empty(t, exceptions(), "JavaScript exceptions on the page")
}

// TestWebCourse is `labctl up --web` on the default lab: the page shows
// the course's programs and checks. With LABCTL_WEB_SCREENSHOT=docs/web.png
// it saves the README's screenshot.
func TestWebCourse(t *testing.T) {
	ctx, exceptions := browser(t)
	lab, r := up(t, "webcourse", "--web", "-d")
	m := regexp.MustCompile(`live page of the lab: (\S+)`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m, "up --web prints the URL: %s", r)
	require.Contains(t, m[1], "#lab="+lab)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(m[1])))
	st := inspect(t, lab)
	waitJS(t, ctx, 10*time.Second, "the graph is drawn", fmt.Sprintf(`document.querySelectorAll('#graph .node').length === %d`, len(st.Nodes)))
	waitJS(t, ctx, 90*time.Second, "the course's checks are in", `document.querySelectorAll('#checks .check').length > 5`)
	waitJS(t, ctx, 5*time.Second, "every check passes", `document.querySelectorAll('#checks .check.fail').length === 0`)
	waitJS(t, ctx, 5*time.Second, "counters moved", `[...document.querySelectorAll('#links .c-packets')].some(td => Number(td.dataset.v) > 100)`)
	// Show the lossy link's details, as a student would.
	click(t, ctx, `#graph .link[data-link="client1-s1"]`)
	waitJS(t, ctx, 5*time.Second, "the link's form", `!!document.querySelector('#netem-form')`)
	if p := os.Getenv("LABCTL_WEB_SCREENSHOT"); p != "" {
		waitJS(t, ctx, 10*time.Second, "a few seconds of sparkline", `document.querySelector('#links .spark polyline').getAttribute('points').split(' ').length >= 5`)
		// The whole page at 1600x1300, without a scrollbar.
		require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1600, 1300)))
		_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.documentElement.style.overflow = 'hidden', true)`))
		require.NoError(t, err)
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		require.NoError(t, err)
		if !filepath.IsAbs(p) {
			p = filepath.Join("..", p)
		}
		require.NoError(t, os.WriteFile(p, png, 0o644))
	}
	assert.Empty(t, exceptions(), "JavaScript exceptions on the page")
}
