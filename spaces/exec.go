package spaces

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// MaxExecTimeout bounds ExecRequest.Timeout.
const MaxExecTimeout = 24 * time.Hour

// MissingTool reports whether an exit code says the command could not be
// run at all (126: not executable, 127: not found): the image lacks it.
func MissingTool(code int) bool { return code == 126 || code == 127 }

// TimeoutExitCode is the exit code reported for a command killed at its
// timeout, as timeout(1) does.
const TimeoutExitCode = 124

// ExecRequest is one command to run in a space.
type ExecRequest struct {
	Cmd []string
	Env map[string]string
	// WorkDir is a client path inside /workspace; empty means /workspace.
	WorkDir string
	Stdin   []byte
	// Input, when set, is streamed to the command's stdin instead of
	// Stdin (Run: SSH commands, sftp, scp).
	Input io.Reader
	// Timeout kills the command and everything it started; 0 means none,
	// and one below 0 or above MaxExecTimeout is refused.
	Timeout time.Duration
	// Started, when set, is called once the command runs.
	Started func()
	Stdout  Writer
	Stderr  Writer
}

// ExecResult is how a command ended.
type ExecResult struct {
	ExitCode int
	TimedOut bool
}

// Writer is where exec output goes.
type Writer interface {
	Write(p []byte) (int, error)
}

// Exec runs a command in a space, resuming it first when it is paused or
// stopped. When ctx ends (the client went away) or the timeout passes, the
// command and every process it started are killed.
func (s *Service) Exec(ctx context.Context, c Caller, name string, req ExecRequest) (res ExecResult, err error) {
	if err := s.authorize(ctx, c, name, ActExec); err != nil {
		return res, err
	}
	return s.exec(ctx, c, name, req)
}

// Run is Exec for the interactive doors (an SSH command, sftp, scp): it
// needs the terminal action, as a shell would, and streams req.Input.
func (s *Service) Run(ctx context.Context, c Caller, name string, req ExecRequest) (ExecResult, error) {
	if err := s.authorize(ctx, c, name, ActTerminal); err != nil {
		return ExecResult{}, err
	}
	return s.exec(ctx, c, name, req)
}

func (s *Service) exec(ctx context.Context, c Caller, name string, req ExecRequest) (res ExecResult, err error) {
	if err := ValidateName(name); err != nil {
		return res, SpaceNotFound()
	}
	if len(req.Cmd) == 0 || req.Cmd[0] == "" || (len(req.Cmd) == 1 && strings.TrimSpace(req.Cmd[0]) == "") {
		return res, FieldErrorf(ErrInvalid, FieldCommand, "is required")
	}
	if err := ValidateEnv(req.Env); err != nil {
		return res, err
	}
	if req.Timeout < 0 || req.Timeout > MaxExecTimeout {
		return res, FieldErrorf(ErrInvalid, FieldTimeout, "must be between 1 and %d", MaxExecTimeout.Milliseconds())
	}
	spec := ExecSpec{Cmd: req.Cmd, Stdout: req.Stdout, Stderr: req.Stderr, Started: req.Started}
	if req.WorkDir != "" {
		if spec.WorkDir, err = WorkspacePathOf(req.WorkDir); err != nil {
			return res, FieldErrorf(ErrInvalid, FieldWorkDir, "is not valid: %s", err.Error())
		}
	}
	for k, v := range req.Env {
		spec.Env = append(spec.Env, k+"="+v)
	}
	sort.Strings(spec.Env)
	if err := s.audit(ctx, c, name, EventExec, map[string]any{"command": truncate(strings.Join(req.Cmd, " "), 2048)}); err != nil {
		return res, err
	}

	done := s.busy.hold(name)
	defer func() {
		// The end of an exec is activity, also when the client went away;
		// record it before the space stops counting as busy.
		if !errors.Is(err, ErrNotFound) {
			s.touch(context.WithoutCancel(ctx), name)
		}
		done()
	}()
	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if req.Timeout > 0 {
		runCtx, cancel = context.WithTimeout(ctx, req.Timeout)
	}
	defer cancel()
	for attempt := 0; ; attempt++ {
		if req.Input != nil {
			spec.Stdin = req.Input
		} else if req.Stdin != nil {
			spec.Stdin = bytes.NewReader(req.Stdin)
		}
		res.ExitCode, err = s.cfg.Engine.Exec(runCtx, name, spec)
		if errors.Is(err, ErrNotRunning) && attempt == 0 {
			unlock := s.locks.Lock(name)
			err = s.resumeLocked(ctx, name)
			unlock()
			if err != nil {
				return res, err
			}
			continue
		}
		if err != nil && req.Timeout > 0 && ctx.Err() == nil && errors.Is(runCtx.Err(), context.DeadlineExceeded) {
			return ExecResult{ExitCode: TimeoutExitCode, TimedOut: true}, nil
		}
		return res, err
	}
}

// busyCounter counts what keeps a space awake: running execs and open
// terminals. Auto-sleep never pauses a busy space.
type busyCounter struct {
	mu sync.Mutex
	n  map[string]int
}

// hold marks name busy until the returned function is called.
func (b *busyCounter) hold(name string) (release func()) {
	b.mu.Lock()
	if b.n == nil {
		b.n = make(map[string]int)
	}
	b.n[name]++
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			if b.n[name]--; b.n[name] <= 0 {
				delete(b.n, name)
			}
			b.mu.Unlock()
		})
	}
}

func (b *busyCounter) busy(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n[name] > 0
}

// Hold marks a space busy (an open terminal, say) until release is called;
// auto-sleep does not pause it meanwhile, and the release counts as activity.
func (s *Service) Hold(name string) (release func()) {
	done := s.busy.hold(name)
	return func() {
		s.touch(context.Background(), name)
		done()
	}
}
