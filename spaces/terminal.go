package spaces

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"
)

// Terminal sizes, in characters.
const (
	DefaultTerminalCols = 80
	DefaultTerminalRows = 24
	MaxTerminalSize     = 1000
)

// terminalScript starts bash as a login shell, or sh where the image has no
// bash. exec keeps the shell the exec's own process, so killing the exec's
// session kills the shell.
const terminalScript = `command -v bash >/dev/null 2>&1 && exec bash -l; exec sh -l`

// ValidateTerminalSize checks a terminal size: 1 to MaxTerminalSize each.
func ValidateTerminalSize(cols, rows int) error {
	if cols < 1 || cols > MaxTerminalSize {
		return Errorf(ErrInvalid, "cols must be between 1 and %d", MaxTerminalSize)
	}
	if rows < 1 || rows > MaxTerminalSize {
		return Errorf(ErrInvalid, "rows must be between 1 and %d", MaxTerminalSize)
	}
	return nil
}

// OpenTerminal starts an interactive login shell (bash, or sh where the image
// has none) with a TTY of cols x rows (0 means the default, 80 x 24): see
// OpenTerminalFor.
func (s *Service) OpenTerminal(ctx context.Context, c Caller, name string, cols, rows int) (*TerminalSession, error) {
	return s.OpenTerminalFor(ctx, c, name, TerminalRequest{Cols: cols, Rows: rows})
}

// TerminalRequest describes a terminal to open.
type TerminalRequest struct {
	// Command runs instead of the login shell (as bash -lc COMMAND, or
	// sh -lc where the image has no bash), as ssh -t NAME@NODE COMMAND does.
	Command string
	// Term is the TERM of the session (default xterm-256color).
	Term string
	// Env adds variables (as ExecRequest.Env, validated the same way;
	// TERM comes from Term).
	Env        map[string]string
	Cols, Rows int
}

// MaxTermLength bounds TerminalRequest.Term.
const MaxTermLength = 64

// ShellCommand is the argv that runs command the way a login shell of
// the space's user would: bash -lc, or sh -lc where the image has no bash.
func ShellCommand(command string) []string {
	return []string{"sh", "-c", `command -v bash >/dev/null 2>&1 && exec bash -lc "$1"; exec sh -lc "$1"`, "sh", command}
}

// OpenTerminalFor starts an interactive process with a TTY, as the space's
// user in /workspace, resuming the space first when it is paused or
// stopped. It records terminal.open; the space counts as busy until the
// session is closed, which records terminal.close and counts as activity.
func (s *Service) OpenTerminalFor(ctx context.Context, c Caller, name string, req TerminalRequest) (*TerminalSession, error) {
	if err := s.authorize(ctx, c, name, ActTerminal); err != nil {
		return nil, err
	}
	if err := ValidateName(name); err != nil {
		return nil, SpaceNotFound()
	}
	cols, rows := req.Cols, req.Rows
	if cols == 0 {
		cols = DefaultTerminalCols
	}
	if rows == 0 {
		rows = DefaultTerminalRows
	}
	if err := ValidateTerminalSize(cols, rows); err != nil {
		return nil, err
	}
	term := req.Term
	if term == "" {
		term = "xterm-256color"
	}
	if len(term) > MaxTermLength || strings.IndexFunc(term, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.+", r))
	}) >= 0 {
		return nil, FieldErrorf(ErrInvalid, FieldTerm, "must be letters, digits and -_.+, at most %d", MaxTermLength)
	}
	if err := ValidateEnv(req.Env); err != nil {
		return nil, err
	}
	env := []string{"TERM=" + term}
	for k, v := range req.Env {
		if k != "TERM" {
			env = append(env, k+"="+v)
		}
	}
	sort.Strings(env[1:])
	cmd := []string{"sh", "-c", terminalScript}
	meta := map[string]any{"cols": cols, "rows": rows}
	if req.Command != "" {
		cmd = ShellCommand(req.Command)
		meta["command"] = truncate(req.Command, 2048)
	}
	if err := s.audit(ctx, c, name, EventTerminalOpen, meta); err != nil {
		return nil, err
	}
	opened := s.clock.Now()
	// Busy before the engine is reached: a pause that races the start is
	// undone by sleepIfIdle's second look.
	done := s.busy.hold(name)
	spec := TerminalSpec{
		Cmd:     cmd,
		Env:     env,
		WorkDir: WorkspacePath,
		Cols:    cols,
		Rows:    rows,
	}
	var proc TerminalProcess
	var err error
	err = s.resumingOnce(ctx, name, func() (err error) {
		proc, err = s.cfg.Engine.Terminal(ctx, name, spec)
		return err
	})
	if err != nil {
		bg := context.WithoutCancel(ctx)
		if !errors.Is(err, ErrNotFound) {
			s.touch(bg, name)
		}
		done()
		msg, ok := Message(err)
		if !ok {
			msg = "failed to start"
		}
		if aerr := s.audit(bg, c, name, EventTerminalClose, map[string]any{"durationMs": 0, "error": msg}); aerr != nil {
			s.log.Error("recording terminal close", "space", name, "err", aerr)
		}
		return nil, err
	}
	return &TerminalSession{svc: s, proc: proc, caller: c, name: name, opened: opened, release: done}, nil
}

// TerminalSession is an open terminal. Read returns the TTY's output and an
// error once it has ended (the shell exited, or the session was closed);
// Write sends keystrokes.
type TerminalSession struct {
	svc     *Service
	proc    TerminalProcess
	caller  Caller
	name    string
	opened  time.Time
	release func()

	mu       sync.Mutex
	exitCode *int
	once     sync.Once
	closeErr error
}

// Space names the session's space.
func (t *TerminalSession) Space() string { return t.name }

func (t *TerminalSession) Read(p []byte) (int, error)  { return t.proc.Read(p) }
func (t *TerminalSession) Write(p []byte) (int, error) { return t.proc.Write(p) }

// Resize changes the size of the TTY; both must be 1 to MaxTerminalSize.
func (t *TerminalSession) Resize(ctx context.Context, cols, rows int) error {
	if err := ValidateTerminalSize(cols, rows); err != nil {
		return err
	}
	return t.proc.Resize(ctx, cols, rows)
}

// Wait returns the shell's exit code once its output has ended.
func (t *TerminalSession) Wait(ctx context.Context) (int, error) {
	code, err := t.proc.Wait(ctx)
	if err == nil {
		t.mu.Lock()
		t.exitCode = &code
		t.mu.Unlock()
	}
	return code, err
}

// Close kills the shell and everything it started, records terminal.close
// (with the duration, and the exit code when Wait returned one) and ends
// the busy mark, which counts as activity. Later calls return the first
// call's result.
func (t *TerminalSession) Close() error {
	t.once.Do(func() {
		perr := t.proc.Close()
		s := t.svc
		meta := map[string]any{"durationMs": s.clock.Now().Sub(t.opened).Milliseconds()}
		t.mu.Lock()
		if t.exitCode != nil {
			meta["exitCode"] = *t.exitCode
		}
		t.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		aerr := s.audit(ctx, t.caller, t.name, EventTerminalClose, meta)
		s.touch(ctx, t.name)
		t.release()
		t.closeErr = errors.Join(perr, aerr)
	})
	return t.closeErr
}
