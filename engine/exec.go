package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/spaces"
)

// Exec runs a process in a space through the exec API: create, attach
// (which starts it), copy the demultiplexed output, inspect for the exit
// code. A paused or stopped space gives spaces.ErrNotRunning.
func (e *Engine) Exec(ctx context.Context, name string, spec spaces.ExecSpec) (code int, err error) {
	err = e.onSpace(ctx, name, func(id string) (err error) {
		code, err = e.execIn(ctx, id, spec)
		return err
	})
	return code, mapErr(err, "running exec")
}

// execIn runs a process in a container. Its errors are the SDK's, so that
// onSpace can tell a stale container ID.
func (e *Engine) execIn(ctx context.Context, id string, spec spaces.ExecSpec) (int, error) {
	runlock := e.gates.rlock(id)
	started := false
	defer func() {
		if !started {
			runlock()
		}
	}()
	cr, err := e.c.ExecCreate(ctx, id, client.ExecCreateOptions{
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
	att, err := e.c.ExecAttach(context.WithoutCancel(ctx), cr.ID, client.ExecAttachOptions{})
	if err != nil {
		return 0, e.attachErr(ctx, id, err)
	}
	// The engine answers the attach before it starts the process, so the
	// gate stays shut until the exec is seen running (or done), in the
	// background: the copy below does not wait for it.
	started = true
	release := sync.OnceFunc(runlock)
	defer release()
	go e.releaseWhenStarted(cr.ID, release)
	defer att.Close()
	// Output proves the process runs: that releases the gate at once.
	spec.Stdout, spec.Stderr = firstWrite(spec.Stdout, release), firstWrite(spec.Stderr, release)

	// When the caller goes away or the time is up, kill the process tree;
	// closing the connection ends the copy below.
	stop := context.AfterFunc(ctx, func() {
		e.killExec(id, cr.ID)
		att.Conn.Close()
	})
	defer stop()
	if spec.Started != nil {
		spec.Started()
	}

	if spec.Stdin != nil {
		go func() {
			_, _ = io.Copy(att.Conn, spec.Stdin)
			_ = att.CloseWrite()
		}()
	}
	stdout, stderr := spec.Stdout, spec.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	if _, err := stdcopy.StdCopy(stdout, stderr, att.Reader); err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("reading exec output: %w", err)
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	ins, err := e.c.ExecInspect(ctx, cr.ID, client.ExecInspectOptions{})
	if err != nil {
		return 0, err
	}
	return ins.ExitCode, nil
}

// releaseWhenStarted calls release once the exec has a process (or has
// already ended), polling briefly; after a few seconds it gives up waiting
// rather than keep pauses out for good.
func (e *Engine) releaseWhenStarted(execID string, release func()) {
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Most execs print or end within this; waiting first keeps the polls
	// off the engine while it starts the process.
	select {
	case <-ctx.Done():
	case <-time.After(20 * time.Millisecond):
	}
	for delay := 5 * time.Millisecond; ctx.Err() == nil; delay = min(delay*2, 50*time.Millisecond) {
		ins, err := e.c.ExecInspect(ctx, execID, client.ExecInspectOptions{})
		if err != nil || ins.Running || ins.PID > 0 {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
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
func (e *Engine) Stats(ctx context.Context, name string) (spaces.Stats, error) {
	var res client.ContainerStatsResult
	err := e.onSpace(ctx, name, func(id string) (err error) {
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
func (e *Engine) Info(ctx context.Context) (spaces.EngineInfo, error) {
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
