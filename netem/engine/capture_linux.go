package engine

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/labctl/labctl/netem"
)

// Capture points: "sent" is every frame as the sending end put it on the
// link (before any impairment: dropped packets are in it); "delivered" is
// every frame as the engine hands it to the receiving end (after loss,
// duplication, corruption, delay). TCP super-frames appear as the kernel
// handed them over (up to 64 KB), as tcpdump shows them on a TSO interface;
// their TCP checksums may be partial, so leave tshark's checksum
// validation off (its default).
const (
	pointSent      = "sent"
	pointDelivered = "delivered"
)

// CaptureStats says how a capture went.
type CaptureStats struct {
	Packets uint64 `json:"packets"`
	Dropped uint64 `json:"dropped"` // frames the capture could not keep up with
}

type capSink struct {
	point   string
	ch      chan capPkt
	dropped atomic.Uint64
}

type capPkt struct {
	ts   time.Time
	dir  netem.Dir
	data []byte
}

// capture copies a frame to the link's sinks at that point. It never
// blocks the link: a full sink drops (and counts) the frame.
func (el *engLink) capture(point string, d netem.Dir, p []byte) {
	cs := el.caps.Load()
	if cs == nil {
		return
	}
	for _, s := range *cs {
		if s.point != point {
			continue
		}
		select {
		case s.ch <- capPkt{ts: time.Now(), dir: d, data: append([]byte(nil), p...)}:
		default:
			s.dropped.Add(1)
		}
	}
}

func (el *engLink) addSink(s *capSink) {
	el.mu.Lock()
	defer el.mu.Unlock()
	var next []*capSink
	if cs := el.caps.Load(); cs != nil {
		next = append(next, *cs...)
	}
	next = append(next, s)
	el.caps.Store(&next)
	el.busy.Add(1)
}

func (el *engLink) removeSink(s *capSink) {
	el.mu.Lock()
	defer el.mu.Unlock()
	var next []*capSink
	for _, c := range *el.caps.Load() {
		if c != s {
			next = append(next, c)
		}
	}
	if len(next) == 0 {
		el.caps.Store(nil)
	} else {
		el.caps.Store(&next)
	}
	el.busy.Add(-1)
}

// Capture writes a pcapng stream of a link to w until ctx is done or the
// engine stops: interface 0 is the A->B direction, interface 1 B->A.
func (e *Engine) Capture(ctx context.Context, link, point string, w io.Writer) (CaptureStats, error) {
	var st CaptureStats
	el, err := e.link(link)
	if err != nil {
		return st, err
	}
	switch point {
	case "":
		point = pointDelivered
	case pointSent, pointDelivered:
	default:
		return st, fmt.Errorf("capture point %q: want sent or delivered", point)
	}
	l := el.l
	intf := func(d netem.Dir, from, to netem.End) pcapgo.NgInterface {
		return pcapgo.NgInterface{
			Name:                fmt.Sprintf("%s %s", l.ID, d),
			Description:         fmt.Sprintf("link %s, %s:%s to %s:%s, %s", l.ID, from.Node, from.Iface, to.Node, to.Iface, point),
			OS:                  "linux",
			LinkType:            layers.LinkTypeEthernet,
			TimestampResolution: 9,
		}
	}
	// The sink is in place before the header goes out, so a client that
	// has read the header knows that every later frame is captured.
	s := &capSink{point: point, ch: make(chan capPkt, 8192)}
	el.addSink(s)
	defer el.removeSink(s)
	ngw, err := pcapgo.NewNgWriterInterface(w, intf(netem.AtoB, l.A, l.B), pcapgo.NgWriterOptions{
		SectionInfo: pcapgo.NgSectionInfo{Application: "labctl", Comment: fmt.Sprintf("lab %s, link %s, %s frames", e.cfg.Lab, l.ID, point)},
	})
	if err != nil {
		return st, fmt.Errorf("link %q: capture: %w", link, err)
	}
	if _, err := ngw.AddInterface(intf(netem.BtoA, l.B, l.A)); err != nil {
		return st, fmt.Errorf("link %q: capture: %w", link, err)
	}
	if err := ngw.Flush(); err != nil {
		return st, fmt.Errorf("link %q: capture: %w", link, err)
	}
	e.log.Info("capture started", "link", link, "point", point)
	write := func(p capPkt) error {
		ci := gopacket.CaptureInfo{Timestamp: p.ts, CaptureLength: len(p.data), Length: len(p.data), InterfaceIndex: int(p.dir)}
		st.Packets++
		return ngw.WritePacket(ci, p.data)
	}
	for {
		select {
		case p := <-s.ch:
			if err := write(p); err != nil {
				return st, fmt.Errorf("link %q: capture: %w", link, err)
			}
			if len(s.ch) == 0 {
				if err := ngw.Flush(); err != nil {
					return st, fmt.Errorf("link %q: capture: %w", link, err)
				}
			}
		case <-ctx.Done():
		case <-e.stopped:
		}
		if ctx.Err() == nil && !e.isStopped() {
			continue
		}
		for len(s.ch) > 0 {
			if err := write(<-s.ch); err != nil {
				break
			}
		}
		st.Dropped = s.dropped.Load()
		e.log.Info("capture stopped", "link", link, "packets", st.Packets, "dropped", st.Dropped)
		return st, ngw.Flush()
	}
}

func (e *Engine) isStopped() bool {
	select {
	case <-e.stopped:
		return true
	default:
		return false
	}
}
