package engine

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/internal/testnet"
	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/netem/measure"
	"github.com/labctl/labctl/topo"
	"golang.org/x/sys/unix"
)

// BenchmarkUserspace compares, in one run, a plain veth with a userspace
// link: TCP throughput of one flow (iperf3, clean and with 1% loss), the
// engine's CPU per Gbit/s, and the accuracy of the delay line at 1, 10 and
// 100 ms. Run it once: scripts/bench-userspace.sh, or
//
//	go test -run '^$' -bench Userspace -benchtime 1x ./netem
//
// Delay errors: median-err and p99-err are one-way delay minus the
// configured delay, so they include the path itself (reader wake-up, write,
// receiver wake-up), which delay/0ms measures alone; line-err is the median
// error of the delay line alone (median-err minus the 0 ms median).
//
// The engine runs in the test process and iperf3 in the namespaces, so the
// process's CPU time is the engine's. Note that the engine's write(2) into
// the receiving TAP also runs the receiver's TCP/IP input in its thread.
func BenchmarkUserspace(b *testing.B) {
	testnet.NeedRoot(b)
	if _, err := exec.LookPath("iperf3"); err != nil {
		b.Skip("needs iperf3 (apt-get install -y iperf3)")
	}
	vl := newVethBenchLink(b)
	tl := newTapLab(b)
	tl.start(b, 1)
	const dur = 4 * time.Second

	b.Run("tcp/veth", func(b *testing.B) {
		g, _ := iperf(b, vl.a, vl.b, dur)
		b.ReportMetric(g/1e9, "Gbit/s")
	})
	for _, c := range []struct {
		name string
		s    netem.Spec
	}{{"tcp/tap", netem.Spec{}}, {"tcp/tap-loss1%", netem.Spec{Loss: 1}}} {
		b.Run(c.name, func(b *testing.B) {
			tl.set(b, netem.AtoB, c.s)
			g, cpu := iperf(b, tl.a, tl.b, dur)
			b.ReportMetric(g/1e9, "Gbit/s")
			b.ReportMetric(cpu*100, "engine-cpu-%")
			b.ReportMetric(cpu*100/(g/1e9), "cpu-%/Gbit/s")
		})
	}
	tl.set(b, netem.AtoB, netem.Spec{})
	base := oneWay(b, tl.a, tl.b, 300, 2*time.Millisecond)
	b.Run("delay/0ms", func(b *testing.B) {
		b.ReportMetric(us(base.median), "median-us")
		b.ReportMetric(us(base.p99), "p99-us")
	})
	for _, d := range []time.Duration{time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond} {
		b.Run(fmt.Sprintf("delay/%v", d), func(b *testing.B) {
			tl.set(b, netem.AtoB, netem.Spec{Delay: topo.Duration(d)})
			tl.set(b, netem.BtoA, netem.Spec{Delay: topo.Duration(d)})
			ab := oneWay(b, tl.a, tl.b, 300, 2*time.Millisecond)
			ba := oneWay(b, tl.b, tl.a, 300, 2*time.Millisecond)
			for _, x := range []struct {
				n string
				r owdResult
			}{{"a->b", ab}, {"b->a", ba}} {
				b.ReportMetric(us(x.r.median-d), x.n+"-median-err-us")
				b.ReportMetric(us(x.r.p99-d), x.n+"-p99-err-us")
				b.ReportMetric(us(x.r.median-d-base.median), x.n+"-line-err-us")
				b.Logf("%s: median %v p99 %v max %v (path without delay: median %v)", x.n, x.r.median, x.r.p99, x.r.max, base.median)
			}
		})
	}
	tl.set(b, netem.AtoB, netem.Spec{})
	tl.set(b, netem.BtoA, netem.Spec{})
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

type benchLink struct{ a, b measure.Point }

func newVethBenchLink(b *testing.B) benchLink {
	l := testnet.Link(b, "v", netem.Spec{}, netem.Spec{})
	if err := netem.CreateVeth(context.Background(), l); err != nil {
		b.Fatal(err)
	}
	pa, pb, undo, err := measure.AttachProbeAddrs(l)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = undo() })
	return benchLink{pa, pb}
}

