package xy

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestXFirst(t *testing.T) {
	srv := start(t, &Server{})
	x, y := pair(t, srv.addr)
	x.send("Client X: Alice\n")
	srv.out.expect(t, "Client X: Alice")
	y.send("Client Y: Bob\n")
	x.expect("X: Alice received before Y: Bob")
	y.expect("X: Alice received before Y: Bob")
	srv.out.expect(t, "Sent acknowledgment to both X and Y")
	srv.waitExit(t)
	assert.Equal(t, []string{"Server is started", "Client X: Alice", "Client Y: Bob",
		"Sent acknowledgment to both X and Y"}, srv.out.lines())
	x.expectClosed()
	_, err := net.DialTimeout("tcp", srv.addr, time.Second)
	assert.Error(t, err, "listener closed after one pair")
}

// The answer follows the order of the messages, not of the connections.
func TestYFirst(t *testing.T) {
	srv := start(t, &Server{})
	x, y := pair(t, srv.addr)
	y.send("Client Y: Bob\r\n")
	srv.out.expect(t, "Client Y: Bob")
	x.send("Client X:   Alice  \r\n")
	x.expect("Y: Bob received before X: Alice")
	y.expect("Y: Bob received before X: Alice")
	srv.out.expect(t, "Sent acknowledgment to both X and Y")
	srv.waitExit(t)
	assert.Equal(t, []string{"Server is started", "Client Y: Bob", "Client X: Alice",
		"Sent acknowledgment to both X and Y"}, srv.out.lines())
}

func TestClientsBothOrders(t *testing.T) {
	for _, first := range []byte{'X', 'Y'} {
		t.Run(string(first), func(t *testing.T) {
			srv := start(t, &Server{})
			x := dial(t, srv.addr)
			y := dial(t, srv.addr)
			names := map[byte]string{'X': "Alice", 'Y': "Bob"}
			outs := map[byte]*bytes.Buffer{'X': {}, 'Y': {}}
			conns := map[byte]net.Conn{'X': x.conn, 'Y': y.conn}
			second := byte('X' + 'Y' - first)
			errs := make(chan error, 2)
			go func() {
				c := &Client{Name: names[first], Out: outs[first]}
				errs <- c.Run(context.Background(), conns[first])
			}()
			srv.out.expect(t, "Client "+string(first)+": "+names[first])
			// The second one types its name on stdin.
			go func() {
				c := &Client{In: strings.NewReader(names[second] + "\r\n"), Out: outs[second]}
				errs <- c.Run(context.Background(), conns[second])
			}()
			require.NoError(t, <-errs)
			require.NoError(t, <-errs)
			ack := AckLine(first, names[first], second, names[second])
			for _, l := range []byte{'X', 'Y'} {
				assert.Equal(t, "Client "+string(l)+" connected\nClient "+string(l)+": "+names[l]+"\n"+ack+"\n",
					outs[l].String())
			}
			srv.waitExit(t)
		})
	}
}

func TestServeForever(t *testing.T) {
	srv := start(t, &Server{ServeForever: true})
	for i := range 3 {
		x, y := pair(t, srv.addr)
		x.send("Client X: A\n")
		srv.out.expect(t, "Client X: A")
		y.send("Client Y: B\n")
		x.expect("X: A received before Y: B")
		y.expect("X: A received before Y: B")
		srv.out.expect(t, "Sent acknowledgment")
		_ = i
	}
}

func TestBadMessages(t *testing.T) {
	for _, tc := range []struct{ name, line, want string }{
		{"wrong letter", "Client Y: Bob\n", "ERROR bad message: you are client X, not Y"},
		{"too long", strings.Repeat("n", 4086) + "\n", "ERROR bad message: name too long (max 500 bytes)"},
		{"empty name", "Client X:   \n", "ERROR bad message: empty name"},
		{"control", "Client X: a\x00b\n", "ERROR bad message: name holds a control character"},
		{"binary", "\xff\xfe\n", "ERROR bad message: name is not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := start(t, &Server{})
			x, y := pair(t, srv.addr)
			x.send(tc.line)
			x.expect(tc.want)
			y.expect("ERROR client X sent a bad message; pair not acknowledged")
			x.expectClosed()
			y.expectClosed()
			// The server is still there and serves the next pair.
			x, y = pair(t, srv.addr)
			x.send("Client X: A\n")
			srv.out.expect(t, "Client X: A")
			y.send("Client Y: B\n")
			x.expect("X: A received before Y: B")
			srv.waitExit(t)
		})
	}
}

