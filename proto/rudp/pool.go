package rudp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Default port pool (the seed's 55000-55015, 55000 left for its chat).
const (
	DefaultPortMin = 55001
	DefaultPortMax = 55015
)

// ErrPoolFull is returned when every port of the pool is in use.
var ErrPoolFull = errors.New("no free UDP port")

// Pool hands out UDP ports from a range, one transfer per port. At most
// max-min+1 transfers run at once; that is the bound on concurrent transfers.
type Pool struct {
	host     string
	min, max int
	listen   func(ctx context.Context, addr string) (net.PacketConn, error)

	mu       sync.Mutex
	used     map[int]bool
	released map[int]time.Time // when each port was last given back
}

// NewPool serves ports min..max on host ("" = every address).
func NewPool(host string, min, max int) (*Pool, error) {
	if min < 1 || max > 65535 || min > max {
		return nil, fmt.Errorf("bad port range %d-%d", min, max)
	}
	var lc net.ListenConfig
	return &Pool{host: host, min: min, max: max, used: map[int]bool{}, released: map[int]time.Time{},
		listen: func(ctx context.Context, addr string) (net.PacketConn, error) {
			return lc.ListenPacket(ctx, "udp4", addr)
		}}, nil
}

// ParsePortRange reads "55001-55015" (or one port).
func ParsePortRange(s string) (int, int, error) {
	a, b, found := strings.Cut(s, "-")
	lo, err := strconv.Atoi(strings.TrimSpace(a))
	if err != nil {
		return 0, 0, fmt.Errorf("port range %q: %w", s, err)
	}
	hi := lo
	if found {
		if hi, err = strconv.Atoi(strings.TrimSpace(b)); err != nil {
			return 0, 0, fmt.Errorf("port range %q: %w", s, err)
		}
	}
	if lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("port range %q: want LOW-HIGH within 1-65535", s)
	}
	return lo, hi, nil
}

func (p *Pool) String() string { return fmt.Sprintf("%d-%d", p.min, p.max) }

// Acquire binds a free port of the pool; release frees it (and closes the
// socket). A port taken by another program is skipped. Of the free ports
// it takes the one given back longest ago (never used first): the lossy,
// duplicating, reordering links labs make can deliver a finished
// transfer's SYN late, and a port handed out again at once would take
// that stale SYN for its new client's.
func (p *Pool) Acquire(ctx context.Context) (net.PacketConn, func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var free []int
	for port := p.min; port <= p.max; port++ {
		if !p.used[port] {
			free = append(free, port)
		}
	}
	sort.SliceStable(free, func(i, j int) bool { return p.released[free[i]].Before(p.released[free[j]]) })
	for _, port := range free {
		pc, err := p.listen(ctx, net.JoinHostPort(p.host, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		p.used[port] = true
		var once sync.Once
		return pc, func() {
			once.Do(func() {
				pc.Close()
				p.mu.Lock()
				delete(p.used, port)
				p.released[port] = time.Now()
				p.mu.Unlock()
			})
		}, nil
	}
	return nil, nil, fmt.Errorf("%w in %s (%d transfers at once)", ErrPoolFull, p, p.max-p.min+1)
}

// InUse is how many ports are taken.
func (p *Pool) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.used)
}
