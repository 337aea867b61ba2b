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
func (e *Engine) Terminal(ctx context.Context, name string, spec spaces.TerminalSpec) (spaces.TerminalProcess, error) {
	var t *terminal
	err := e.onSpace(ctx, name, func(id string) (err error) {
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
	// As in execIn, a pause must not catch the exec between create and
	// start (Engine 20.10 then hangs the start).
	runlock := e.gates.rlock(id)
	cr, err := e.c.ExecCreate(ctx, id, client.ExecCreateOptions{
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
	att, err := e.c.ExecAttach(context.WithoutCancel(ctx), cr.ID, client.ExecAttachOptions{TTY: true, ConsoleSize: size})
	if err != nil {
		runlock()
		return nil, err
	}
	// The attach answers before the engine starts the process.
	go e.releaseWhenStarted(cr.ID, sync.OnceFunc(runlock))
	t := &terminal{e: e, containerID: id, execID: cr.ID, att: att.HijackedResponse, done: make(chan struct{})}
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
}

func (t *terminal) Read(p []byte) (int, error) {
	n, err := t.att.Reader.Read(p)
	if err != nil {
		t.doneOnce.Do(func() { close(t.done) })
	}
	return n, err
}

func (t *terminal) Write(p []byte) (int, error) { return t.att.Conn.Write(p) }

func (t *terminal) Resize(ctx context.Context, cols, rows int) error {
	_, err := t.e.c.ExecResize(ctx, t.execID, client.ExecResizeOptions{Width: uint(cols), Height: uint(rows)})
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
		ins, err := t.e.c.ExecInspect(ctx, t.execID, client.ExecInspectOptions{})
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
	})
	return nil
}
