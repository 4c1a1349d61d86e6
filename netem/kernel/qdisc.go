package kernel

// The pure half of the kernel backend: a Spec becomes the TCA_OPTIONS of a
// netem qdisc (struct tc_netem_qopt followed by netem's attributes, as
// include/uapi/linux/pkt_sched.h lays them out) and back. No syscalls here,
// so it is unit-tested on any machine.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/topo"
)

// netem's attributes (enum TCA_NETEM_* in pkt_sched.h).
const (
	tcaNetemCorr      = 1
	tcaNetemDelayDist = 2
	tcaNetemReorder   = 3
	tcaNetemCorrupt   = 4
	tcaNetemLoss      = 5
	tcaNetemRate      = 6
	tcaNetemRate64    = 8
	tcaNetemLatency64 = 10
	tcaNetemJitter64  = 11

	netemLossGE = 2 // NETEM_LOSS_GE, nested in TCA_NETEM_LOSS

	sizeofQopt = 24 // struct tc_netem_qopt: six u32

	// distScale is NETEM_DIST_SCALE: table entries are multiples of
	// sigma/distScale.
	distScale = 8192
	// distMax is NETEM_DIST_MAX, the longest table the kernel takes.
	distMax = 16384
)

// QueueLimit is netem's limit for one direction: the rule both backends
// share (netem.QueueLimit), as the u32 the qdisc takes.
func QueueLimit(s netem.Spec) uint32 { return uint32(netem.QueueLimit(s)) }

// probU32 is a percentage as netem's u32 probability (0 = never, ~0 = always).
func probU32(p topo.Percent) uint32 {
	return uint32(math.Round(p.Fraction() * math.MaxUint32))
}

// probPercent reads a u32 probability back, rounded to 1e-6 % so that what
// was written reads back the same.
func probPercent(u uint32) topo.Percent {
	return topo.Percent(math.Round(float64(u)/math.MaxUint32*100*1e6) / 1e6)
}

// kernelCheck refuses what the kernel path cannot do, so that nothing is
// ever silently ignored.
func kernelCheck(s netem.Spec) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if s.CorruptFixChecksum {
		return fmt.Errorf("corrupt_fix_checksum: the kernel's netem corrupts after the checksum is computed and cannot fix it (use the userspace backend): %w", netem.ErrUnsupported)
	}
	if s.Jitter.D() > math.MaxInt32*time.Nanosecond { // netem draws jitter as an s32 of ns
		return fmt.Errorf("jitter %s: netem takes at most %s: %w", s.Jitter, time.Duration(math.MaxInt32), netem.ErrUnsupported)
	}
	return nil
}

// attr is one netlink attribute; nested ones carry children.
type attr struct {
	typ      uint16
	data     []byte
	children []attr
}

