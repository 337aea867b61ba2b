package spaces

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	observeExecTimeout = 10 * time.Second
	// internalCallTimeout bounds a call the node makes for itself in one
	// space during a pass over all of them (a stat, a sweep): what runs in
	// a space (its agent included) may stall.
	internalCallTimeout = 30 * time.Second
	// ingestSpaceTimeout bounds one space's share of a history pass.
	ingestSpaceTimeout = time.Minute
	historyTailLines   = 50
	historyTailBytes   = 64 << 10
)

// Observability is a snapshot of what goes on in a space. Fields other than
// Stats are nil when the space's image lacks the tools for them, or the
// space is paused (nothing runs in it then).
type Observability struct {
	// Status is the space's when it was observed.
	Status             Status
	Stats              Stats
	WorkspaceDisk      *WorkspaceDisk
	WorkspaceSizeBytes *int64
	Top                []Process
	BashHistoryTail    *string
}

// WorkspaceDisk is the file system that holds /workspace.
type WorkspaceDisk struct {
	Path        string
	TotalBytes  int64
	UsedBytes   int64
	AvailBytes  int64
	UsedPercent float64
}

// Observe gathers stats, process table, workspace disk and size, and the
// tail of the shell history, all at once. It does not wake a paused space
// and is not activity (a dashboard watching a space must not keep it awake).
func (s *Service) Observe(ctx context.Context, c Caller, name string) (Observability, error) {
	if err := s.authorize(ctx, c, name, ActRead); err != nil {
		return Observability{}, err
	}
	var o Observability
	if err := ValidateName(name); err != nil {
		return o, SpaceNotFound()
	}
	sp, err := s.cfg.Engine.Get(ctx, name)
	if err != nil {
		return o, err
	}
	o.Status = sp.Status
	running := sp.Status == StatusRunning
	var (
		wg       sync.WaitGroup
		statsErr error
	)
	run := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	run(func() { o.Stats, statsErr = s.cfg.Engine.Stats(ctx, name) })
	run(func() {
		if top, err := s.cfg.Engine.Top(ctx, name); err == nil {
			o.Top = top
		}
	})
	run(func() { o.BashHistoryTail = s.historyTail(ctx, name) })
	if running {
		run(func() { o.WorkspaceDisk = s.workspaceDisk(ctx, name) })
		run(func() { o.WorkspaceSizeBytes = s.workspaceSize(ctx, name) })
	}
	wg.Wait()
	if statsErr != nil {
		return Observability{}, statsErr
	}
	return o, nil
}

// quietExec runs a short tool in the space; a missing tool or any failure
// gives ok=false, never an error.
func (s *Service) quietExec(ctx context.Context, name string, cmd ...string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, observeExecTimeout)
	defer cancel()
	var out bytes.Buffer
	code, err := s.cfg.Engine.Exec(ctx, name, ExecSpec{Cmd: cmd, Stdout: &out, MaxOutput: maxInternalOutput})
	return out.String(), err == nil && code == 0
}

func (s *Service) workspaceDisk(ctx context.Context, name string) *WorkspaceDisk {
	out, ok := s.quietExec(ctx, name, "df", "-kP", WorkspacePath)
	if !ok {
		return nil
	}
	return parseDF(out)
}

// parseDF reads POSIX `df -kP` output.
func parseDF(out string) *WorkspaceDisk {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 {
		return nil
	}
	f := strings.Fields(lines[len(lines)-1])
	if len(f) < 6 {
		return nil
	}
	total, e1 := strconv.ParseInt(f[1], 10, 64)
	used, e2 := strconv.ParseInt(f[2], 10, 64)
	avail, e3 := strconv.ParseInt(f[3], 10, 64)
	if e1 != nil || e2 != nil || e3 != nil {
		return nil
	}
	d := &WorkspaceDisk{Path: WorkspacePath, TotalBytes: total << 10, UsedBytes: used << 10, AvailBytes: avail << 10}
	if used+avail > 0 {
		d.UsedPercent = float64(int(float64(used)*1000/float64(used+avail))) / 10
	}
	return d
}

func (s *Service) workspaceSize(ctx context.Context, name string) *int64 {
	out, ok := s.quietExec(ctx, name, "du", "-sk", WorkspacePath)
	if !ok {
		return nil
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return nil
	}
	kb, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return nil
	}
	b := kb << 10
	return &b
}

// historyTail returns the last commands of /workspace/.bash_history, one a
// line, without bash's #<epoch> lines.
func (s *Service) historyTail(ctx context.Context, name string) *string {
	// Only the tail is read, from where it starts: a huge (or sparse)
	// file costs no more than a small one.
	fi, err := s.cfg.Engine.StatPath(ctx, name, HistoryFile, true)
	if err != nil || fi.Type != TypeFile {
		return nil
	}
	_, rc, err := s.cfg.Engine.OpenFile(ctx, name, HistoryFile, max(fi.Size-historyTailBytes, 0))
	if err != nil {
		return nil
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, historyTailBytes))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil
	}
	tail := TailCommands(string(data), historyTailLines)
	return &tail
}

// TailCommands keeps the last n commands of a history file's text.
func TailCommands(text string, n int) string {
	entries, _ := ParseHistory([]byte(text + "\n"))
	if len(entries) > n {
		entries = entries[len(entries)-n:]
	}
	cmds := make([]string, len(entries))
	for i, e := range entries {
		cmds[i] = e.Command
	}
	return strings.Join(cmds, "\n")
}
