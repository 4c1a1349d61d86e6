// Package bench runs labctl's side-by-side benchmarks: `labctl bench rudp`
// puts the reliable UDP download (both algorithms), TCP with cubic and
// with BBR (the file server's get) and a UDP stream paced above the line
// rate on one impaired lab link, at several loss levels, in one run.
package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/internal/nsdo"
	"github.com/labctl/labctl/proto/filesvc"
	"github.com/labctl/labctl/proto/rudp"
)

// RUDPConfig is one `labctl bench rudp` run.
type RUDPConfig struct {
	Bin      string        // the labctl binary (brings the lab up and down, sets the loss)
	Loss     []float64     // loss levels in percent, both directions of the client's link
	RateMbit float64       // the link's rate, each direction
	RTT      time.Duration // round trip; half of it is the delay each way
	Size     int64         // file bytes
	Cap      time.Duration // a transfer still running then is stopped and marked capped
	Limit    time.Duration // how long the UDP limit stream runs (default 3s)
	Log      *slog.Logger
}

// Row is one measurement.
type Row struct {
	LossPct     float64 `json:"loss_pct"`
	Algorithm   string  `json:"algorithm"`
	GoodputMbps float64 `json:"goodput_mbps"`
	LimitMbps   float64 `json:"limit_mbps"` // the link's limit measured at this loss (same run)
	Ratio       float64 `json:"ratio"`      // goodput / limit
	SentBytes   int64   `json:"sent_bytes"` // payload bytes the sender put on the wire, resends included
	FileBytes   int64   `json:"file_bytes"` // bytes delivered (the file's size unless capped)
	Seconds     float64 `json:"seconds"`
	Capped      bool    `json:"capped"`
}

// The algorithms, in table order; "limit" is the paced UDP stream and
// "analytic" rate × payload/frame.
var Algorithms = []string{"sack", "seed", "tcp-cubic", "tcp-bbr", "limit", "analytic"}

// frameBytes is a sack DATA on the wire: 1436 + 36 + 8 (UDP) + 20 (IP) + 14 (Ethernet).
const frameBytes = rudp.DefaultSegment + rudp.DataOverhead + 8 + 20 + 14

// Analytic is the limit of a link that decides loss before its rate queue
// (labctl's engine, like tc-netem): a lost packet costs no capacity, so
// rate × payload/frame at every loss level.
func Analytic(rateMbit float64) float64 {
	return rateMbit * float64(rudp.DefaultSegment) / frameBytes
}

const labYAML = `
hosts: [h1, h2]
switches: [s1]
links:
  - endpoints: [h1, s1]
  - endpoints: [h2, s1]
    netem: {rate: %s, delay: %s}
`