func (a attr) encode() []byte {
	body := append([]byte(nil), a.data...)
	for _, c := range a.children {
		body = append(body, c.encode()...)
	}
	b := make([]byte, 4, 4+len(body)+3)
	binary.NativeEndian.PutUint16(b[0:], uint16(4+len(body)))
	binary.NativeEndian.PutUint16(b[2:], a.typ)
	b = append(b, body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func u32s(v ...uint32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.NativeEndian.PutUint32(b[4*i:], x)
	}
	return b
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.NativeEndian.PutUint64(b, v)
	return b
}

// netemOptions encodes a Spec as the payload of TCA_OPTIONS. table is the
// jitter distribution (nil when there is no jitter). Every optional block
// (correlations, reorder, corrupt, rate) is always sent, zero or not,
// because netem's change keeps the old value of an attribute it is not
// given: that would leave a stale correlation behind on a live Set.
func netemOptions(s netem.Spec, table []int16) []byte {
	ticks := func(d topo.Duration) uint32 { // PSCHED ticks are 64 ns
		t := d.D().Nanoseconds() / 64
		if t > math.MaxUint32 {
			return math.MaxUint32
		}
		return uint32(t)
	}
	gap := s.Gap
	if s.Reorder > 0 && gap == 0 {
		gap = 1 // netem only reorders with a gap; tc sets 1 as well
	}
	b := u32s(ticks(s.Delay), QueueLimit(s), probU32(s.Loss), gap, probU32(s.Duplicate), ticks(s.Jitter))

	var delayCorr uint32
	if s.Jitter > 0 {
		delayCorr = probU32(s.DelayCorrelation)
	}
	attrs := []attr{
		{typ: tcaNetemCorr, data: u32s(delayCorr, probU32(s.LossCorrelation), probU32(s.DuplicateCorrelation))},
		{typ: tcaNetemReorder, data: u32s(probU32(s.Reorder), probU32(s.ReorderCorrelation))},
		{typ: tcaNetemCorrupt, data: u32s(probU32(s.Corrupt), probU32(s.CorruptCorrelation))},
		{typ: tcaNetemLatency64, data: u64(uint64(s.Delay.D().Nanoseconds()))},
		{typ: tcaNetemJitter64, data: u64(uint64(s.Jitter.D().Nanoseconds()))},
	}
	// netem's rate is in bytes per second; RATE64 carries what does not
	// fit in 32 bits.
	bytesPerSec := uint64(s.Rate) / 8
	if bytesPerSec >= math.MaxUint32 {
		attrs = append(attrs, attr{typ: tcaNetemRate, data: u32s(math.MaxUint32, 0, 0, 0)},
			attr{typ: tcaNetemRate64, data: u64(bytesPerSec)})
	} else {
		attrs = append(attrs, attr{typ: tcaNetemRate, data: u32s(uint32(bytesPerSec), 0, 0, 0)})
	}
	if g := s.LossGE; g != nil {
		// The kernel's Gilbert–Elliott: in the bad state a packet passes
		// when rand <= h, so h = 1 - loss_bad; in the good state it is lost
		// when rand < k1, so k1 = loss_good.
		lossBad := g.LossBad
		if lossBad == 0 {
			lossBad = 100
		}
		attrs = append(attrs, attr{typ: tcaNetemLoss, children: []attr{
			{typ: netemLossGE, data: u32s(probU32(g.P), probU32(g.R), probU32(100-lossBad), probU32(g.LossGood))},
		}})
	}
	if len(table) > 0 {
		d := make([]byte, 2*len(table))
		for i, v := range table {
			binary.NativeEndian.PutUint16(d[2*i:], uint16(v))
		}
		attrs = append(attrs, attr{typ: tcaNetemDelayDist, data: d})
	}
	for _, a := range attrs {
		b = append(b, a.encode()...)
	}
	return b
}

// parseAttrs splits a run of netlink attributes.
func parseAttrs(b []byte) (map[uint16][]byte, error) {
	m := map[uint16][]byte{}
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		t := binary.NativeEndian.Uint16(b[2:]) & 0x3fff // drop NLA_F_NESTED / NET_BYTEORDER
		if l < 4 || l > len(b) {
			return nil, fmt.Errorf("netlink attribute %d: bad length %d", t, l)
		}
		m[t] = b[4:l]
		al := (l + 3) &^ 3
		if al > len(b) {
			break
		}
		b = b[al:]
	}
	return m, nil
}

