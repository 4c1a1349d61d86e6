package web

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/netem"
	"github.com/labctl/labctl/nodes"
	"github.com/labctl/labctl/topo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// serve starts a server on addr ("127.0.0.1:0" or another) with an empty
// state root, and returns its base URL.
func serve(t *testing.T, addr string, opts Options) (*Server, string) {
	t.Helper()
	old := nodes.StateRoot
	nodes.StateRoot = t.TempDir()
	t.Cleanup(func() { nodes.StateRoot = old })
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	if opts.Spec == nil {
		opts.Spec = lossForm{}
	}
	s, err := New(ctx, ln.Addr().String(), opts)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, "http://" + ln.Addr().String()
}

func do(t *testing.T, method, u string, hdr map[string]string, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestLoopbackReadsWithoutTokenButChangesNeedIt(t *testing.T) {
	s, base := serve(t, "127.0.0.1:0", Options{})
	code, _ := do(t, "GET", base+"/api/labs", nil, "")
	assert.Equal(t, http.StatusOK, code)
	code, _ = do(t, "GET", base+"/", nil, "")
	assert.Equal(t, http.StatusOK, code)

	post := base + "/api/labs/lab1/links/h1-s1/netem"
	body := `{"fields":{"loss":"10%"}}`
	origin := base
	code, m := do(t, "POST", post, map[string]string{"Content-Type": "application/json", "Origin": origin}, body)
	assert.Equal(t, http.StatusUnauthorized, code, "no token")
	assert.Contains(t, m["error"], "token")
	code, _ = do(t, "POST", post, map[string]string{"Content-Type": "application/json", "Origin": origin, "X-Labctl-Token": "wrong"}, body)
	assert.Equal(t, http.StatusUnauthorized, code, "wrong token")

	tok := map[string]string{"Content-Type": "application/json", "X-Labctl-Token": s.Token()}
	code, m = do(t, "POST", post, tok, body)
	assert.Equal(t, http.StatusForbidden, code, "no Origin")
	assert.Contains(t, m["error"], "origin")
	tok["Origin"] = "http://evil.example"
	code, _ = do(t, "POST", post, tok, body)
	assert.Equal(t, http.StatusForbidden, code, "another Origin")
	tok["Origin"] = origin
	tok["Content-Type"] = "text/plain"
	code, _ = do(t, "POST", post, tok, body)
	assert.Equal(t, http.StatusUnsupportedMediaType, code, "a form post")
	tok["Content-Type"] = "application/json"
	// Everything right: the request reaches the handler (no such lab here).
	code, m = do(t, "POST", post, tok, body)
	assert.Equal(t, http.StatusNotFound, code, "%v", m)
	assert.Contains(t, m["error"], `lab "lab1"`)
	// A bad impairment gets the form's message, naming the field.
	code, m = do(t, "POST", post, tok, `{"fields":{"loss":"110%"}}`)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, `--loss: bad percentage "110%": outside 0-100%`, m["error"])
	assert.Equal(t, "loss", m["errors"].([]any)[0].(map[string]any)["field"])
}

func TestNoChangeThroughGET(t *testing.T) {
	s, base := serve(t, "127.0.0.1:0", Options{})
	hdr := map[string]string{"X-Labctl-Token": s.Token(), "Origin": base}
	for _, p := range []string{"/api/labs/l/links/x/netem", "/api/labs/l/links/x/down", "/api/labs/l/links/x/up", "/api/labs/l/programs/h/p/restart"} {
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			code, _ := do(t, m, base+p+"?fields=loss", hdr, "")
			assert.Equal(t, http.StatusMethodNotAllowed, code, "%s %s", m, p)
		}
	}
}

func TestDNSRebindingIsRefused(t *testing.T) {
	_, base := serve(t, "127.0.0.1:0", Options{})
	code, m := do(t, "GET", base+"/api/labs", map[string]string{"Host": "attacker.example:80"}, "")
	assert.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, m["error"], "attacker.example")
	u, _ := url.Parse(base)
	code, _ = do(t, "GET", base+"/api/labs", map[string]string{"Host": "localhost:" + u.Port()}, "")
	assert.Equal(t, http.StatusOK, code)
}

func TestOffLoopbackReadingNeedsTheToken(t *testing.T) {
	// A non-loopback address of this machine, if it has one.
	var addr string
	ifs, _ := net.InterfaceAddrs()
	for _, a := range ifs {
		if ip, ok := a.(*net.IPNet); ok && !ip.IP.IsLoopback() && ip.IP.To4() != nil {
			addr = ip.IP.String()
			break
		}
	}
	if addr == "" {
		t.Skip("no non-loopback IPv4 address here")
	}
	s, base := serve(t, addr+":0", Options{})
	code, _ := do(t, "GET", base+"/api/labs", nil, "")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, _ = do(t, "GET", base+"/", nil, "")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, _ = do(t, "GET", base+"/api/labs/x/events", nil, "")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, _ = do(t, "GET", base+"/?token=nope", nil, "")
	assert.Equal(t, http.StatusUnauthorized, code)

	// The printed URL logs in: a cookie, then reading works.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.Get(base + "/?token=" + s.Token())
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "/", resp.Request.URL.Path, "redirected away from the token URL")
	resp, err = c.Get(base + "/api/labs")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	code, _ = do(t, "GET", base+"/api/labs", map[string]string{"X-Labctl-Token": s.Token()}, "")
	assert.Equal(t, http.StatusOK, code)
}

