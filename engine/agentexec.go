package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/http2"

	"github.com/adam91holt/clawdspace/agent"
	"github.com/adam91holt/clawdspace/spaces"
)

// errAgentUnsure is what an exec's caller sees when the agent's answer
// did not come although the request may have reached it: the command may
// have run, so it is not run again.
var errAgentUnsure = &spaces.Error{Kind: spaces.ErrUnavailable, Msg: "the space's agent did not answer whether the command started; the node has killed it, and the next exec goes through the Engine API"}

// notDelivered reports whether a round trip failed before its request
// could reach the agent (the connection refused new streams).
func notDelivered(err error) bool {
	var se http2.StreamError
	if errors.As(err, &se) && se.Code == http2.ErrCodeRefusedStream {
		return true
	}
	var ga http2.GoAwayError
	if errors.As(err, &ga) {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "client conn not usable") || strings.Contains(msg, "client conn is closed") ||
		strings.Contains(msg, "no cached connection")
}

// errAgentBroke is what an exec's caller sees when the agent broke off an
// exec after its process started (nothing can be run again safely then);
// the process is dead and the next exec goes the Engine API path.
var errAgentBroke = &spaces.Error{Kind: spaces.ErrUnavailable, Msg: "the space's agent broke off the exec; the node has killed it and falls back to the Engine API"}

// execAgent runs an exec through the agent. done is false when the
// process never started (the agent refused it, did not answer, or is
// busy): the caller then runs it through the Engine API.
func (e *Engine) execAgent(ctx context.Context, s *agentSlot, cc *http2.ClientConn, id string, spec spaces.ExecSpec) (code int, done bool, err error) {
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		return 0, false, nil
	}
	// As on the Engine API path, no pause begins while the process starts
	// (gate.go): a freeze between the agent's fork and its answer would
	// leave the node unable to tell whether the command ran. The gate is
	// held until the answer's headers, which the agent sends once the
	// process runs.
	unlock, err := e.gates.rlock(ctx, id)
	if err != nil {
		return 0, true, err
	}
	defer unlock()
	if f, _ := frozen(e.procsFile(ctx, id)); f {
		return 0, false, nil // the Engine API path says it is not running
	}
	marker := newMarker()
	env := append(e.markEnv(spec.Env), agent.ExecMarkerEnv+"="+marker)
	head, err := json.Marshal(agent.ExecRequest{Cmd: spec.Cmd, Env: env, Dir: spec.WorkDir, Stdin: spec.Stdin != nil})
	if err != nil || len(head) > agent.MaxRequest {
		return 0, false, nil
	}
	var body io.ReadCloser = io.NopCloser(io.MultiReader(bytes.NewReader(binary.BigEndian.AppendUint32(nil, uint32(len(head)))), bytes.NewReader(head)))
	var stdinPipe *io.PipeReader
	if spec.Stdin != nil {
		// The transport closes the body when the exec ends and waits for
		// its reads to stop: stdin (an SSH channel, say) may block in a
		// read for ever, so it is copied in through a pipe that the close
		// ends. The copy ends at stdin's next read, as on the Engine API
		// path.
		pr, pw := io.Pipe()
		src := io.MultiReader(body, spec.Stdin)
		go func() {
			_, err := io.Copy(pw, src)
			pw.CloseWithError(err)
		}()
		body, stdinPipe = pr, pr
	}
	// The stream lives as long as the exec: it ends when the caller goes
	// away or the agent does not answer in time.
	rctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	req, _ := http.NewRequestWithContext(rctx, "POST", "http://agent/exec", body)
	req.ContentLength = -1

	// When the caller goes away or the time is up, reset the stream (the
	// agent kills the session) and kill every process of the exec from
	// the host, whatever the agent does. The answer waits for the kill: a
	// command reported as timed out must be dead.
	// An agent that stops reading (its stdin) or answering must not keep
	// the exec past its end: the stdin pipe is closed, and the connection
	// too if the exec has not returned a grace period after the kill.
	killed, returned := make(chan struct{}), make(chan struct{})
	defer close(returned)
	stop := context.AfterFunc(ctx, func() {
		defer close(killed)
		cancel(context.Cause(ctx))
		if stdinPipe != nil {
			stdinPipe.CloseWithError(context.Cause(ctx))
		}
		e.killMarked(id, marker)
		go func() {
			t := time.NewTimer(agentStopGrace)
			defer t.Stop()
			select {
			case <-returned:
			case <-t.C:
				s.failed(e, "the agent did not end a stopped exec")
			}
		}()
	})
	defer func() {
		if !stop() {
			<-killed
		}
	}()
	errSlow := errors.New("the agent did not answer in time")
	slow := time.AfterFunc(agentCallTimeout, func() { cancel(errSlow) })
	resp, err := cc.RoundTrip(req)
	slow.Stop()
	unlock()
	if err != nil {
		if ctx.Err() != nil {
			return 0, true, ctx.Err()
		}
		// The process may have started without an answer: make sure it is
		// dead. Once the request may have reached the agent, running it
		// again through the Engine API could run the command twice: the
		// exec fails instead.
		e.killMarked(id, marker)
		reason := "the agent's connection failed"
		if errors.Is(context.Cause(rctx), errSlow) {
			reason = errSlow.Error()
		}
		if f, _ := frozen(e.procsFile(ctx, id)); !f {
			// A space paused meanwhile froze its agent: not its fault.
			s.failed(e, reason)
		}
		if notDelivered(err) {
			return 0, false, nil
		}
		return 0, true, errAgentUnsure
	}
	defer func() {
		// The stream ends before its body is closed: a close waits for the
		// request body's copy, which an open stdin would hold.
		cancel(nil)
		resp.Body.Close()
	}()
	switch resp.StatusCode {
	case http.StatusOK:
	case agent.StatusNotStarted:
		// It could not start the process (no such command or folder): the
		// Engine API path gives the error users always got. An agent that
		// says so every time only costs the node kills: it is dropped.
		e.killMarked(id, marker)
		if s.notStarted() {
			s.failed(e, "the agent refused too many execs in a row")
		}
		return 0, false, nil
	default:
		e.killMarked(id, marker)
		s.failed(e, "the agent answered "+strconv.Itoa(resp.StatusCode))
		return 0, false, nil
	}
	if spec.Started != nil {
		spec.Started()
	}
	stdout, stderr := orDiscard(spec.Stdout), orDiscard(spec.Stderr)
	buf := make([]byte, agent.MaxFrame)
	for {
		kind, p, err := agent.ReadFrame(resp.Body, buf)
		if err != nil {
			if ctx.Err() != nil {
				return 0, true, ctx.Err()
			}
			cancel(errAgentBroke)
			e.killMarked(id, marker)
			s.failed(e, "the agent broke off an exec: "+printable(err.Error(), 80))
			return 0, true, errAgentBroke
		}
		var werr error
		switch kind {
		case agent.FrameStdout:
			_, werr = stdout.Write(p)
		case agent.FrameStderr:
			_, werr = stderr.Write(p)
		case agent.FrameExit:
			if ctx.Err() != nil {
				// Killed for the caller: the code is the kill's.
				return 0, true, ctx.Err()
			}
			s.succeeded()
			return agent.ExitCode(p), true, nil
		}
		if werr != nil {
			cancel(werr)
			e.killMarked(id, marker)
			if ctx.Err() != nil {
				return 0, true, ctx.Err()
			}
			return 0, true, fmt.Errorf("reading exec output: %w", werr)
		}
	}
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// newMarker is a random value that names one exec's processes.
func newMarker() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// maxMarkerScan bounds what killMarked reads of a process's environment:
// the agent puts the marker first, and a space's processes may carry
// environments of megabytes.
const maxMarkerScan = 64 << 10