func TestSilentClient(t *testing.T) {
	srv := start(t, &Server{IdleTimeout: 200 * time.Millisecond})
	x, y := pair(t, srv.addr)
	x.send("Client X: Alice\n")
	y.expect("ERROR no message within 200ms")
	x.expect("ERROR client Y sent nothing within 200ms; pair not acknowledged")
}

func TestPartnerLeaves(t *testing.T) {
	srv := start(t, &Server{})
	x, y := pair(t, srv.addr)
	y.conn.Close()
	x.expect("ERROR client Y left; pair not acknowledged")
	x.expectClosed()
	// One that leaves after sending its message does not spoil its
	// partner's acknowledgment.
	x, y = pair(t, srv.addr)
	x.send("Client X: Alice\n")
	srv.out.expect(t, "Client X: Alice")
	x.conn.Close()
	y.send("Client Y: Bob\n")
	y.expect("X: Alice received before Y: Bob")
}

func TestLoneClientLeaves(t *testing.T) {
	srv := start(t, &Server{})
	first := dial(t, srv.addr)
	srv.logs.expect(t, "client connected")
	first.conn.Close()
	srv.logs.expect(t, "lone client left")
	x, y := pair(t, srv.addr) // the next client is X again
	x.send("Client X: A\n")
	srv.out.expect(t, "Client X: A")
	y.send("Client Y: B\n")
	y.expect("X: A received before Y: B")
}

func TestLoneClientWaitsTooLong(t *testing.T) {
	srv := start(t, &Server{WaitTimeout: 200 * time.Millisecond})
	x := dial(t, srv.addr)
	x.expect("ERROR no partner connected within 200ms")
	x.expectClosed()
}

func TestEarlyMessage(t *testing.T) {
	srv := start(t, &Server{})
	x := dial(t, srv.addr)
	x.send("Client X: Alice\n") // before being told its letter
	srv.logs.expect(t, "client connected")
	y := dial(t, srv.addr)
	x.expect("Client X connected")
	y.expect("Client Y connected")
	srv.out.expect(t, "Client X: Alice")
	y.send("Client Y: Bob\n")
	y.expect("X: Alice received before Y: Bob")
}

func TestHugeLine(t *testing.T) {
	srv := start(t, &Server{})
	x, y := pair(t, srv.addr)
	go func() { // the server stops reading long before the end
		_, _ = x.conn.Write(append(bytes.Repeat([]byte("a"), 1<<20), '\n'))
	}()
	x.expect("ERROR line too long (max 4096 bytes)")
	y.expect("ERROR client X sent a line too long; pair not acknowledged")
}

func TestShutdown(t *testing.T) {
	srv := start(t, &Server{})
	x := dial(t, srv.addr)
	srv.logs.expect(t, "client connected")
	srv.stop()
	x.expect("ERROR server shutting down")
	srv.waitExit(t)
}

func TestShutdownMidPair(t *testing.T) {
	srv := start(t, &Server{})
	x, y := pair(t, srv.addr)
	srv.stop()
	x.expect("ERROR server shutting down")
	y.expect("ERROR server shutting down")
	srv.waitExit(t)
}

// 500 silent connections at once do not stop a good pair from being served,
// and the server still serves after they all go away.
func TestManySilentConnections(t *testing.T) {
	const n = 500
	srv := start(t, &Server{ServeForever: true, MaxClients: 1024})
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var dialErrs []error
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", srv.addr, waitLimit)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				dialErrs = append(dialErrs, err)
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	require.Empty(t, dialErrs)
	for range n / 2 {
		srv.logs.expect(t, "pair formed")
	}

	good := func() {
		x, y := pair(t, srv.addr)
		y.send("Client Y: Bob\n")
		srv.out.expect(t, "Client Y: Bob")
		x.send("Client X: Alice\n")
		x.expect("Y: Bob received before X: Alice")
		y.expect("Y: Bob received before X: Alice")
	}
	good()
	for _, c := range conns {
		c.Close()
	}
	good()
}

