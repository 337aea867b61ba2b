package spaces

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"
)

const (
	// ShellActor is the actor of space.shell events.
	ShellActor = "shell"
	// maxShellCommand bounds the command kept in one space.shell event.
	maxShellCommand = 4096
	// historyHeadBytes is how much of the file's start the cursor hashes to
	// tell an appended file from a replaced one.
	historyHeadBytes = 4096
)

// IngesterConfig holds every dependency of an Ingester.
type IngesterConfig struct {
	// Service gives the engine and the store; required.
	Service *Service
	// Clock tells the time of a pass; nil: the service's clock.
	Clock Clock
	// Interval is the time between passes of Start; 0: 5 seconds.
	Interval time.Duration
	// Logger receives failures; nil: the service's logger.
	Logger *slog.Logger
	// ChunkBytes bounds the new part of a file held in memory and recorded
	// in one transaction; 0: 1 MiB.
	ChunkBytes int
	// MaxFileBytes is the largest history file read; a larger one is skipped
	// with a warning, since every pass that finds it changed reads it whole.
	// 0: 64 MiB.
	MaxFileBytes int64
}

// Ingester records the shell history of running spaces as space.shell audit
// events. It reads /workspace/.bash_history through the engine's file API
// (no process in the space) and keeps a cursor per space in the store.
type Ingester struct {
	eng     Engine
	st      Store
	clock   Clock
	log     *slog.Logger
	every   time.Duration
	chunk   int
	maxFile int64

	pass sync.Mutex // one pass at a time, so a cursor is never read twice

	mu     sync.Mutex
	cancel context.CancelFunc
	closed bool
	wg     sync.WaitGroup
}

// NewIngester returns an Ingester; it does nothing until Start or IngestOnce.
// It panics when cfg.Service is nil.
func NewIngester(cfg IngesterConfig) *Ingester {
	if cfg.Service == nil {
		panic("spaces: IngesterConfig.Service is required")
	}
	in := &Ingester{
		eng:     cfg.Service.cfg.Engine,
		st:      cfg.Service.cfg.Store,
		clock:   cfg.Clock,
		log:     cfg.Logger,
		every:   cfg.Interval,
		chunk:   cfg.ChunkBytes,
		maxFile: cfg.MaxFileBytes,
	}
	if in.clock == nil {
		in.clock = cfg.Service.clock
	}
	if in.log == nil {
		in.log = cfg.Service.log
	}
	if in.every <= 0 {
		in.every = 5 * time.Second
	}
	if in.chunk <= 0 {
		in.chunk = 1 << 20
	}
	if in.maxFile <= 0 {
		in.maxFile = 64 << 20
	}
	return in
}