// specFromOptions reads a netem qdisc's TCA_OPTIONS back into a Spec. The
// kernel does not dump the jitter distribution table, so Distribution stays
// empty; Limit is the limit in force (computed or explicit).
func specFromOptions(b []byte) (netem.Spec, error) {
	var s netem.Spec
	if len(b) < sizeofQopt {
		return s, fmt.Errorf("netem options: %d bytes, want at least %d", len(b), sizeofQopt)
	}
	u := func(i int) uint32 { return binary.NativeEndian.Uint32(b[4*i:]) }
	s.Delay = topo.Duration(time.Duration(u(0)) * 64)
	s.Limit = u(1)
	s.Loss = probPercent(u(2))
	s.Gap = u(3)
	s.Duplicate = probPercent(u(4))
	s.Jitter = topo.Duration(time.Duration(u(5)) * 64)
	attrs, err := parseAttrs(b[sizeofQopt:])
	if err != nil {
		return s, fmt.Errorf("netem options: %w", err)
	}
	get := func(t uint16, i int) uint32 {
		v := attrs[t]
		if len(v) < 4*(i+1) {
			return 0
		}
		return binary.NativeEndian.Uint32(v[4*i:])
	}
	if v := attrs[tcaNetemLatency64]; len(v) == 8 {
		s.Delay = topo.Duration(int64(binary.NativeEndian.Uint64(v)))
	}
	if v := attrs[tcaNetemJitter64]; len(v) == 8 {
		s.Jitter = topo.Duration(int64(binary.NativeEndian.Uint64(v)))
	}
	s.DelayCorrelation = probPercent(get(tcaNetemCorr, 0))
	s.LossCorrelation = probPercent(get(tcaNetemCorr, 1))
	s.DuplicateCorrelation = probPercent(get(tcaNetemCorr, 2))
	s.Reorder = probPercent(get(tcaNetemReorder, 0))
	s.ReorderCorrelation = probPercent(get(tcaNetemReorder, 1))
	s.Corrupt = probPercent(get(tcaNetemCorrupt, 0))
	s.CorruptCorrelation = probPercent(get(tcaNetemCorrupt, 1))
	rate := uint64(get(tcaNetemRate, 0))
	if v := attrs[tcaNetemRate64]; len(v) == 8 {
		rate = max(rate, binary.NativeEndian.Uint64(v))
	}
	s.Rate = topo.Rate(rate * 8)
	if loss, ok := attrs[tcaNetemLoss]; ok {
		nested, err := parseAttrs(loss)
		if err != nil {
			return s, fmt.Errorf("netem loss model: %w", err)
		}
		if ge := nested[netemLossGE]; len(ge) >= 16 {
			g := func(i int) uint32 { return binary.NativeEndian.Uint32(ge[4*i:]) }
			m := &topo.GilbertElliott{P: probPercent(g(0)), R: probPercent(g(1)), LossGood: probPercent(g(3))}
			if lb := 100 - probPercent(g(2)); lb != 100 {
				m.LossBad = lb
			}
			s.LossGE, s.Loss = m, 0
		}
	}
	// Normalise to how a Spec says it: gap 1 is what a plain reorder
	// means, and correlations of absent features are noise.
	if s.Reorder > 0 && s.Gap == 1 {
		s.Gap = 0
	}
	if s.Reorder == 0 && s.Gap > 0 && attrs[tcaNetemReorder] == nil {
		s.Reorder = 100 // old-style gap without a reorder block means "always"
	}
	if s.Jitter == 0 {
		s.DelayCorrelation = 0
	}
	if s.Loss == 0 {
		s.LossCorrelation = 0
	}
	if s.Duplicate == 0 {
		s.DuplicateCorrelation = 0
	}
	return s, nil
}

// distDirs are where iproute2 installs netem's distribution tables
// (TC_LIB_DIR first, as tc does).
func distDirs() []string {
	dirs := []string{}
	if d := os.Getenv("TC_LIB_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	return append(dirs, "/usr/lib/x86_64-linux-gnu/tc", "/usr/lib/aarch64-linux-gnu/tc", "/usr/lib64/tc", "/usr/lib/tc", "/lib/tc")
}

// errNoTable is wrapped when a distribution table is not installed.
var errNoTable = errors.New("distribution table not found")

// distTable returns the jitter table for a distribution: a generated one
// for uniform (see uniformTable), iproute2's NAME.dist otherwise.
func distTable(name string) ([]int16, error) {
	if name == "" || name == "uniform" {
		return uniformTable(), nil
	}
	for _, d := range distDirs() {
		p := filepath.Join(d, name+".dist")
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("distribution %q: %w", name, err)
		}
		defer f.Close()
		t, err := parseDist(f)
		if err != nil {
			return nil, fmt.Errorf("distribution %q: %s: %w", name, p, err)
		}
		return t, nil
	}
	return nil, fmt.Errorf("distribution %q: %w in %s (install iproute2, or use uniform jitter): %w",
		name, errNoTable, strings.Join(distDirs(), ", "), netem.ErrUnsupported)
}

