package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/spaces"
)

// Exec runs a process in a space through its agent (agentexec.go) where
// it can, else through the exec API: create, attach (which starts it),
// copy the demultiplexed output, inspect for the exit code. A paused or
// stopped space gives spaces.ErrNotRunning.
func (e *Engine) Exec(ctx context.Context, name string, spec spaces.ExecSpec) (code int, err error) {
	if spec.MaxOutput > 0 {
		// Past the bound the exec's context ends with errOutputLimit: both
		// paths kill the process for it and return at once.
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		lim := &outputLimit{left: spec.MaxOutput, cancel: cancel}
		spec.Stdout, spec.Stderr = lim.wrap(spec.Stdout), lim.wrap(spec.Stderr)
		defer func() {
			if errors.Is(context.Cause(ctx), errOutputLimit) {
				err = spaces.Errorf(spaces.ErrTooLarge, "%s printed more than %d bytes; the node stopped it", printable(strings.Join(spec.Cmd, " "), 40), spec.MaxOutput)
			}
		}()
	}
	err = e.onSpace(ctx, name, func(id string) (err error) {
		// Another user than the space's runs through the engine: the agent
		// runs as the space's user and nothing more. Neither does a command
		// that carries credentials: whoever holds the agent's socket would
		// read them.
		if spec.User == "" && !spec.Credentials {
			if s, cc := e.agentFor(ctx, id); cc != nil {
				var done bool
				if code, done, err = e.execAgent(ctx, s, cc, id, spec); done {
					return err
				}
			}
		}
		code, err = e.execIn(ctx, id, spec)
		return err
	})
	return code, mapErr(err, "running exec")
}

// errOutputLimit ends an exec whose output passed its MaxOutput.
var errOutputLimit = errors.New("the exec's output passed its bound")

// outputLimit counts what an exec's stdout and stderr receive together,
// and ends the exec once it passed the bound.
type outputLimit struct {
	mu     sync.Mutex
	left   int64
	cancel context.CancelCauseFunc
}

func (l *outputLimit) wrap(w io.Writer) io.Writer {
	return &limitWriter{l: l, w: orDiscard(w)}
}

type limitWriter struct {
	l *outputLimit
	w io.Writer
}

func (w *limitWriter) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	over := int64(len(p)) > w.l.left
	if !over {
		w.l.left -= int64(len(p))
	}
	w.l.mu.Unlock()
	if over {
		w.l.cancel(errOutputLimit)
		return 0, errOutputLimit
	}
	return w.w.Write(p)
}

// execIn runs a process in a container. Its errors are the SDK's, so that
// onSpace can tell a stale container ID.
func (e *Engine) execIn(ctx context.Context, id string, spec spaces.ExecSpec) (int, error) {
	// The gate stays shared until the process runs the command or has
	// ended, so no pause can freeze it while it is runc's init (gate.go).
	// A pause that waits for the gate makes this wait too.
	unlock, err := e.gates.rlock(ctx, id)
	if err != nil {
		return 0, err
	}
	defer unlock()
	if err := e.checkThawed(ctx, id); err != nil {
		return 0, err
	}
	cr, err := e.createExec(ctx, id, client.ExecCreateOptions{
		AttachStdout: true,
		AttachStderr: true,
		AttachStdin:  spec.Stdin != nil,
		Cmd:          spec.Cmd,
		Env:          e.markEnv(spec.Env),
		WorkingDir:   spec.WorkDir,
		User:         spec.User,
	})
	if err != nil {
		return 0, err
	}
	att, err := e.attachExec(ctx, cr.ID, client.ExecAttachOptions{})
	if err != nil {
		return 0, e.attachErr(ctx, id, err)
	}
	defer att.Close()
	// The engine answers the attach before the process exists: the gate is
	// let go in the background once it runs the command, so the copy below
	// does not wait for it.
	watched := make(chan struct{})
	defer close(watched)
	go e.releaseWhenStarted(watched, id, cr.ID, unlock)
	// Output proves the command runs: that lets the gate go at once.
	spec.Stdout, spec.Stderr = firstWrite(spec.Stdout, unlock), firstWrite(spec.Stderr, unlock)

	// When the caller goes away or the time is up, kill the process tree;
	// closing the connection ends the copy below. The answer waits for the
	// kill: a command reported as timed out must be dead.
	killed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(killed)
		e.killExec(id, cr.ID)
		att.Conn.Close()
	})
	defer func() {
		if !stop() {
			<-killed
		}
	}()
	if spec.Started != nil {
		spec.Started()
	}

	if spec.Stdin != nil {
		go func() {
			_, _ = io.Copy(att.Conn, spec.Stdin)
			_ = att.CloseWrite()
		}()
	}
	if _, err := stdcopy.StdCopy(spec.Stdout, spec.Stderr, att.Reader); err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("reading exec output: %w", err)
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	ins, err := e.inspectExec(ctx, cr.ID)
	if err != nil {
		return 0, err
	}
	return ins.ExitCode, nil
}

