package nodes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/labctl/labctl/internal/termsafe"
	"golang.org/x/sys/unix"
)

const (
	// promptFlush: output without a newline that is followed by this much
	// silence is a line of its own (a prompt such as "Enter message: ").
	promptFlush = 200 * time.Millisecond
	// rawCap bounds each raw capture file (PROG.stdout.raw, ...); what
	// comes after is counted, not kept.
	rawCap = 64 << 20
	// sinceCap bounds the output a stdin after: regexp is matched against
	// (the most recent bytes are kept).
	sinceCap = 64 << 10
	// defaultStdinWait bounds a stdin line's wait for after: or idle:.
	defaultStdinWait = 10 * time.Second
)

// LogMarkEnv names the variable that gives labctl's own processes in a lab
// (`labctl app ...`) the lab's log mark: each of their log records on
// stderr starts with it, so the supervisor files them as labctl's ("log"
// stream), never as the program's stderr, and checks do not see them.
const LogMarkEnv = "LABCTL_LOGMARK"

// capture reads one of the program's streams: it keeps the bytes in the
// raw capture, and logs them as lines (escaped by termsafe.Log); output
// that pauses without a newline is flushed as a line. A line longer than
// maxLine is split, never dropped.
func (p *proc) capture(stream string, f *os.File) {
	raw := p.openRaw(stream)
	defer raw.close(p)
	buf := make([]byte, 32<<10)
	var partial []byte
	emit := func(b []byte) {
		b = bytes.TrimRight(b, "\r\n")
		text := termsafe.Log(b)
		st := stream
		if mark := p.s.plan.LogMark; st == "err" && mark != "" && strings.HasPrefix(text, mark) {
			st, text = "log", strings.TrimPrefix(text, mark)
		}
		p.line(st, text)
	}
	for {
		p.rdMu.Lock()
		switch {
		case p.flushWant[stream]:
			_ = f.SetReadDeadline(time.Now())
		case len(partial) > 0:
			_ = f.SetReadDeadline(time.Now().Add(promptFlush))
		default:
			_ = f.SetReadDeadline(time.Time{})
		}
		p.rdMu.Unlock()
		n, err := f.Read(buf)
		if n > 0 {
			raw.write(buf[:n])
			p.sawOutput(buf[:n])
			partial = append(partial, buf[:n]...)
			for {
				i := bytes.IndexByte(partial, '\n')
				if i < 0 {
					break
				}
				emit(partial[:i+1])
				partial = partial[i+1:]
			}
			for len(partial) >= maxLine {
				emit(partial[:maxLine])
				partial = partial[maxLine:]
			}
			partial = append([]byte(nil), partial...)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if len(partial) > 0 {
				emit(partial)
			}
			partial = nil
			p.rdMu.Lock()
			if p.flushWant[stream] {
				p.flushWant[stream] = false
				p.flushAck <- struct{}{}
			}
			p.rdMu.Unlock()
			continue
		}
		if err != nil {
			if len(partial) > 0 {
				emit(partial)
			}
			return
		}
	}
}

// rawFile is a bounded raw capture of one stream.
type rawFile struct {
	f       *os.File
	name    string
	kept    int64
	dropped int64
}

func (p *proc) openRaw(stream string) *rawFile {
	name := map[string]string{"out": "stdout", "err": "stderr"}[stream]
	if p.p.TTY {
		name = "tty"
	}
	path := strings.TrimSuffix(ProgramLog(p.s.plan.Lab, p.host.Name, p.p.Name), ".log") + "." + name + ".raw"
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return &rawFile{name: name}
	}
	return &rawFile{f: f, name: name}
}

func (r *rawFile) write(b []byte) {
	if r.f == nil {
		return
	}
	n := int64(len(b))
	if room := rawCap - r.kept; n > room {
		n = room
	}
	if n > 0 {
		_, _ = r.f.Write(b[:n])
		r.kept += n
	}
	r.dropped += int64(len(b)) - n
}

func (r *rawFile) close(p *proc) {
	if r.f == nil {
		return
	}
	r.f.Close()
	if r.dropped > 0 {
		p.line("sys", fmt.Sprintf("raw capture of %s stopped at %d MiB: %d more bytes not kept", r.name, rawCap>>20, r.dropped))
	}
}

