package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labctl/labctl/internal/nsdo"
)

// BenchmarkWebLinear100 measures `labctl web` on linear,100 (100 hosts,
// 100 switches, 199 links) with traffic on every link: each host h_i sends
// one UDP datagram a second to h_(i+1), whose ICMP "port unreachable"
// answers, so every link carries packets both ways. It reports the web
// process's CPU (share of one core) and the bytes per second it pushes to
// each page, side by side: no page open, one page, two pages. A fixed,
// bounded amount of work whatever b.N is; run it once:
//
//	sudo go test ./tests/ -run '^$' -bench WebLinear100 -benchtime 1x
//
// (scripts/bench-web.sh does that).
func BenchmarkWebLinear100(b *testing.B) { benchWeb(b, 100) }

// BenchmarkWebLinear30Engine is the same on linear,30 (59 links), small
// enough for every link to go through the userspace engine, whose
// counters come over its control socket.
func BenchmarkWebLinear30Engine(b *testing.B) { benchWeb(b, 30, "--backend", "userspace") }

func benchWeb(b *testing.B, n int, upArgs ...string) {
	const window = 20 * time.Second
	name := labName("webbench")
	b.Cleanup(func() { _, _ = execBin("down", name) })
	out, err := execBin(append([]string{"up", "--name", name, "--topo", fmt.Sprintf("linear,%d", n), "--test", "none"}, upArgs...)...)
	require.NoError(b, err, "%s", out)
	st := inspectB(b, name)
	links := 2*n - 1

	// Traffic: one datagram a second from each h_i to h_(i+1), for as long
	// as the benchmark runs (bounded by ctx).
	ctx, cancel := context.WithTimeout(context.Background(), 5*window)
	defer cancel()
	var conns []*net.UDPConn
	for i := 1; i < n; i++ {
		from, to := fmt.Sprintf("h%d", i), fmt.Sprintf("h%d", i+1)
		var c *net.UDPConn
		require.NoError(b, nsdo.DoNamed("lab-"+name+"-"+from, func() error {
			var err error
			c, err = net.DialUDP("udp", nil, &net.UDPAddr{IP: net.ParseIP(st.addr(to)), Port: 9})
			return err
		}))
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			for _, c := range conns {
				_, _ = c.Write([]byte("labctl web bench"))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()

	web := exec.Command(bin, "web", "--listen", "127.0.0.1:0")
	stdout, err := web.StdoutPipe()
	require.NoError(b, err)
	require.NoError(b, web.Start())
	defer func() { _ = web.Process.Signal(syscall.SIGTERM); _ = web.Wait() }()
	sc := bufio.NewScanner(stdout)
	var base string
	for sc.Scan() {
		if _, u, ok := strings.Cut(sc.Text(), "open "); ok {
			base = u[:strings.Index(u, "?")]
			break
		}
	}
	require.NotEmpty(b, base, "labctl web printed no URL")
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	cpu := func() float64 { // seconds of CPU the web process used so far
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", web.Process.Pid))
		require.NoError(b, err)
		f := strings.Fields(string(raw)[strings.LastIndexByte(string(raw), ')')+2:])
		ut, _ := strconv.ParseFloat(f[11], 64)
		stt, _ := strconv.ParseFloat(f[12], 64)
		return (ut + stt) / 100 // USER_HZ
	}
	// page opens the lab's event stream and counts what arrives.
	page := func(ctx context.Context, got *int64, events *int64) {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"api/labs/"+name+"/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		rd := bufio.NewReader(resp.Body)
		for {
			line, err := rd.ReadString('\n')
			*got += int64(len(line))
			if strings.HasPrefix(line, "event: counters") {
				*events++
			}
			if err != nil {
				return
			}
		}
	}
	measure := func(pages int) (cpuShare, bytesPerSec, eventsPerSec float64) {
		pctx, pcancel := context.WithCancel(ctx)
		defer pcancel()
		got := make([]int64, pages)
		evs := make([]int64, pages)
		done := make(chan struct{}, pages)
		for i := 0; i < pages; i++ {
			go func(i int) { page(pctx, &got[i], &evs[i]); done <- struct{}{} }(i)
		}
		// Warm up: the first snapshot and the netlink handles.
		time.Sleep(3 * time.Second) // a measurement window, not a readiness wait
		g0, e0 := sum(got), sum(evs)
		c0, t0 := cpu(), time.Now()
		time.Sleep(window) // the measurement window
		c1, t1 := cpu(), time.Now()
		g1, e1 := sum(got), sum(evs)
		pcancel()
		for i := 0; i < pages; i++ {
			<-done
		}
		dt := t1.Sub(t0).Seconds()
		per := float64(max(pages, 1))
		return (c1 - c0) / dt, float64(g1-g0) / dt / per, float64(e1-e0) / dt / per
	}
	b.ResetTimer()
	fmt.Printf("labctl web, linear,%d (%d nodes, %d links, %s), traffic on every link, counters at 1 Hz, %s windows\n",
		n, len(st.Nodes), links, st.via(), window)
	fmt.Printf("%-14s %-16s %-18s %-14s\n", "pages open", "CPU (one core)", "pushed per page", "counter events/s")
	for _, pages := range []int{0, 1, 2} {
		c, bps, eps := measure(pages)
		fmt.Printf("%-14d %-16s %-18s %-14.2f\n", pages, fmt.Sprintf("%.2f%%", 100*c), fmt.Sprintf("%.1f KB/s", bps/1000), eps)
		if pages == 1 {
			b.ReportMetric(100*c, "%cpu")
			b.ReportMetric(bps, "B/s")
		}
	}
	// The traffic did cross every link, both ways.
	resp, err := http.Get(base + "api/labs/" + name)
	require.NoError(b, err)
	defer resp.Body.Close()
	var snap struct {
		Counters struct {
			Links map[string]struct{ A, B []float64 } `json:"links"`
		} `json:"counters"`
	}
	require.NoError(b, json.NewDecoder(resp.Body).Decode(&snap))
	busy := 0
	for _, l := range snap.Counters.Links {
		if l.A[0] > 0 && l.B[0] > 0 {
			busy++
		}
	}
	fmt.Printf("links with packets both ways: %d of %d\n", busy, len(snap.Counters.Links))
	require.Equal(b, links, busy)
}

// benchState is the state the benchmark reads: the harness's, and how the
// links are made.
type benchState struct {
	state
	Links []struct {
		Via string `json:"via"`
	} `json:"links"`
}

// via says how the lab's links are made: plain veth or through the engine.
func (s benchState) via() string {
	if len(s.Links) > 0 && s.Links[0].Via == "tap" {
		return "through the userspace engine"
	}
	return "plain veth"
}

func sum(xs []int64) int64 {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s
}

func inspectB(b *testing.B, lab string) benchState {
	b.Helper()
	out, err := exec.Command(bin, "inspect", lab, "--json").Output()
	require.NoError(b, err)
	var s benchState
	require.NoError(b, json.Unmarshal(out, &s))
	return s
}