// createExec creates an exec within the call timeout.
func (e *Engine) createExec(ctx context.Context, id string, opts client.ExecCreateOptions) (_ client.ExecCreateResult, err error) {
	ctx, end := e.short(ctx)
	defer end(&err)
	return e.c.ExecCreate(ctx, id, opts)
}

// attachExec attaches to (and so starts) an exec. The caller going away
// does not stop the handshake, which would leave a started process
// nobody kills; only the call timeout does.
func (e *Engine) attachExec(ctx context.Context, execID string, opts client.ExecAttachOptions) (_ client.ExecAttachResult, err error) {
	ctx, end := e.short(context.WithoutCancel(ctx))
	defer end(&err)
	res, err := e.c.ExecAttach(ctx, execID, opts)
	if err != nil && strings.Contains(err.Error(), "received 409") {
		// The start refused: the engine believes the container paused or
		// stopped (for a moment, it may be wrong; see frozen). The service
		// resumes it and tries again.
		return res, fmt.Errorf("starting exec: %w", spaces.ErrNotRunning)
	}
	return res, err
}

// checkThawed refuses to start an exec in a container whose cgroup is
// frozen although the engine may believe it running (see frozen): the
// exec's runc init would freeze and hang the engine. The caller holds the
// container's gate, so no pause of this node begins meanwhile.
func (e *Engine) checkThawed(ctx context.Context, id string) error {
	file := e.procsFile(ctx, id)
	if file == "" {
		return nil
	}
	if f, _ := frozen(file); f {
		return fmt.Errorf("starting exec: the space's cgroup is frozen: %w", spaces.ErrNotRunning)
	}
	return nil
}

// inspectExec inspects an exec within the call timeout.
func (e *Engine) inspectExec(ctx context.Context, execID string) (_ client.ExecInspectResult, err error) {
	ctx, end := e.short(ctx)
	defer end(&err)
	return e.c.ExecInspect(ctx, execID, client.ExecInspectOptions{})
}

// releaseWhenStarted calls release once the exec's process runs its
// command or has ended (execStarted), polling until stop is closed. It
// never gives up on its own: a pause waits for the exec rather than risk
// freezing runc's init, and answers 409 at its own deadline.
func (e *Engine) releaseWhenStarted(stop <-chan struct{}, containerID, execID string, release func()) {
	start := time.Now()
	// Most execs print or end within this; waiting first keeps the polls
	// off the engine while it starts the process.
	delay, warned := 20*time.Millisecond, false
	for {
		t := time.NewTimer(delay)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
		if e.execStarted(containerID, execID) {
			release()
			return
		}
		if !warned && time.Since(start) > 10*time.Second {
			warned = true
			e.log.Warn("an exec has not started its command after 10 s; pauses of its space wait for it", "container", shortID(containerID))
		}
		delay = min(delay*2, 50*time.Millisecond)
	}
}

// execStarted reports whether an exec is past its start: its process runs
// the command (the engine's host PID is no longer runc's init) or has
// ended. Engine 20.10 reports an exec running, with a PID, while that PID
// is still runc's init; only /proc tells. Where the node cannot see the
// engine's processes, running with a PID is all it can go by.
func (e *Engine) execStarted(containerID, execID string) bool {
	ins, err := e.inspectExec(context.Background(), execID)
	switch {
	case cerrdefs.IsNotFound(err):
		return true
	case err != nil:
		return false
	case !ins.Running:
		// Before the start there is neither a PID nor an exit code.
		return ins.PID > 0 || ins.ExitCode != 0
	case ins.PID <= 0:
		return false
	}
	comm, ok := procComm("/proc", ins.PID)
	if !ok || !inContainer("/proc", ins.PID, containerID) {
		return true // ended meanwhile, or not the node's host
	}
	return !isRuncInit(comm)
}

