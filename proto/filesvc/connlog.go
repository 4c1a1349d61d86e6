package filesvc

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Record is one client connection as `status` reports it.
type Record struct {
	Name         string
	Remote       string
	Connected    time.Time
	Disconnected time.Time // zero while the client is active
}

// StatusLine formats r as one line of the `status` reply:
//
//	<name> <connected-at> <disconnected-at|active>
//
// with times in RFC 3339, UTC, whole seconds.
func (r Record) StatusLine() string {
	end := "active"
	if !r.Disconnected.IsZero() {
		end = r.Disconnected.UTC().Format(time.RFC3339)
	}
	return r.Name + " " + r.Connected.UTC().Format(time.RFC3339) + " " + end
}

// logEvent is one line of the persistent connection log (JSON lines).
type logEvent struct {
	Event  string    `json:"event"` // "connect" or "disconnect"
	Client string    `json:"client"`
	Time   time.Time `json:"time"`
	Remote string    `json:"remote,omitempty"`
	Reason string    `json:"reason,omitempty"`
}

// connLog keeps every connection ever seen, in memory and (when a path is
// given) in an append-only JSON-lines file that a restarted server reloads.
type connLog struct {
	mu    sync.Mutex
	f     *os.File // nil: memory only
	recs  []Record
	index map[string]int
	last  int // highest client number handed out or found in the file
	log   *slog.Logger
}

func clientName(n int) string { return fmt.Sprintf("Client%02d", n) }

func clientNumber(name string) (int, bool) {
	digits, ok := strings.CutPrefix(name, "Client")
	if !ok || digits == "" {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	return n, err == nil && n > 0
}

// openConnLog loads path (if it exists) and opens it for appending. Clients
// the file still shows as connected were cut off by a crash: they are closed
// at now with reason "server restart", since the true time is unknown.
func openConnLog(path string, now time.Time, logger *slog.Logger) (*connLog, error) {
	l := &connLog{index: map[string]int{}, log: logger}
	if path == "" {
		return l, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("connection log %q: %w", path, err)
	}
	if err := l.load(path); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("connection log %q: %w", path, err)
	}
	l.f = f
	for i := range l.recs {
		if l.recs[i].Disconnected.IsZero() {
			l.recs[i].Disconnected = now
			l.append(logEvent{Event: "disconnect", Client: l.recs[i].Name, Time: now, Reason: "server restart"})
		}
	}
	return l, nil
}

func (l *connLog) load(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("connection log %q: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		var ev logEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			// A crash can leave a torn last line; skip it, keep the rest.
			l.log.Warn("connection log: skipping bad line", "path", path, "line", lineNo, "err", err)
			continue
		}
		l.apply(ev)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("connection log %q: %w", path, err)
	}
	return nil
}

func (l *connLog) apply(ev logEvent) {
	if n, ok := clientNumber(ev.Client); ok && n > l.last {
		l.last = n
	}
	switch ev.Event {
	case "connect":
		l.index[ev.Client] = len(l.recs)
		l.recs = append(l.recs, Record{Name: ev.Client, Remote: ev.Remote, Connected: ev.Time})
	case "disconnect":
		if i, ok := l.index[ev.Client]; ok && l.recs[i].Disconnected.IsZero() {
			l.recs[i].Disconnected = ev.Time
		}
	}
}

// append writes one event; a failing log disk must not take the server down,
// so errors are logged and the in-memory record stays authoritative.
func (l *connLog) append(ev logEvent) {
	if l.f == nil {
		return
	}
	b, _ := json.Marshal(ev)
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		l.log.Warn("connection log: write failed", "err", err)
	}
}

// connect hands out the next name and records the connection.
func (l *connLog) connect(remote string, now time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last++
	name := clientName(l.last)
	ev := logEvent{Event: "connect", Client: name, Time: now, Remote: remote}
	l.apply(ev)
	l.append(ev)
	return name
}

// disconnect records the end of name's connection (once).
func (l *connLog) disconnect(name, reason string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := l.index[name]
	if !ok || !l.recs[i].Disconnected.IsZero() {
		return
	}
	ev := logEvent{Event: "disconnect", Client: name, Time: now, Reason: reason}
	l.apply(ev)
	l.append(ev)
}

func (l *connLog) snapshot() []Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Record(nil), l.recs...)
}

func (l *connLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