// RunRUDP brings up a two-host lab (h1 serves, h2 fetches over the impaired
// link h2-s1), runs every algorithm at every loss level, takes the lab down
// and returns the rows.
func RunRUDP(ctx context.Context, cfg RUDPConfig) ([]Row, error) {
	if cfg.Limit <= 0 {
		cfg.Limit = 3 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	dir, err := os.MkdirTemp("", "labctl-bench-rudp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "file.bin")
	if err := randomFile(file, cfg.Size); err != nil {
		return nil, err
	}
	lab := fmt.Sprintf("bench-rudp-%d", os.Getpid())
	rate := strconv.FormatFloat(cfg.RateMbit, 'f', -1, 64) + "mbit"
	delay := (cfg.RTT / 2).String()
	yml := filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(yml, []byte(fmt.Sprintf(labYAML, rate, delay)), 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, cfg.Bin, "up", "-f", yml, "--name", lab, "--test", "none").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("bench: up: %w: %s", err, out)
	}
	defer func() {
		down, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = exec.CommandContext(down, cfg.Bin, "down", lab).Run()
	}()
	b := &benchLab{cfg: cfg, lab: lab, file: file, server: netip.MustParseAddr("10.0.0.1"), client: netip.MustParseAddr("10.0.0.2")}
	var rows []Row
	for _, loss := range cfg.Loss {
		set := exec.CommandContext(ctx, cfg.Bin, "netem", "set", lab, "h2-s1", "--rate", rate, "--delay", delay,
			"--loss", strconv.FormatFloat(loss, 'f', -1, 64)+"%")
		if out, err := set.CombinedOutput(); err != nil {
			return rows, fmt.Errorf("bench: netem set: %w: %s", err, out)
		}
		limit, err := b.limit(ctx)
		if err != nil {
			return rows, err
		}
		cfg.Log.Info("limit", "loss", loss, "mbps", limit)
		level := []Row{
			{Algorithm: "limit", GoodputMbps: limit},
			{Algorithm: "analytic", GoodputMbps: Analytic(cfg.RateMbit)},
		}
		for _, algo := range Algorithms[:4] {
			r, err := b.run(ctx, algo)
			if err != nil {
				return rows, fmt.Errorf("bench: %s at %g%% loss: %w", algo, loss, err)
			}
			cfg.Log.Info("run", "loss", loss, "algorithm", algo, "mbps", r.GoodputMbps, "seconds", r.Seconds, "capped", r.Capped)
			level = append(level, r)
		}
		for i := range level {
			level[i].LossPct, level[i].LimitMbps = loss, limit
			if limit > 0 {
				level[i].Ratio = level[i].GoodputMbps / limit
			}
		}
		// Table order: the algorithms, then the limits.
		rows = append(rows, level[2:]...)
		rows = append(rows, level[:2]...)
	}
	return rows, nil
}

func randomFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		return fmt.Errorf("bench: make the file: %w", err)
	}
	return f.Close()
}

type benchLab struct {
	cfg            RUDPConfig
	lab, file      string
	server, client netip.Addr
}

func (b *benchLab) in(host string, fn func() error) error {
	return nsdo.DoNamed("lab-"+b.lab+"-"+host, fn)
}

func (b *benchLab) run(ctx context.Context, algo string) (Row, error) {
	switch algo {
	case "sack", "seed":
		a, _ := rudp.ParseAlgorithm(algo)
		return b.runRUDP(ctx, a)
	case "tcp-cubic":
		return b.runTCP(ctx, "cubic")
	case "tcp-bbr":
		return b.runTCP(ctx, "bbr")
	}
	return Row{}, fmt.Errorf("unknown algorithm %q", algo)
}

func (b *benchLab) row(algo string, sent, got int64, d time.Duration, capped bool) Row {
	return Row{Algorithm: algo, GoodputMbps: float64(got) * 8 / d.Seconds() / 1e6, SentBytes: sent,
		FileBytes: got, Seconds: d.Seconds(), Capped: capped}
}

func (b *benchLab) runRUDP(ctx context.Context, algo rudp.Algorithm) (Row, error) {
	var spc, cpc net.PacketConn
	if err := b.in("h1", func() (err error) { spc, err = net.ListenPacket("udp4", b.server.String()+":0"); return }); err != nil {
		return Row{}, err
	}
	defer spc.Close()
	if err := b.in("h2", func() (err error) { cpc, err = net.ListenPacket("udp4", b.client.String()+":0"); return }); err != nil {
		return Row{}, err
	}
	defer cpc.Close()
	for _, pc := range []net.PacketConn{spc, cpc} {
		u := pc.(*net.UDPConn)
		_ = u.SetReadBuffer(8 << 20)
		_ = u.SetWriteBuffer(8 << 20)
		_ = rudp.DisableUDPChecksum(u)
	}
	f, err := os.Open(b.file)
	if err != nil {
		return Row{}, err
	}
	defer f.Close()
	sum, err := fileSHA(b.file)
	if err != nil {
		return Row{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Cap)
	defer cancel()
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		st, _ := rudp.Send(cctx, spc, b.client, f, b.cfg.Size, rudp.SendConfig{Algorithm: algo, IdleTimeout: b.cfg.Cap, Logger: b.cfg.Log})
		sent.Store(st.SentBytes)
	}()
	var got atomic.Int64
	start := time.Now()
	dl := filepath.Join(filepath.Dir(b.file), "dl")
	_, err = rudp.Download(cctx, cpc, spc.LocalAddr(), dl, "file.bin", b.cfg.Size, sum,
		rudp.RecvConfig{IdleTimeout: b.cfg.Cap, Linger: 200 * time.Millisecond, Progress: func(n int64) { got.Add(n) }})
	d := time.Since(start)
	os.RemoveAll(dl)
	capped := err != nil && cctx.Err() != nil
	if err != nil && !capped {
		return Row{}, err
	}
	cancel()
	<-done
	return b.row(algo.String(), sent.Load(), got.Load(), d, capped), nil
}