// The seed's figures: bare names, no newline, as send(name.encode()) does;
// the reply is the text's form and one segment a recv(1024) reads whole.
func TestBareMessagesWithoutNewline(t *testing.T) {
	srv := start(t, &Server{Pause: 50 * time.Millisecond})
	x, y := pair(t, srv.addr)
	y.send("Bob")
	srv.out.expect(t, "Client Y: Bob")
	x.send("Client X: Alice") // the text's form, also without newline
	want := "Y: Bob received before X: Alice\n"
	assert.Equal(t, want, x.Segment())
	assert.Equal(t, want, y.Segment())
	srv.out.expect(t, "Sent acknowledgment to both X and Y")
}

// The longest name the server accepts gives an acknowledgment that both
// clients accept (issue 13.6), in one recv(1024).
func TestLongestNames(t *testing.T) {
	srv := start(t, &Server{})
	a, b := strings.Repeat("a", MaxName), strings.Repeat("b", MaxName)
	x, y := dial(t, srv.addr), dial(t, srv.addr)
	errs := make(chan error, 2)
	outs := []*bytes.Buffer{{}, {}}
	go func() { errs <- (&Client{Name: a, Out: outs[0]}).Run(context.Background(), x.conn) }()
	srv.out.expect(t, "Client X: "+a)
	go func() { errs <- (&Client{Name: b, Out: outs[1], Bare: true}).Run(context.Background(), y.conn) }()
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
	ack := AckLine('X', a, 'Y', b)
	assert.LessOrEqual(t, len(ack)+1, 1024)
	assert.Contains(t, outs[0].String(), ack)
	assert.Contains(t, outs[1].String(), b+"\n"+ack+"\n", "the bare client prints what it sent")
	srv.out.expect(t, "Sent acknowledgment to both X and Y")
}

// A lone client that sends its message and leaves is forgotten at once and
// never paired (issue 17.1); the next two clients are a correct pair.
func TestLoneClientSendsAndLeaves(t *testing.T) {
	for _, form := range []string{"Client X: Ghost\n", "Ghost"} {
		srv := start(t, &Server{Pause: 50 * time.Millisecond})
		ghost := dial(t, srv.addr)
		srv.logs.expect(t, "client connected")
		ghost.send(form)
		ghost.conn.Close()
		srv.out.expect(t, LeftLine)
		x, y := pair(t, srv.addr)
		x.send("Alice\n")
		srv.out.expect(t, "Client X: Alice")
		y.send("Bob\n")
		x.expect("X: Alice received before Y: Bob")
		y.expect("X: Alice received before Y: Bob")
		srv.waitExit(t)
		assert.NotContains(t, strings.Join(srv.out.lines(), "\n"), "Ghost")
	}
}

// A flood past the discard limit still gets its ERROR line before the close.
func TestFloodGetsError(t *testing.T) {
	srv := start(t, &Server{})
	x, y := pair(t, srv.addr)
	go func() {
		chunk := bytes.Repeat([]byte("a"), 1<<20)
		for range 80 {
			if _, err := x.conn.Write(chunk); err != nil {
				return
			}
		}
	}()
	x.expect("ERROR line too long (max 4096 bytes)")
	y.expect("ERROR client X sent a line too long; pair not acknowledged")
}

// A waiting client that floods after its message is no longer read; it is
// paired as usual, and its message counts.
func TestWaitingClientFloods(t *testing.T) {
	srv := start(t, &Server{})
	x := dial(t, srv.addr)
	srv.logs.expect(t, "client connected")
	x.send("Alice\n" + strings.Repeat("more\n", 100))
	y := dial(t, srv.addr)
	x.expect("Client X connected")
	y.expect("Client Y connected")
	srv.out.expect(t, "Client X: Alice")
	y.send("Bob\n")
	x.expect("X: Alice received before Y: Bob")
	y.expect("X: Alice received before Y: Bob")
}