func TestServesOnlyItsLab(t *testing.T) {
	s, base := serve(t, "127.0.0.1:0", Options{Lab: "mine"})
	assert.Contains(t, s.URL(), "#lab=mine")
	assert.Contains(t, s.URL(), "token="+s.Token())
	code, _ := do(t, "GET", base+"/api/labs/other/events", nil, "")
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = do(t, "GET", base+"/api/labs/other", nil, "")
	assert.Equal(t, http.StatusNotFound, code)
}

func TestEventsSnapshotThenResume(t *testing.T) {
	_, base := serve(t, "127.0.0.1:0", Options{})
	// A lab with a state file and nothing else: the stream gives a snapshot
	// (its topology), then, once the state goes, "down".
	st := &nodes.State{Lab: "l1", ID: "abc", Phase: nodes.PhaseUp, Backend: "none",
		Nodes: []nodes.NodeState{{Name: "h1", Kind: "host", NS: "lab-l1-h1"}}}
	b, err := json.Marshal(st)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(nodes.Dir("l1"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(nodes.Dir("l1"), "state.json"), b, 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/labs/l1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	rd := newSSEReader(resp)
	ev := rd.next(t)
	assert.Equal(t, "snapshot", ev.name)
	var snap snapshot
	require.NoError(t, json.Unmarshal([]byte(ev.data), &snap))
	var topo topoWire
	require.NoError(t, json.Unmarshal(snap.Topology, &topo))
	assert.Equal(t, "h1", topo.Nodes[0].Name)
	first := ev.id

	require.NoError(t, os.Remove(filepath.Join(nodes.Dir("l1"), "state.json")))
	var downID string
	for downID == "" {
		ev := rd.next(t)
		if ev.name == "down" {
			downID = ev.id
			assert.Contains(t, ev.data, "is down")
		}
	}
	resp.Body.Close()

	// Reconnecting with the first id replays what came after it, down included.
	req, _ = http.NewRequestWithContext(ctx, "GET", base+"/api/labs/l1/events", nil)
	req.Header.Set("Last-Event-ID", first)
	resp2, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp2.Body.Close()
	rd = newSSEReader(resp2)
	for {
		ev := rd.next(t)
		require.NotEqual(t, "snapshot", ev.name, "a known id resumes, with no snapshot")
		if ev.id == downID {
			break
		}
	}
}

type sseEvent struct{ id, name, data string }

type sseReader struct{ lines chan string }

func newSSEReader(resp *http.Response) *sseReader {
	r := &sseReader{lines: make(chan string, 64)}
	go func() {
		defer close(r.lines)
		buf := make([]byte, 0, 1<<16)
		tmp := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(tmp)
			buf = append(buf, tmp[:n]...)
			for {
				i := strings.IndexByte(string(buf), '\n')
				if i < 0 {
					break
				}
				r.lines <- string(buf[:i])
				buf = buf[i+1:]
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

func (r *sseReader) next(t *testing.T) sseEvent {
	t.Helper()
	var ev sseEvent
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-r.lines:
			require.True(t, ok, "stream ended")
			switch {
			case l == "" && ev.name != "":
				return ev
			case strings.HasPrefix(l, "id: "):
				ev.id = l[4:]
			case strings.HasPrefix(l, "event: "):
				ev.name = l[7:]
			case strings.HasPrefix(l, "data: "):
				ev.data = l[6:]
			}
		case <-timeout:
			t.Fatal("no event within 10s")
		}
	}
}

// lossForm is a one-field impairment form for the handler tests (labctl
// gives the server `netem set`'s own; cmd/labctl tests that one).
type lossForm struct{}

func (lossForm) Fields() []SpecField {
	return []SpecField{{Name: "loss", Type: "percent", Help: "random loss"}}
}

func (lossForm) Parse(fields map[string]string) (netem.Spec, []FieldError) {
	var s netem.Spec
	for k, v := range fields {
		if k != "loss" {
			return s, []FieldError{{Field: k, Error: "unknown flag: --" + k}}
		}
		p, err := topo.ParsePercent(v)
		if err != nil {
			return s, []FieldError{{Field: k, Error: "--loss: " + err.Error()}}
		}
		s.Loss = p
	}
	return s, nil
}

func (lossForm) Format(s netem.Spec) map[string]string {
	return map[string]string{"loss": s.Loss.String()}
}

func TestNoFormNoServer(t *testing.T) {
	_, err := New(context.Background(), "127.0.0.1:1", Options{})
	require.Error(t, err)
}

func TestRatesAndHistoryAreBounded(t *testing.T) {
	k := newRateKeeper()
	t0 := time.Now()
	for i := 0; i < 100; i++ {
		c := Counts{Packets: uint64(i * 10), Bytes: uint64(i * 1000)}
		w := k.sample(t0.Add(time.Duration(i)*time.Second), map[string][2]Counts{"l": {c, c}}, nil)
		if i > 0 {
			assert.InDelta(t, 10, w["l"].AtoB[12], 0.01, "pps")
			assert.InDelta(t, 8000, w["l"].AtoB[13], 0.01, "bps")
		}
	}
	assert.Len(t, k.historyCopy()["l"][0], historyLen)
	k.sample(t0.Add(200*time.Second), map[string][2]Counts{}, nil)
	assert.Empty(t, k.historyCopy(), "a link that went is forgotten")
}