// Start runs a pass now and then every Interval, until Close or until ctx
// ends. Starting a started or closed Ingester does nothing.
func (in *Ingester) Start(ctx context.Context) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cancel != nil || in.closed {
		return
	}
	ctx, in.cancel = context.WithCancel(ctx)
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		tick := time.NewTicker(in.every)
		defer tick.Stop()
		for {
			_ = in.IngestOnce(ctx) // it logs its own failures
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// Close stops the loop of Start and waits for a pass under way to end.
func (in *Ingester) Close() {
	in.mu.Lock()
	in.closed = true
	if in.cancel != nil {
		in.cancel()
	}
	in.mu.Unlock()
	in.wg.Wait()
}

// IngestOnce records what is new in the history of every running space.
// Paused and stopped spaces are skipped. A failure in one space is logged and
// does not stop the others; IngestOnce returns every failure, joined.
func (in *Ingester) IngestOnce(ctx context.Context) error {
	in.pass.Lock()
	defer in.pass.Unlock()
	list, err := in.eng.List(ctx)
	if err != nil {
		in.log.Error("listing spaces for shell history", "err", err)
		return fmt.Errorf("listing spaces: %w", err)
	}
	now := in.clock.Now()
	var errs []error
	for _, sp := range list {
		if sp.Status != StatusRunning {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := in.ingestSpace(ctx, sp.Name, now)
		if err != nil {
			in.log.Error("ingesting shell history", "space", sp.Name, "err", err)
			errs = append(errs, fmt.Errorf("space %s: %w", sp.Name, err))
		}
		if n == 0 {
			continue
		}
		in.log.Debug("recorded shell history", "space", sp.Name, "commands", n)
		// Shell commands are activity, so the space is not put to sleep
		// under someone typing into it.
		if err := in.st.Touch(ctx, sp.Name, now); err != nil {
			in.log.Error("recording activity", "space", sp.Name, "err", err)
			errs = append(errs, fmt.Errorf("space %s: %w", sp.Name, err))
		}
	}
	return errors.Join(errs...)
}

// ingestSpace records what is new in the history file of one space and
// returns how many commands it recorded.
func (in *Ingester) ingestSpace(ctx context.Context, name string, now time.Time) (int, error) {
	fi, err := in.eng.StatPath(ctx, name, HistoryFile)
	switch {
	case errors.Is(err, ErrNotFound):
		return 0, nil // no history yet, or the space just went away
	case err != nil:
		return 0, fmt.Errorf("reading history file information: %w", err)
	case fi.Type != TypeFile:
		// A symlink or folder is not bash's doing; it is not followed.
		return 0, nil
	}
	cur, err := in.st.HistoryCursor(ctx, name)
	if err != nil {
		return 0, err
	}
	if fi.Size == cur.Size && fi.MTime.Equal(cur.MTime) {
		return 0, nil
	}
	if fi.Size > in.maxFile {
		in.log.Warn("history file too large to ingest", "space", name, "size", fi.Size, "max", in.maxFile)
		// Noted as read, so the warning comes again only when it changes.
		cur.Size, cur.MTime = fi.Size, fi.MTime
		return 0, in.st.SaveHistory(ctx, name, cur, nil)
	}
	start := cur.Offset
	if fi.Size < start {
		start = 0 // truncated
	}

	_, rc, err := in.eng.ReadFile(ctx, name, HistoryFile)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading history file: %w", err)
	}
	if rc == nil {
		return 0, nil // replaced by something other than a file since the stat
	}
	defer rc.Close()

	head := make([]byte, historyHeadBytes)
	hn, err := io.ReadFull(rc, head)
	head = head[:hn]
	eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	if err != nil && !eof {
		return 0, fmt.Errorf("reading history file: %w", err)
	}
	if start > 0 {
		n := min(start, historyHeadBytes)
		if int64(len(head)) < n || !bytes.Equal(headHash(head[:n]), cur.HeadHash) {
			start = 0 // replaced: what was recorded is not the start of this file
		}
	}

	// buf holds the unconsumed bytes from offset on.
	var buf []byte
	if start <= int64(len(head)) {
		buf = append(make([]byte, 0, in.chunk), head[start:]...)
	} else {
		_, err := io.CopyN(io.Discard, rc, start-int64(len(head)))
		switch {
		case errors.Is(err, io.EOF):
			return 0, nil // truncated since the stat: the next pass sees it
		case err != nil:
			return 0, fmt.Errorf("reading history file: %w", err)
		}
		buf = make([]byte, 0, in.chunk)
	}
	offset, recorded := start, 0
	for {
		if !eof {
			n, err := io.ReadFull(rc, buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			switch {
			case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
				eof = true
			case err != nil:
				return recorded, fmt.Errorf("reading history file: %w", err)
			}
		}
		entries, consumed := parseHistory(buf, eof)
		if consumed == 0 && !eof && len(buf) == cap(buf) {
			// One entry larger than a chunk: record what fits; the rest
			// of it reads as commands without a time.
			if entries, consumed = parseHistory(buf, true); consumed == 0 {
				consumed = len(buf) // one line larger than a chunk: garbage
			}
			in.log.Warn("history entry larger than a chunk", "space", name, "offset", offset, "chunk", len(buf))
		}
		offset += int64(consumed)
		next := HistoryCursor{Offset: offset, Size: -1, HeadHash: headHash(head[:min(offset, int64(len(head)))])}
		if eof {
			next.Size, next.MTime = fi.Size, fi.MTime
		}
		events := make([]Event, len(entries))
		for i, e := range entries {
			events[i] = shellEvent(name, e, now)
		}
		if err := in.st.SaveHistory(ctx, name, next, events); err != nil {
			return recorded, err
		}
		recorded += len(events)
		if eof {
			return recorded, nil
		}
		buf = buf[:copy(buf, buf[consumed:])]
	}
}

// shellEvent is the audit event of one history entry; an entry without a
// time gets the time of the pass that found it.
func shellEvent(space string, e HistoryEntry, now time.Time) Event {
	at := e.Time
	if at.IsZero() {
		at = now
	}
	meta := map[string]any{"command": e.Command}
	if cmd, cut := truncateUTF8(e.Command, maxShellCommand); cut {
		meta["command"], meta["truncated"] = cmd, true
	}
	return Event{Type: EventShell, Space: space, Actor: ShellActor, Time: at, Meta: meta}
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], true
}

func headHash(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}