// sawOutput records output for the stdin lines that wait for it.
func (p *proc) sawOutput(b []byte) {
	p.outMu.Lock()
	p.since = append(p.since, b...)
	if len(p.since) > sinceCap {
		p.since = append([]byte(nil), p.since[len(p.since)-sinceCap:]...)
	}
	p.lastOut = time.Now()
	close(p.outCh)
	p.outCh = make(chan struct{})
	p.outMu.Unlock()
}

func (p *proc) resetOutput() {
	p.outMu.Lock()
	p.since, p.lastOut = nil, time.Now()
	if p.outCh == nil {
		p.outCh = make(chan struct{})
	}
	p.outMu.Unlock()
}

// feed types the stdin lines, each when its after: regexp has matched the
// output since the previous line, or the program has been idle: for long
// enough, and after its delay; then it closes stdin (on a terminal: types
// end-of-file) unless keep_stdin.
func (p *proc) feed(w io.WriteCloser, tty bool, exited <-chan struct{}) {
	defer func() {
		if !p.p.KeepStdin {
			if tty {
				_, _ = w.Write([]byte{4}) // ^D: end of file for the program
			}
			w.Close()
		}
	}()
	for _, l := range p.p.Stdin {
		if !p.waitFor(l.After, l.Idle.D(), l.Timeout.D(), exited) {
			return
		}
		if d := l.Delay.D(); d > 0 {
			select {
			case <-exited:
				return
			case <-time.After(d):
			}
		}
		p.flushOutput()
		p.outMu.Lock()
		p.since, p.lastOut = nil, time.Now()
		p.outMu.Unlock()
		if _, err := io.WriteString(w, l.Text+"\n"); err != nil {
			return
		}
		p.line("in", l.Text)
	}
	if p.p.KeepStdin {
		<-exited
	}
}

// flushOutput logs what the program printed without a newline (its
// prompt) before a line is typed, so the prompt and the answer's output
// are two lines, as on a terminal. It waits for the readers at most
// flushWait.
func (p *proc) flushOutput() {
	p.rdMu.Lock()
	for len(p.flushAck) > 0 {
		<-p.flushAck // a late answer to an earlier request
	}
	n := 0
	for _, r := range p.readers {
		p.flushWant[r.stream] = true
		_ = r.f.SetReadDeadline(time.Now())
		n++
	}
	p.rdMu.Unlock()
	t := time.NewTimer(flushWait)
	defer t.Stop()
	for ; n > 0; n-- {
		select {
		case <-p.flushAck:
		case <-t.C:
			return
		}
	}
}

const flushWait = 100 * time.Millisecond

// waitFor waits until the output since the previous line matches after,
// and the program has printed nothing for idle; false if it exited.
func (p *proc) waitFor(after string, idle, timeout time.Duration, exited <-chan struct{}) bool {
	if after == "" && idle == 0 {
		return true
	}
	var rx *regexp.Regexp
	if after != "" {
		rx = regexp.MustCompile(after)
	}
	if timeout == 0 {
		timeout = defaultStdinWait
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.outMu.Lock()
		matched := rx == nil || rx.Match(p.since)
		quiet := time.Since(p.lastOut)
		ch := p.outCh
		p.outMu.Unlock()
		var wake <-chan time.Time
		if matched {
			if quiet >= idle {
				return true
			}
			wake = time.After(idle - quiet)
		}
		select {
		case <-exited:
			return false
		case <-ch:
		case <-wake:
		case <-deadline.C:
			what := fmt.Sprintf("/%s/ in its output", after)
			if rx == nil {
				what = fmt.Sprintf("%s of quiet", idle)
			}
			p.line("sys", fmt.Sprintf("stdin: no %s within %s: typing the next line anyway", what, timeout))
			return true
		}
	}
}

// openPTY opens a pseudo-terminal pair; echo is off, since labctl logs
// what it types itself.
func openPTY() (master, slave *os.File, err error) {
	m, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*os.File, *os.File, error) {
		unix.Close(m)
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		return fail(err)
	}
	n, err := unix.IoctlGetUint32(m, unix.TIOCGPTN)
	if err != nil {
		return fail(err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	s, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	if t, err := unix.IoctlGetTermios(s, unix.TCGETS); err == nil {
		t.Lflag &^= unix.ECHO
		_ = unix.IoctlSetTermios(s, unix.TCSETS, t)
	}
	_ = unix.IoctlSetWinsize(s, unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
	return os.NewFile(uintptr(m), "/dev/ptmx"), os.NewFile(uintptr(s), name), nil
}
