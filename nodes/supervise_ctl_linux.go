package nodes

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/labctl/labctl/topo"
)

// The supervisor's control socket, DIR/supervisor.sock: one JSON request
// per connection, one JSON line back. It offers what the timeline already
// does (restart a program) and a snapshot of the programs' states, for
// `labctl web`. It never runs anything the plan does not name.

// SupervisorSocket is a lab's supervisor control socket.
func SupervisorSocket(lab string) string { return filepath.Join(Dir(lab), "supervisor.sock") }

type supRequest struct {
	Op      string `json:"op"`                // status, restart
	Program string `json:"program,omitempty"` // host/program
}

type supResponse struct {
	OK       bool            `json:"ok"`
	Error    string          `json:"error,omitempty"`
	Programs []ProgramStatus `json:"programs,omitempty"`
}

// serveControl answers on the control socket until ctx ends.
func (s *Supervisor) serveControl(ctx context.Context) {
	sock := SupervisorSocket(s.plan.Lab)
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		s.log.Warn("no control socket", "err", err)
		return
	}
	_ = os.Chmod(sock, 0o600)
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			var req supRequest
			line, err := bufio.NewReaderSize(c, 4096).ReadBytes('\n')
			if err == nil {
				err = json.Unmarshal(line, &req)
			}
			resp := supResponse{OK: true}
			if err != nil {
				resp = supResponse{Error: fmt.Sprintf("bad request: %v", err)}
			} else if err := s.control(ctx, req, &resp); err != nil {
				resp = supResponse{Error: err.Error()}
			}
			_ = json.NewEncoder(c).Encode(resp)
		}()
	}
}

func (s *Supervisor) control(ctx context.Context, req supRequest, resp *supResponse) error {
	switch req.Op {
	case "status":
		for _, p := range s.procs {
			resp.Programs = append(resp.Programs, p.snapshot())
		}
		return nil
	case "restart":
		p := s.byKey[req.Program]
		if p == nil {
			return fmt.Errorf("no program %q", req.Program)
		}
		// A program that ended is marked waiting until it starts again, so
		// that a second restart meanwhile (a double click) is refused
		// instead of starting it twice.
		p.mu.Lock()
		state := p.state
		if state != StateWaiting && state != StateRunning && state != StateReady {
			p.state = StateWaiting
		}
		p.mu.Unlock()
		if state == StateWaiting {
			return fmt.Errorf("program %q is not running yet", req.Program)
		}
		what, err := s.act(ctx, topo.Event{Restart: req.Program})
		s.emit("labctl", "sys", "web: "+what)
		return err
	}
	return fmt.Errorf("unknown op %q", req.Op)
}

// ErrNoSupervisor says a lab's supervisor does not answer (it runs no
// programs, or it stopped).
var ErrNoSupervisor = errors.New("the lab's supervisor does not answer")

func supervisorCall(ctx context.Context, lab string, req supRequest) (supResponse, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", SupervisorSocket(lab))
	if err != nil {
		return supResponse{}, fmt.Errorf("lab %q: %w: %w", lab, ErrNoSupervisor, err)
	}
	defer c.Close()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(5 * time.Second)
	}
	_ = c.SetDeadline(dl)
	b, _ := json.Marshal(req)
	var resp supResponse
	if _, err = c.Write(append(b, '\n')); err == nil {
		var line []byte
		if line, err = bufio.NewReaderSize(c, 1<<16).ReadBytes('\n'); err == nil {
			err = json.Unmarshal(line, &resp)
		}
	}
	if err != nil {
		return resp, fmt.Errorf("lab %q: %w: %w", lab, ErrNoSupervisor, err)
	}
	if !resp.OK {
		return resp, fmt.Errorf("lab %q: %s", lab, resp.Error)
	}
	return resp, nil
}

// ProgramStates asks a lab's running supervisor for its programs' states.
func ProgramStates(ctx context.Context, lab string) ([]ProgramStatus, error) {
	r, err := supervisorCall(ctx, lab, supRequest{Op: "status"})
	return r.Programs, err
}

// RestartProgram restarts one of a lab's programs (host/program) as a
// timeline "restart" event does: a running one gets SIGTERM and starts
// again; one that ended starts again.
func RestartProgram(ctx context.Context, lab, program string) error {
	_, err := supervisorCall(ctx, lab, supRequest{Op: "restart", Program: program})
	return err
}
