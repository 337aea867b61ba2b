package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/adam91holt/clawdspace/agent"
	"github.com/adam91holt/clawdspace/spaces"
)

// agentTerminal opens a terminal through the agent. ok is false when the
// process never started: the caller then opens it through the Engine API.
func (e *Engine) agentTerminal(ctx context.Context, s *agentSlot, cc *http2.ClientConn, id string, spec spaces.TerminalSpec) (*agentTerm, bool) {
	select {
	case s.streams <- struct{}{}:
	default:
		return nil, false
	}
	release := sync.OnceFunc(func() { <-s.streams })
	// No pause while the process starts, as for an exec (agentexec.go).
	unlock, err := e.gates.rlock(ctx, id)
	if err != nil {
		release()
		return nil, false
	}
	defer unlock()
	if f, _ := frozen(e.procsFile(ctx, id)); f {
		release()
		return nil, false
	}
	marker := newMarker()
	env := append(e.markEnv(spec.Env), agent.ExecMarkerEnv+"="+marker)
	head, err := json.Marshal(agent.TerminalRequest{Cmd: spec.Cmd, Env: env, Dir: spec.WorkDir,
		Cols: uint16(min(max(spec.Cols, 1), 1000)), Rows: uint16(min(max(spec.Rows, 1), 1000))})
	if err != nil || len(head) > agent.MaxRequest {
		release()
		return nil, false
	}
	pr, pw := io.Pipe()
	body := io.MultiReader(bytes.NewReader(binary.BigEndian.AppendUint32(nil, uint32(len(head)))), bytes.NewReader(head), pr)
	// The terminal outlives ctx, which bounds only its start.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	req, _ := http.NewRequestWithContext(rctx, "POST", "http://agent/terminal", io.NopCloser(body))
	req.ContentLength = -1
	slow := time.AfterFunc(agentCallTimeout, cancel)
	stopCtx := context.AfterFunc(ctx, cancel)
	resp, err := cc.RoundTrip(req)
	slow.Stop()
	stopCtx()
	unlock()
	fail := func(reason string) (*agentTerm, bool) {
		cancel()
		pw.Close()
		e.killMarked(id, marker)
		release()
		if reason != "" {
			s.failed(e, reason)
		}
		return nil, false
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return fail("")
	case err != nil:
		return fail("the agent did not open a terminal")
	case resp.StatusCode == agent.StatusNotStarted:
		resp.Body.Close()
		return fail("")
	case resp.StatusCode != http.StatusOK:
		resp.Body.Close()
		return fail("the agent answered a terminal with " + http.StatusText(resp.StatusCode))
	}
	return &agentTerm{e: e, s: s, id: id, marker: marker, in: pw, body: resp.Body, cancel: cancel,
		release: release, buf: make([]byte, agent.MaxFrame), done: make(chan struct{})}, true
}

// agentTerm is a terminal through the agent.
type agentTerm struct {
	e          *Engine
	s          *agentSlot
	id, marker string
	cancel     func()
	release    func()

	wmu sync.Mutex
	in  *io.PipeWriter

	// Read's state: one reader at a time.
	rmu     sync.Mutex
	body    io.ReadCloser
	buf     []byte
	pending []byte

	doneOnce sync.Once
	done     chan struct{}
	code     int
	err      error

	closeOnce sync.Once
	closed    atomic.Bool
}

func (t *agentTerm) Read(p []byte) (int, error) {
	t.rmu.Lock()
	defer t.rmu.Unlock()
	for len(t.pending) == 0 {
		kind, data, err := agent.ReadFrame(t.body, t.buf)
		switch {
		case err != nil:
			if !t.closed.Load() {
				// The output ended without an exit code: the agent broke
				// off (the process is killed when the terminal is closed).
				t.s.failed(t.e, "the agent broke off a terminal: "+printable(err.Error(), 80))
				t.end(0, errAgentBroke)
			}
			return 0, io.EOF
		case kind == agent.FrameExit:
			t.end(agent.ExitCode(data), nil)
			return 0, io.EOF
		case kind == agent.FrameStdout:
			t.pending = data
		}
	}
	n := copy(p, t.pending)
	t.pending = t.pending[n:]
	return n, nil
}

func (t *agentTerm) end(code int, err error) {
	t.doneOnce.Do(func() {
		t.code, t.err = code, err
		close(t.done)
	})
}

func (t *agentTerm) Write(p []byte) (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	n := len(p)
	for len(p) > 0 {
		c := p[:min(len(p), agent.MaxFrame)]
		if err := agent.WriteFrame(t.in, agent.FrameInput, c); err != nil {
			return n - len(p), err
		}
		p = p[len(c):]
	}
	return n, nil
}

func (t *agentTerm) Resize(ctx context.Context, cols, rows int) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	var b [4]byte
	binary.BigEndian.PutUint16(b[:], uint16(min(max(cols, 1), 1000)))
	binary.BigEndian.PutUint16(b[2:], uint16(min(max(rows, 1), 1000)))
	return agent.WriteFrame(t.in, agent.FrameResize, b[:])
}

// Wait waits for the end of the output and returns the exit code.
func (t *agentTerm) Wait(ctx context.Context) (int, error) {
	select {
	case <-t.done:
		return t.code, t.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Close kills the process and its session from the agent's side and from
// the host's, and ends Read.
func (t *agentTerm) Close() error {
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		t.cancel()
		t.e.killMarked(t.id, t.marker)
		t.in.Close()
		t.body.Close()
		t.end(137, nil) // killed, unless it had ended
		t.release()
	})
	return nil
}
