package nodes

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/labctl/labctl/internal/nsdo"
)

// A program with display: true runs under its own virtual X display
// (Xvfb, Debian's xvfb package), started in its host's network namespace
// and reachable only there: Xvfb listens on its abstract socket alone
// (no TCP, no socket file), and abstract sockets belong to a network
// namespace. The framebuffer is mapped to a file (-fbdir), read every
// snapshotEvery; the last frame that is not blank is kept and written as
// a PNG next to the program's log when it ends: its screenshot.
const (
	displayGeometry = "1024x768x24"
	snapshotEvery   = 500 * time.Millisecond
	displayStart    = 10 * time.Second // Xvfb must name its display by then
	// maxFrame bounds the framebuffer file read (1024x768 at 32 bits is 3 MiB).
	maxFrame = 16 << 20
)

type display struct {
	cmd   *exec.Cmd
	num   int
	fbdir string
	stop  chan struct{}
	done  chan struct{}

	mu     sync.Mutex
	last   []byte // the last frame that was not blank (XWD)
	window bool   // some frame was not blank: the program drew something
}

// startDisplay starts Xvfb inside the network namespace ns.
func startDisplay(ns, fbdir string) (*display, error) {
	if _, err := exec.LookPath("Xvfb"); err != nil {
		return nil, fmt.Errorf("display: Xvfb is not installed (Debian: apt-get install xvfb): %w", err)
	}
	if err := os.MkdirAll(fbdir, 0o700); err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", displayGeometry, "-fbdir", fbdir,
		"-nolisten", "tcp", "-nolisten", "unix", "-ac", "-noreset", "-br")
	cmd.ExtraFiles = []*os.File{w}
	// What Xvfb says when it cannot start goes into the error (the last
	// 4 KiB); a running Xvfb's chatter is dropped.
	var stderr tailBuffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = nsdo.DoNamed(ns, cmd.Start)
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("display: start Xvfb: %w", err)
	}
	got := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		got <- strings.TrimSpace(s)
	}()
	var num int
	select {
	case s := <-got:
		num, err = strconv.Atoi(s)
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, fmt.Errorf("display: Xvfb named no display (%q): %s", s, stderr.last())
		}
	case <-time.After(displayStart):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("display: Xvfb named no display within %s", displayStart)
	}
	d := &display{cmd: cmd, num: num, fbdir: fbdir, stop: make(chan struct{}), done: make(chan struct{})}
	go d.watch()
	return d, nil
}

// Env is the program's DISPLAY.
func (d *display) Env() string { return fmt.Sprintf("DISPLAY=:%d", d.num) }

func (d *display) watch() {
	defer close(d.done)
	t := time.NewTicker(snapshotEvery)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.snapshot()
		}
	}
}

// snapshot reads the framebuffer and keeps it if something is drawn.
func (d *display) snapshot() {
	f, err := os.Open(filepath.Join(d.fbdir, "Xvfb_screen0"))
	if err != nil {
		return
	}
	var buf bytes.Buffer
	_, err = buf.ReadFrom(&limitedReader{f: f, n: maxFrame})
	f.Close()
	if err != nil {
		return
	}
	img, err := decodeXWD(buf.Bytes())
	if err != nil || blank(img) {
		return
	}
	d.mu.Lock()
	d.last, d.window = buf.Bytes(), true
	d.mu.Unlock()
}

type limitedReader struct {
	f *os.File
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("framebuffer too big")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}

// close takes a last snapshot, stops Xvfb and writes the screenshot to
// pngPath; it says whether the program drew anything.
func (d *display) close(pngPath string) (bool, error) {
	d.snapshot()
	close(d.stop)
	<-d.done
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGTERM)
	exited := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(2 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	defer os.RemoveAll(d.fbdir)
	d.mu.Lock()
	last, window := d.last, d.window
	d.mu.Unlock()
	if !window {
		return false, nil
	}
	img, err := decodeXWD(last)
	if err != nil {
		return true, err
	}
	f, err := os.Create(pngPath)
	if err != nil {
		return true, err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return true, err
	}
	return true, f.Close()
}

// decodeXWD decodes an X Window Dump in ZPixmap format with 24 or 32 bits
// per pixel, as Xvfb's -fbdir file is.
func decodeXWD(b []byte) (image.Image, error) {
	const headerWords = 25
	if len(b) < headerWords*4 {
		return nil, errors.New("xwd: short header")
	}
	h := make([]uint32, headerWords)
	for i := range h {
		h[i] = binary.BigEndian.Uint32(b[i*4:])
	}
	headerSize, format, width, height := h[0], h[2], int(h[4]), int(h[5])
	byteOrder, bpp, bpl := h[7], int(h[11]), int(h[12])
	rmask, gmask, bmask, ncolors := h[14], h[15], h[16], h[19]
	if format != 2 || (bpp != 32 && bpp != 24) || width <= 0 || height <= 0 || width > 8192 || height > 8192 {
		return nil, fmt.Errorf("xwd: unsupported format %d, %d bits per pixel, %dx%d", format, bpp, width, height)
	}
	off := int(headerSize) + int(ncolors)*12
	if off < 0 || bpl < width*bpp/8 || len(b) < off+bpl*height {
		return nil, errors.New("xwd: short pixel data")
	}
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	shift := func(m uint32) uint {
		var s uint
		for m != 0 && m&1 == 0 {
			m >>= 1
			s++
		}
		return s
	}
	rs, gs, bs := shift(rmask), shift(gmask), shift(bmask)
	for y := 0; y < height; y++ {
		row := b[off+y*bpl:]
		for x := 0; x < width; x++ {
			var px uint32
			p := row[x*bpp/8:]
			switch {
			case bpp == 32 && byteOrder == 0:
				px = binary.LittleEndian.Uint32(p)
			case bpp == 32:
				px = binary.BigEndian.Uint32(p)
			case byteOrder == 0:
				px = uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16
			default:
				px = uint32(p[0])<<16 | uint32(p[1])<<8 | uint32(p[2])
			}
			img.SetRGBA(x, y, color.RGBA{uint8((px & rmask) >> rs), uint8((px & gmask) >> gs), uint8((px & bmask) >> bs), 255})
		}
	}
	return img, nil
}

// blank says every pixel is the same: nothing but the (black) root
// window.
func blank(img image.Image) bool {
	m, ok := img.(*image.RGBA)
	if !ok || len(m.Pix) < 4 {
		return true
	}
	for i := 4; i+4 <= len(m.Pix); i += 4 {
		if m.Pix[i] != m.Pix[0] || m.Pix[i+1] != m.Pix[1] || m.Pix[i+2] != m.Pix[2] {
			return false
		}
	}
	return true
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

// last is its last non-empty line.
func (t *tailBuffer) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(t.b)), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return "it printed nothing"
}
