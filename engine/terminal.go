package engine

import (
	"context"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/spaces"
)

// Terminal starts an interactive process with a TTY: an exec created with
// Tty and attached stdin and stdout, whose attach gives one raw stream. A
// paused or stopped space gives spaces.ErrNotRunning.
//
// For the space's own user it goes through the agent where it can
// (agentterm.go).
func (e *Engine) Terminal(ctx context.Context, name string, spec spaces.TerminalSpec) (spaces.TerminalProcess, error) {
	var t spaces.TerminalProcess
	err := e.onSpace(ctx, name, func(id string) (err error) {
		if spec.User == "" {
			if s, cc := e.agentFor(ctx, id); cc != nil {
				if at, ok := e.agentTerminal(ctx, s, cc, id, spec); ok {
					t = at
					return nil
				}
			}
		}
		t, err = e.openTerminal(ctx, id, spec)
		return err
	})
	if err != nil {
		return nil, mapErr(err, "opening terminal")
	}
	return t, nil
}

// openTerminal creates and starts the exec. Its errors are the SDK's, so
// that onSpace can tell a stale container ID.
func (e *Engine) openTerminal(ctx context.Context, id string, spec spaces.TerminalSpec) (*terminal, error) {
	size := client.ConsoleSize{Width: uint(spec.Cols), Height: uint(spec.Rows)}
	// As in execIn, a pause must not freeze the exec's process while it is
	// still runc's init: the gate stays shared until it runs the shell.
	runlock, err := e.gates.rlock(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := e.checkThawed(ctx, id); err != nil {
		runlock()
		return nil, err
	}
	cr, err := e.createExec(ctx, id, client.ExecCreateOptions{
		TTY:          true,
		ConsoleSize:  size,
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
		Cmd:          spec.Cmd,
		Env:          e.markEnv(spec.Env),
		WorkingDir:   spec.WorkDir,
		User:         spec.User,
	})
	if err != nil {
		runlock()
		return nil, err
	}
	att, err := e.attachExec(ctx, cr.ID, client.ExecAttachOptions{TTY: true, ConsoleSize: size})
	if err != nil {
		runlock()
		return nil, err
	}
	// The attach answers before the engine starts the process; the end of
	// the output or Close lets the gate go too.
	stop := make(chan struct{})
	go e.releaseWhenStarted(stop, id, cr.ID, runlock)
	t := &terminal{e: e, containerID: id, execID: cr.ID, att: att.HijackedResponse, done: make(chan struct{}),
		ended: sync.OnceFunc(func() { close(stop); runlock() })}
	// Engines before API 1.42 ignore ConsoleSize; a resize works on all of
	// them (the engine waits for the process to start).
	if err := t.Resize(ctx, spec.Cols, spec.Rows); err != nil {
		e.log.Warn("setting the initial terminal size", "container", shortID(id), "err", err)
	}
	return t, nil
}

// terminal is a running TTY exec.
type terminal struct {
	e           *Engine
	containerID string
	execID      string
	att         client.HijackedResponse

	doneOnce  sync.Once
	done      chan struct{} // closed when the output has ended
	closeOnce sync.Once
	// ended stops waiting for the start and lets the gate go.
	ended func()
}

func (t *terminal) Read(p []byte) (int, error) {
	n, err := t.att.Reader.Read(p)
	if err != nil {
		t.doneOnce.Do(func() { close(t.done) })
		t.ended()
	}
	return n, err
}

func (t *terminal) Write(p []byte) (int, error) { return t.att.Conn.Write(p) }

func (t *terminal) Resize(ctx context.Context, cols, rows int) (err error) {
	ctx, end := t.e.short(ctx)
	defer end(&err)
	_, err = t.e.c.ExecResize(ctx, t.execID, client.ExecResizeOptions{Width: uint(cols), Height: uint(rows)})
	return mapErr(err, "resizing terminal")
}

// Wait waits for the end of the output, then for the engine to report the
// process as exited: it may still report it running for a moment after the
// stream ends.
func (t *terminal) Wait(ctx context.Context) (int, error) {
	select {
	case <-t.done:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ins, err := t.e.inspectExec(ctx, t.execID)
		if err != nil {
			return 0, mapErr(err, "inspecting terminal")
		}
		if !ins.Running {
			return ins.ExitCode, nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Close kills the shell and everything it started (its whole session), then
// closes the stream. Closing the stream alone would leave the shell running:
// the engine sends no hangup when an exec's client goes away.
func (t *terminal) Close() error {
	t.closeOnce.Do(func() {
		t.e.killExec(t.containerID, t.execID)
		t.att.Close()
		t.ended()
	})
	return nil
}