// runTCP is the file server's get over a socket whose congestion control
// is cc (TCP_CONGESTION on the listener, inherited by the accepted socket).
func (b *benchLab) runTCP(ctx context.Context, cc string) (Row, error) {
	var ln net.Listener
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, cc) }); err != nil {
			return err
		}
		return serr
	}}
	if err := b.in("h1", func() (err error) { ln, err = lc.Listen(ctx, "tcp4", b.server.String()+":0"); return }); err != nil {
		return Row{}, fmt.Errorf("listen with %s: %w", cc, err)
	}
	rl := &recordingListener{Listener: ln, conns: make(chan net.Conn, 1)}
	repo := filepath.Dir(b.file)
	srv, err := filesvc.NewServer(filesvc.Config{Repo: repo, MinRate: 1, IOTimeout: b.cfg.Cap + 30*time.Second,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		ln.Close()
		return Row{}, err
	}
	defer srv.Close()
	sctx, stop := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(sctx, rl) }()
	defer func() { stop(); <-served }()

	var conn net.Conn
	if err := b.in("h2", func() (err error) {
		conn, err = net.DialTimeout("tcp4", ln.Addr().String(), 30*time.Second)
		return
	}); err != nil {
		return Row{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Cap)
	defer cancel()
	c, err := filesvc.NewClient(cctx, conn, filesvc.ClientConfig{Timeout: b.cfg.Cap + 30*time.Second})
	if err != nil {
		conn.Close()
		return Row{}, err
	}
	defer c.Close()
	var sconn net.Conn
	select {
	case sconn = <-rl.conns:
	case <-time.After(10 * time.Second):
		return Row{}, errors.New("the server did not accept")
	}
	cw := &countWriter{}
	start := time.Now()
	_, err = c.Get(cctx, "file.bin", cw)
	d := time.Since(start)
	capped := err != nil && cctx.Err() != nil
	if err != nil && !capped {
		return Row{}, err
	}
	return b.row("tcp-"+cc, bytesSent(sconn), cw.n.Load(), d, capped), nil
}

// bytesSent is TCP_INFO's tcpi_bytes_sent (resends included) of the server's socket.
func bytesSent(c net.Conn) int64 {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var n int64
	_ = rc.Control(func(fd uintptr) {
		if ti, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			n = int64(ti.Bytes_sent)
		}
	})
	return n
}

type recordingListener struct {
	net.Listener
	conns chan net.Conn
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		select {
		case l.conns <- c:
		default:
		}
	}
	return c, err
}

type countWriter struct{ n atomic.Int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n.Add(int64(len(p))); return len(p), nil }