// readPrefix reads the start of a file into buf, returning how much.
func readPrefix(path string, buf []byte) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n, _ := io.ReadFull(f, buf)
	return n
}

// killMarked kills, from the host, every process of a container that
// carries an exec's marker, with its descendants and session (the agent
// starts each exec as a session of its own). The agent may lie or be
// gone; the kernel's view of the container's cgroup decides.
func (e *Engine) killMarked(id, marker string) {
	file := e.procsFile(context.Background(), id)
	if file == "" {
		return
	}
	want := []byte(agent.ExecMarkerEnv + "=" + marker + "\x00")
	env := make([]byte, maxMarkerScan)
	for round := 0; round < 3; round++ {
		b, err := os.ReadFile(file)
		if err != nil {
			return
		}
		found := false
		// A process killed with the tree of an earlier marked one is not
		// walked again: the walk reads all of /proc.
		killed := map[int]bool{}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil || killed[pid] {
				continue
			}
			n := readPrefix("/proc/"+f+"/environ", env)
			if !bytes.Contains(env[:n], want) {
				continue
			}
			for _, p := range processTree("/proc", pid) {
				if inContainer("/proc", p, id) {
					found, killed[p] = true, true
					_ = syscall.Kill(p, syscall.SIGKILL)
				}
			}
		}
		if !found {
			return
		}
	}
}