// firstWrite calls f before the first write to w.
func firstWrite(w io.Writer, f func()) io.Writer {
	if w == nil {
		w = io.Discard
	}
	return &onFirstWrite{w: w, f: f}
}

type onFirstWrite struct {
	w    io.Writer
	f    func()
	done bool
}

func (o *onFirstWrite) Write(p []byte) (int, error) {
	if !o.done {
		o.done = true
		o.f()
	}
	return o.w.Write(p)
}

// Stats takes one sample; the engine collects a previous sample too, so the
// CPU percentage is over about one second.
func (e *Engine) Stats(ctx context.Context, name string) (_ spaces.Stats, err error) {
	ctx, end := e.short(ctx)
	defer end(&err)
	var res client.ContainerStatsResult
	err = e.onSpace(ctx, name, func(id string) (err error) {
		res, err = e.c.ContainerStats(ctx, id, client.ContainerStatsOptions{IncludePreviousSample: true})
		return err
	})
	if err != nil {
		return spaces.Stats{}, mapErr(err, "reading stats")
	}
	defer res.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			// No sample at all: the container was removed meanwhile.
			return spaces.Stats{}, spaces.SpaceNotFound()
		}
		return spaces.Stats{}, fmt.Errorf("decoding stats: %w", err)
	}
	return statsOf(s), nil
}

func statsOf(s container.StatsResponse) spaces.Stats {
	out := spaces.Stats{
		MemoryUsageBytes: s.MemoryStats.Usage,
		MemoryLimitBytes: s.MemoryStats.Limit,
		PIDs:             s.PidsStats.Current,
	}
	// Page cache is not the space's own memory; docker stats subtracts it too.
	if cache, ok := s.MemoryStats.Stats["inactive_file"]; ok && cache < out.MemoryUsageBytes {
		out.MemoryUsageBytes -= cache
	} else if cache, ok := s.MemoryStats.Stats["total_inactive_file"]; ok && cache < out.MemoryUsageBytes {
		out.MemoryUsageBytes -= cache
	}
	cpuDelta := float64(s.CPUStats.CPUUsage.TotalUsage) - float64(s.PreCPUStats.CPUUsage.TotalUsage)
	sysDelta := float64(s.CPUStats.SystemUsage) - float64(s.PreCPUStats.SystemUsage)
	online := float64(s.CPUStats.OnlineCPUs)
	if online == 0 {
		online = float64(len(s.CPUStats.CPUUsage.PercpuUsage))
	}
	if cpuDelta > 0 && sysDelta > 0 {
		out.CPUPercent = cpuDelta / sysDelta * online * 100
	}
	for _, n := range s.Networks {
		out.NetworkRxBytes += n.RxBytes
		out.NetworkTxBytes += n.TxBytes
	}
	for _, b := range s.BlkioStats.IoServiceBytesRecursive {
		switch b.Op {
		case "Read", "read":
			out.BlockReadBytes += b.Value
		case "Write", "write":
			out.BlockWriteBytes += b.Value
		}
	}
	return out
}

// Info summarises the engine.
func (e *Engine) Info(ctx context.Context) (_ spaces.EngineInfo, err error) {
	ctx, end := e.short(ctx)
	defer end(&err)
	res, err := e.c.Info(ctx, client.InfoOptions{})
	if err != nil {
		return spaces.EngineInfo{}, mapErr(err, "reading engine info")
	}
	i := res.Info
	return spaces.EngineInfo{
		Version:           i.ServerVersion,
		APIVersion:        e.c.ClientVersion(),
		Containers:        i.Containers,
		ContainersRunning: i.ContainersRunning,
		ContainersPaused:  i.ContainersPaused,
		Images:            i.Images,
	}, nil
}