// limit measures what the link delivers: a UDP stream of sack-sized
// datagrams from h1 to h2 paced at 1.5 × rate / (1 − loss) for cfg.Limit;
// the file bytes per second the delivered datagrams would carry.
func (b *benchLab) limit(ctx context.Context) (float64, error) {
	var tx, rx net.PacketConn
	if err := b.in("h2", func() (err error) { rx, err = net.ListenPacket("udp4", b.client.String()+":0"); return }); err != nil {
		return 0, err
	}
	defer rx.Close()
	_ = rx.(*net.UDPConn).SetReadBuffer(8 << 20)
	if err := b.in("h1", func() (err error) { tx, err = net.ListenPacket("udp4", b.server.String()+":0"); return }); err != nil {
		return 0, err
	}
	defer tx.Close()
	const payload = rudp.DefaultSegment + rudp.DataOverhead
	var got atomic.Int64
	var first, last atomic.Int64
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		buf := make([]byte, 2048)
		for {
			_ = rx.SetReadDeadline(time.Now().Add(time.Second))
			n, _, err := rx.ReadFrom(buf)
			if err != nil {
				return
			}
			if n == payload {
				now := time.Now().UnixNano()
				first.CompareAndSwap(0, now)
				last.Store(now)
				got.Add(1)
			}
		}
	}()
	pps := 1.5 * b.cfg.RateMbit * 1e6 / 8 / frameBytes
	if l := b.cfg.Loss; len(l) > 0 {
		pps /= 1 - maxOf(l)/100
	}
	msg := bytes.Repeat([]byte{0x55}, payload)
	start := time.Now()
	for sent := 0; time.Since(start) < b.cfg.Limit && ctx.Err() == nil; {
		due := int(time.Since(start).Seconds() * pps)
		for ; sent < due; sent++ {
			_, _ = tx.WriteTo(msg, rx.LocalAddr())
		}
		time.Sleep(time.Millisecond)
	}
	<-recvDone
	n, f, l := got.Load(), first.Load(), last.Load()
	if n < 2 || l <= f {
		return 0, errors.New("bench: the limit stream delivered nothing")
	}
	return float64(n-1) * float64(rudp.DefaultSegment) * 8 / (float64(l-f) / 1e9) / 1e6, nil
}

func maxOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// WriteCSV writes the rows with the columns
// loss_pct,algorithm,goodput_mbps,limit_mbps,ratio,sent_bytes,file_bytes,seconds.
func WriteCSV(w io.Writer, rows []Row) error {
	var sb strings.Builder
	sb.WriteString("loss_pct,algorithm,goodput_mbps,limit_mbps,ratio,sent_bytes,file_bytes,seconds\n")
	for _, r := range rows {
		fmt.Fprintf(&sb, "%g,%s,%.3f,%.3f,%.3f,%d,%d,%.2f\n", r.LossPct, r.Algorithm, r.GoodputMbps, r.LimitMbps,
			r.Ratio, r.SentBytes, r.FileBytes, r.Seconds)
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// WriteMarkdown writes a Markdown table; capped runs are marked.
func WriteMarkdown(w io.Writer, rows []Row) error {
	var sb strings.Builder
	sb.WriteString("| loss | algorithm | goodput Mbit/s | limit Mbit/s | ratio | sent / (file/(1-loss)) | seconds |\n")
	sb.WriteString("|---:|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		waste := "—"
		if r.SentBytes > 0 && r.FileBytes > 0 {
			waste = fmt.Sprintf("%.2f", float64(r.SentBytes)/(float64(r.FileBytes)/(1-r.LossPct/100)))
		}
		secs := fmt.Sprintf("%.1f", r.Seconds)
		if r.Capped {
			secs += " (capped)"
		}
		if r.Algorithm == "limit" || r.Algorithm == "analytic" {
			secs, waste = "—", "—"
		}
		fmt.Fprintf(&sb, "| %g %% | %s | %.2f | %.2f | %.2f | %s | %s |\n", r.LossPct, r.Algorithm, r.GoodputMbps,
			r.LimitMbps, r.Ratio, waste, secs)
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// ReadJSON reads rows written by WriteJSON (to redraw a run's chart).
func ReadJSON(r io.Reader) ([]Row, error) {
	var rows []Row
	if err := json.NewDecoder(r).Decode(&rows); err != nil {
		return nil, fmt.Errorf("bench: read rows: %w", err)
	}
	return rows, nil
}

// WriteJSON writes the rows as a JSON array.
func WriteJSON(w io.Writer, rows []Row) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(rows)
}

func fileSHA(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return sha256Hex(f)
}