// iperf runs one iperf3 TCP flow from a to b and returns the receiver's
// bit rate and this process's CPU use (cores) meanwhile.
func iperf(b *testing.B, from, to measure.Point, dur time.Duration) (bits, cpu float64) {
	ctx, cancel := context.WithTimeout(context.Background(), dur+20*time.Second)
	defer cancel()
	srv := exec.CommandContext(ctx, "iperf3", "-s", "-1", "--forceflush", "-B", to.Addr.String(), "-p", "5299")
	out, err := srv.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := nsdo.DoNamed(to.NS, srv.Start); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.Contains(sc.Text(), "listening") {
	}
	go func() {
		for sc.Scan() {
		}
	}()
	cli := exec.CommandContext(ctx, "iperf3", "-c", to.Addr.String(), "-p", "5299", "-t", fmt.Sprint(int(dur.Seconds())), "-O", "1", "-J")
	var res []byte
	ru0, t0 := rusage(), time.Now()
	err = nsdo.DoNamed(from.NS, func() error {
		var err error
		res, err = cli.Output()
		return err
	})
	cpu = (rusage() - ru0).Seconds() / time.Since(t0).Seconds()
	if err != nil {
		b.Fatalf("iperf3: %v: %s", err, res)
	}
	var j struct {
		End struct {
			SumReceived struct {
				Bits float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
		} `json:"end"`
	}
	if err := json.Unmarshal(res, &j); err != nil {
		b.Fatal(err)
	}
	b.Logf("%.2f Gbit/s, %d retransmits, process CPU %.0f%%", j.End.SumReceived.Bits/1e9, j.End.SumSent.Retransmits, cpu*100)
	return j.End.SumReceived.Bits, cpu
}

func rusage() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type owdResult struct{ median, p99, max time.Duration }

// oneWay measures one-way delay with blocking sockets on locked threads
// (no Go netpoller in the path): n datagrams, one every gap, each carrying
// its send time on this process's monotonic clock.
func oneWay(b *testing.B, from, to measure.Point, n int, gap time.Duration) owdResult {
	sock := func(p measure.Point) int {
		var fd int
		err := nsdo.DoNamed(p.NS, func() error {
			var err error
			if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
				return err
			}
			return unix.Bind(fd, &unix.SockaddrInet4{Addr: p.Addr.As4()})
		})
		if err != nil {
			b.Fatal(err)
		}
		return fd
	}
	tx, rx := sock(from), sock(to)
	defer unix.Close(tx)
	defer unix.Close(rx)
	_ = unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
	sa, _ := unix.Getsockname(rx)
	dst := &unix.SockaddrInet4{Addr: to.Addr.As4(), Port: sa.(*unix.SockaddrInet4).Port}
	got := make(chan []time.Duration, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var ds []time.Duration
		buf := make([]byte, 64)
		for len(ds) < n {
			k, _, err := unix.Recvfrom(rx, buf, 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil || k < 8 {
				break
			}
			ds = append(ds, time.Duration(nowNs()-int64(binary.BigEndian.Uint64(buf))))
		}
		got <- ds
	}()
	msg := make([]byte, 64)
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint64(msg, uint64(nowNs()))
		if err := unix.Sendto(tx, msg, 0, dst); err != nil {
			b.Fatal(err)
		}
		time.Sleep(gap) // pacing the probes, not waiting for readiness
	}
	ds := <-got
	if len(ds) < n*9/10 {
		b.Fatalf("one-way: %d of %d datagrams arrived", len(ds), n)
	}
	slices.Sort(ds)
	return owdResult{median: ds[len(ds)/2], p99: ds[len(ds)*99/100], max: ds[len(ds)-1]}
}