// parseDist reads iproute2's table format: whitespace-separated integers,
// '#' comments.
func parseDist(r io.Reader) ([]int16, error) {
	var t []int16
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		for _, f := range strings.Fields(line) {
			v, err := strconv.ParseInt(f, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("bad entry %q: %w", f, err)
			}
			if len(t) == distMax {
				return nil, fmt.Errorf("more than %d entries", distMax)
			}
			t = append(t, int16(v))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(t) == 0 {
		return nil, errors.New("empty table")
	}
	return t, nil
}

// uniformTable is a 4096-entry table whose entries step evenly through
// [-sigma, +sigma): with it netem draws the same uniform jitter as with no
// table (to 1/4096 of 2×jitter). It is always sent for uniform jitter
// because netem's change keeps an old table when given none, so a live
// change from "normal" back to "uniform" would silently stay normal.
func uniformTable() []int16 {
	const n = 4096
	t := make([]int16, n)
	for i := range t {
		t[i] = int16(-distScale + (2*distScale*i+distScale)/n)
	}
	return t
}

// Statistics attributes of a qdisc dump (TCA_STATS2 and its nested
// TCA_STATS_*, include/uapi/linux/gen_stats.h; TCA_STATS is the older
// struct tc_stats, sent as well).
const (
	tcaStats       = 3
	tcaStats2      = 7
	tcaStatsBasic  = 1 // struct gnet_stats_basic: u64 bytes, u32 packets
	tcaStatsQueue  = 3 // struct gnet_stats_queue: u32 qlen, backlog, drops, requeues, overlimits
	tcaStatsPkt64  = 8 // u64 packets, when they do not fit in 32 bits
	sizeofTcStats  = 36
	sizeofGnetQ    = 20
	sizeofGnetBase = 12
)

// qdiscStats are a qdisc's counters.
type qdiscStats struct {
	bytes, packets       uint64
	qlen, backlog, drops uint32
}

// parseQdiscStats reads the counters from a qdisc's attributes: TCA_STATS2
// where the kernel sends it, else the older TCA_STATS.
func parseQdiscStats(attrs map[uint16][]byte) (qdiscStats, error) {
	var s qdiscStats
	u32 := func(b []byte, i int) uint32 { return binary.NativeEndian.Uint32(b[4*i:]) }
	if b, ok := attrs[tcaStats2]; ok {
		nested, err := parseAttrs(b)
		if err != nil {
			return s, fmt.Errorf("qdisc stats: %w", err)
		}
		if v := nested[tcaStatsBasic]; len(v) >= sizeofGnetBase {
			s.bytes = binary.NativeEndian.Uint64(v)
			s.packets = uint64(binary.NativeEndian.Uint32(v[8:]))
		}
		if v := nested[tcaStatsPkt64]; len(v) >= 8 {
			s.packets = binary.NativeEndian.Uint64(v)
		}
		if v := nested[tcaStatsQueue]; len(v) >= sizeofGnetQ {
			s.qlen, s.backlog, s.drops = u32(v, 0), u32(v, 1), u32(v, 2)
		}
		return s, nil
	}
	if v := attrs[tcaStats]; len(v) >= sizeofTcStats {
		// struct tc_stats: u64 bytes, u32 packets, drops, overlimits, bps, pps, qlen, backlog
		s.bytes = binary.NativeEndian.Uint64(v)
		s.packets = uint64(u32(v[8:], 0))
		s.drops = u32(v[8:], 1)
		s.qlen, s.backlog = u32(v[8:], 5), u32(v[8:], 6)
	}
	return s, nil
}

// QdiscLimit is the limit Create and Set write into the qdisc for s, read
// back from the options they send (for tests that compare the backends).
func QdiscLimit(s netem.Spec) (int, error) {
	got, err := specFromOptions(netemOptions(s, nil))
	return int(got.Limit), err
}
