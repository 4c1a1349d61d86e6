package chat

import (
	"bufio"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkDeadReadersLoopback is issue 13.3 on loopback, without root
// (tests/BenchmarkChatDeadReaders is the same across namespaces): one
// member floods 1 KB lines at 2000/s for 3 s to 10 live members, twice
// side by side, without and then with 10 members that never read. It
// reports the live members' delivery latency (p50, p99, max) in both and
// the ratio of the p99s. A fixed, bounded amount of work whatever b.N is:
//
//	go test ./proto/chat -run '^$' -bench DeadReaders -benchtime 1x
func BenchmarkDeadReadersLoopback(b *testing.B) {
	const live, dead, rate, seconds, size = 10, 10, 2000, 3, 1000
	ts := startServer(b, Config{})
	epoch := time.Now()
	sender := join(b, ts.addr, "flood")
	rs := make([]*raw, live)
	for i := range rs {
		rs[i] = join(b, ts.addr, fmt.Sprintf("live%d", i))
	}
	msgs := rate * seconds
	pad := strings.Repeat("x", size)
	var lat [3][]time.Duration // phase 0 warms up (not reported)
	var mu sync.Mutex
	for k, withDead := range []bool{false, false, true} {
		n := msgs
		if k == 0 {
			n = rate / 2
		}
		if withDead {
			for i := 0; i < dead; i++ {
				deadReader(b, ts.addr, fmt.Sprintf("dead%d", i))
			}
		}
		var wg sync.WaitGroup
		for _, r := range rs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = r.c.SetReadDeadline(time.Now().Add(time.Minute))
				var mine []time.Duration
				for len(mine) < n {
					s, err := r.br.ReadString('\n')
					if err != nil {
						b.Errorf("receiver: %v after %d messages of phase %d", err, len(mine), k)
						return
					}
					f := strings.Fields(s) // "flood: <phase> <seq> <ns since epoch> <pad>"
					if len(f) != 5 || f[0] != "flood:" || f[1] != strconv.Itoa(k) {
						continue
					}
					ns, _ := strconv.ParseInt(f[3], 10, 64)
					mine = append(mine, time.Since(epoch)-time.Duration(ns))
				}
				mu.Lock()
				lat[k] = append(lat[k], mine...)
				mu.Unlock()
			}()
		}
		start := time.Now()
		w := bufio.NewWriterSize(sender.c, 64<<10)
		for i := 0; i < n; i++ {
			fmt.Fprintf(w, "%d %d %d %s\n", k, i, time.Since(epoch), pad)
			if (i+1)%(rate/100) == 0 { // every 10 ms: the flooder's pace
				require.NoError(b, w.Flush())
				time.Sleep(time.Until(start.Add(time.Duration(i+1) * time.Second / rate)))
			}
		}
		require.NoError(b, w.Flush())
		wg.Wait()
	}
	require.Len(b, ts.Nicks(), live+1, "the dead readers were dropped, nobody else")

	fmt.Printf("\nchat on loopback: 1 member floods %d lines of %d B at %d/s to %d live members\n", msgs, size, rate, live)
	fmt.Printf("%-18s %11s %10s %10s %10s\n", "phase", "deliveries", "p50", "p99", "max")
	var p99 [2]time.Duration
	for i, name := range []string{"no dead readers", fmt.Sprintf("%d dead readers", dead)} {
		all := lat[i+1]
		require.Len(b, all, msgs*live, "every live member gets every message")
		slices.Sort(all)
		p99[i] = all[len(all)*99/100]
		fmt.Printf("%-18s %11d %10v %10v %10v\n", name, len(all), all[len(all)/2].Round(10*time.Microsecond),
			p99[i].Round(10*time.Microsecond), all[len(all)-1].Round(10*time.Microsecond))
		b.ReportMetric(float64(p99[i].Microseconds()), fmt.Sprintf("p99-µs-%d", i))
	}
	ratio := float64(p99[1]) / float64(max(p99[0], time.Microsecond))
	fmt.Printf("p99 with dead readers / without: %.2f (goal: p99 with dead readers under 100 ms)\n", ratio)
	b.ReportMetric(ratio, "p99-ratio")
}
