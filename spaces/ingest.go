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

	// DefaultPassCommands is the default of IngesterConfig.PassCommands.
	DefaultPassCommands = 500
	// DefaultPassBytes is the default of IngesterConfig.PassBytes.
	DefaultPassBytes = 1 << 20
	// DefaultSpaceHourCommands is the default of
	// IngesterConfig.SpaceHourCommands.
	DefaultSpaceHourCommands = 5000
	// DefaultSpaceHourBytes is the default of IngesterConfig.SpaceHourBytes.
	DefaultSpaceHourBytes = 8 << 20
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
	// ChunkBytes bounds the new part of a file held in memory at once (an
	// entry longer than that is cut); 0: 1 MiB.
	ChunkBytes int
	// MaxFileBytes is the largest history file read; a larger one is skipped
	// with a warning, since every pass that finds it changed reads it up to
	// the cursor. 0: 64 MiB.
	MaxFileBytes int64

	// PassCommands is the most commands one pass records of one space;
	// 0: DefaultPassCommands (500).
	PassCommands int
	// PassBytes is the most new bytes (past the cursor) one pass reads of
	// one space; 0: DefaultPassBytes (1 MiB).
	PassBytes int64
	// SpaceHourCommands and SpaceHourBytes bound what the passes of one
	// clock hour record of one space, over all its passes: commands
	// recorded and bytes read past the cursor. Beyond them a pass records
	// nothing but its space.shell.skipped row. 0: DefaultSpaceHourCommands
	// (5000) and DefaultSpaceHourBytes (8 MiB). Counted in memory: a
	// restart of the node starts the hour afresh.
	SpaceHourCommands int
	SpaceHourBytes    int64
	// BatchEvents is the most events recorded in one transaction, each
	// with the cursor after it; 0 or more than MaxHistoryBatch:
	// MaxHistoryBatch (500).
	BatchEvents int
}

// Ingester records the shell history of running spaces as space.shell audit
// events. It reads /workspace/.bash_history through the engine's file API
// (no process in the space) and keeps a cursor per space in the store.
//
// What code in a space writes to the file is bounded per pass: of each space
// a pass reads at most PassBytes bytes past the cursor (1 MiB) and records at
// most PassCommands commands (500), in transactions of at most BatchEvents
// rows (500), so other writers of the store get its connection in between.
// What lies beyond either bound, up to the file's size when the pass
// started, is skipped, not queued: the cursor moves past it, and one
// space.shell.skipped event (actor shell) records it, with meta "bytes" (how
// many bytes were not recorded) and "commands" (an estimate of how many
// commands they hold, from the commands per byte of what was read; omitted
// when none is known). A file replaced or truncated every pass is read from
// its start every pass, within the same bounds.
type Ingester struct {
	eng      Engine
	st       Store
	clock    Clock
	log      *slog.Logger
	every    time.Duration
	chunk    int
	maxFile  int64
	passCmds int
	passLen  int64
	batch    int
	hourCmds int
	hourLen  int64

	// spent is what each space used of its hour's budget (under pass).
	spent map[string]*hourBudget

	pass sync.Mutex // one pass at a time, so a cursor is never read twice

	loop Loop
}

// NewIngester returns an Ingester; it does nothing until Start or IngestOnce.
// It panics when cfg.Service is nil.
func NewIngester(cfg IngesterConfig) *Ingester {
	if cfg.Service == nil {
		panic("spaces: IngesterConfig.Service is required")
	}
	in := &Ingester{
		eng:      cfg.Service.cfg.Engine,
		st:       cfg.Service.cfg.Store,
		clock:    cfg.Clock,
		log:      cfg.Logger,
		every:    cfg.Interval,
		chunk:    cfg.ChunkBytes,
		maxFile:  cfg.MaxFileBytes,
		passCmds: cfg.PassCommands,
		passLen:  cfg.PassBytes,
		batch:    cfg.BatchEvents,
		hourCmds: cfg.SpaceHourCommands,
		hourLen:  cfg.SpaceHourBytes,
		spent:    map[string]*hourBudget{},
	}
	if in.hourCmds <= 0 {
		in.hourCmds = DefaultSpaceHourCommands
	}
	if in.hourLen <= 0 {
		in.hourLen = DefaultSpaceHourBytes
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
	if in.passCmds <= 0 {
		in.passCmds = DefaultPassCommands
	}
	if in.passLen <= 0 {
		in.passLen = DefaultPassBytes
	}
	if in.batch <= 0 || in.batch > MaxHistoryBatch {
		in.batch = MaxHistoryBatch
	}
	return in
}

// Start runs a pass now and then every Interval, until Close or until ctx
// ends. Starting a started or closed Ingester does nothing.
func (in *Ingester) Start(ctx context.Context) {
	// IngestOnce logs its own failures; the next pass tries again.
	in.loop.Start(ctx, in.every, true, func(ctx context.Context) { _ = in.IngestOnce(ctx) })
}

// Close stops the loop of Start and waits for a pass under way to end.
func (in *Ingester) Close() { in.loop.Close() }

// IngestOnce records what is new in the history of every running space,
// within the bounds of one pass (see Ingester). Paused and stopped spaces
// are skipped. A failure in one space is logged and does not stop the
// others; IngestOnce returns every failure, joined.
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
		n, skipped, err := in.ingestSpace(ctx, sp.Name, sp.Created, now, in.budget(sp.Name, now))
		if err != nil {
			in.log.Error("ingesting shell history", "space", sp.Name, "err", err)
			errs = append(errs, fmt.Errorf("space %s: %w", sp.Name, err))
		}
		if n == 0 && skipped == 0 {
			continue
		}
		in.log.Debug("recorded shell history", "space", sp.Name, "commands", n)
		// Shell commands (and a skipped flood of them) are activity, so
		// the space is not put to sleep under someone typing into it.
		if err := in.st.Touch(ctx, sp.Name, now); err != nil {
			in.log.Error("recording activity", "space", sp.Name, "err", err)
			errs = append(errs, fmt.Errorf("space %s: %w", sp.Name, err))
		}
	}
	return errors.Join(errs...)
}

// HistoryBackdate is how long before the previous pass a new history
// entry may be dated: bash writes a command's line when the command ends,
// with the time it started, so a long command is found after a pass that
// ran while it did.
const HistoryBackdate = time.Hour

// hourBudget is what one space used of the bounds of one clock hour.
type hourBudget struct {
	hour time.Time
	cmds int
	read int64
}

// budget returns the budget of space for the hour of now, forgetting the
// spaces whose hour is over.
func (in *Ingester) budget(space string, now time.Time) *hourBudget {
	hour := now.Truncate(time.Hour)
	for name, b := range in.spent {
		if !b.hour.Equal(hour) {
			delete(in.spent, name)
		}
	}
	b := in.spent[space]
	if b == nil {
		b = &hourBudget{hour: hour}
		in.spent[space] = b
	}
	return b
}

// ingestSpace records what is new in the history file of one space, within
// the bounds of one pass and what is left of the space's hour (spent), and
// returns how many commands it recorded and how many bytes it skipped.
//
// Entries are dated by their "#<epoch>" line, clamped into the window the
// pass can vouch for: not before the space was created, nor more than
// HistoryBackdate before the previous pass that saved the cursor, and not
// after now. The time the file claimed is kept in meta
// "reportedTs" when it was moved.
//
// The pass takes the file as its stat found it: what is new is the bytes from
// the cursor (or from 0, for a file truncated or replaced) up to the stat's
// size, of which it reads passLen at most. Events are saved in batches of at
// most batch rows, each with the cursor just past its last command, so a
// failure or a restart part way neither loses nor repeats a command.
func (in *Ingester) ingestSpace(ctx context.Context, name string, created, now time.Time, spent *hourBudget) (recorded int, skipped int64, err error) {
	fi, err := in.eng.StatPath(ctx, name, HistoryFile, false)
	switch {
	case errors.Is(err, ErrNotFound):
		return 0, 0, nil // no history yet, or the space just went away
	case err != nil:
		return 0, 0, fmt.Errorf("reading history file information: %w", err)
	case fi.Type != TypeFile:
		// A symlink or folder is not bash's doing; it is not followed.
		return 0, 0, nil
	}
	cur, err := in.st.HistoryCursor(ctx, name)
	if err != nil {
		return 0, 0, err
	}
	if fi.Size == cur.Size && fi.MTime.Equal(cur.MTime) {
		return 0, 0, nil
	}
	// The window entries are dated into (see above).
	lo := created
	if !cur.SavedAt.IsZero() {
		lo = cur.SavedAt.Add(-HistoryBackdate)
	}
	if lo.IsZero() || lo.After(now) {
		lo = now
	}
	if lo.Before(created) {
		lo = created
	}
	maxCmds := max(min(in.passCmds, in.hourCmds-spent.cmds), 0)
	if fi.Size > in.maxFile {
		in.log.Warn("history file too large to ingest", "space", name, "size", fi.Size, "max", in.maxFile)
		// Noted as read, so the warning comes again only when it changes.
		cur.Size, cur.MTime, cur.SavedAt = fi.Size, fi.MTime, now
		return 0, 0, in.st.SaveHistory(ctx, name, cur, nil)
	}
	start := cur.Offset
	if fi.Size < start {
		start = 0 // truncated
	}

	_, rc, err := in.eng.OpenFile(ctx, name, HistoryFile, 0)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrForbidden) {
		return 0, 0, nil // gone, or replaced by something other than a file since the stat
	}
	if err != nil {
		return 0, 0, fmt.Errorf("reading history file: %w", err)
	}
	defer rc.Close()

	head := make([]byte, historyHeadBytes)
	hn, err := io.ReadFull(rc, head)
	head = head[:hn]
	headEOF := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	if err != nil && !headEOF {
		return 0, 0, fmt.Errorf("reading history file: %w", err)
	}
	if start > 0 {
		n := min(start, historyHeadBytes)
		if int64(len(head)) < n || !bytes.Equal(headHash(head[:n]), cur.HeadHash) {
			start = 0 // replaced: what was recorded is not the start of this file
		}
	}

	// window is how much of what is new this pass reads.
	window := max(min(fi.Size-start, in.passLen, in.hourLen-spent.read), 0)
	spent.read += window
	// buf holds the unconsumed bytes read, up to readEnd in the file.
	var (
		buf     []byte
		readEnd = start
		realEOF bool // the file ended before the window did
	)
	if start <= int64(len(head)) {
		n := min(int64(len(head))-start, window)
		buf = append(make([]byte, 0, max(min(int64(in.chunk), window), n)), head[start:start+n]...)
		readEnd += n
		realEOF = headEOF && readEnd == int64(len(head))
	} else {
		// The rest is read from where it starts, not through what is
		// before it: a large (or sparse) file costs only what is new.
		rc.Close()
		_, rc, err = in.eng.OpenFile(ctx, name, HistoryFile, start)
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrForbidden) {
			return 0, 0, nil
		}
		if err != nil {
			return 0, 0, fmt.Errorf("reading history file: %w", err)
		}
		defer rc.Close()
		buf = make([]byte, 0, min(int64(in.chunk), window))
	}
	lr := &io.LimitedReader{R: rc, N: start + window - readEnd}
	done := realEOF || lr.N == 0 // nothing more of the window to read

	var (
		offset   = start // the end of what is recorded: the cursor's offset
		pending  []Event // recorded at the next save, with offset
		counting bool    // the command bound is reached: commands are counted, not recorded
		counted  int     // complete commands found past the command bound
		countedN int64   // the bytes they (and blank entries) take
	)
	cursorAt := func(off int64) HistoryCursor {
		return HistoryCursor{Offset: off, Size: -1, HeadHash: headHash(head[:min(off, int64(len(head)))]), SavedAt: now}
	}
	flush := func() error {
		if err := in.st.SaveHistory(ctx, name, cursorAt(offset), pending); err != nil {
			return err
		}
		recorded += len(pending)
		spent.cmds += len(pending)
		pending = nil
		return nil
	}
	// take records the commands of data, up to the bounds, then counts
	// the rest; it returns how many bytes of data it consumed.
	take := func(data []byte, atEOF bool) (int, error) {
		used := 0
		for !counting {
			left := maxCmds - recorded - len(pending)
			if left == 0 {
				counting = true
				break
			}
			entries, n := parseHistoryN(data[used:], atEOF, min(left, in.batch-len(pending)))
			if n == 0 {
				break
			}
			used += n
			offset += int64(n)
			for _, e := range entries {
				pending = append(pending, shellEvent(name, e, lo, now))
			}
			if len(pending) == in.batch {
				if err := flush(); err != nil {
					return used, err
				}
			}
		}
		if counting {
			k, n := countHistory(data[used:], atEOF)
			counted += k
			countedN += int64(n)
			used += n
		}
		return used, nil
	}

	for {
		if !done {
			n, err := io.ReadFull(lr, buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			readEnd += int64(n)
			switch {
			case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
				realEOF, done = lr.N > 0, true
			case err != nil:
				return recorded, 0, fmt.Errorf("reading history file: %w", err)
			}
			done = done || lr.N == 0
		}
		// The last entry of the window is complete only where the file
		// ends; where the byte bound cuts it, it is skipped.
		final := realEOF || (done && readEnd == fi.Size)
		n, err := take(buf, final)
		if err != nil {
			return recorded, 0, err
		}
		if n == 0 && !done && len(buf) == cap(buf) {
			// One entry larger than a chunk: take what fits; the rest
			// of it reads as commands without a time.
			in.log.Warn("history entry larger than a chunk", "space", name, "offset", readEnd-int64(len(buf)), "chunk", len(buf))
			if n, err = take(buf, true); err != nil {
				return recorded, 0, err
			}
			if n == 0 {
				n = len(buf) // one line larger than a chunk: garbage
				if counting {
					countedN += int64(n)
				} else {
					offset += int64(n)
				}
			}
		}
		buf = buf[:copy(buf, buf[n:])]
		if done {
			break
		}
	}

	end := HistoryCursor{Offset: offset, Size: fi.Size, MTime: fi.MTime, SavedAt: now}
	var beyond int64 // bytes of the file the byte bound left unread
	if !realEOF {
		beyond = max(fi.Size-readEnd, 0)
	}
	if beyond == 0 && counted == 0 {
		end.HeadHash = headHash(head[:min(offset, int64(len(head)))])
		if err := in.st.SaveHistory(ctx, name, end, pending); err != nil {
			return recorded, 0, err
		}
		spent.cmds += len(pending)
		return recorded + len(pending), 0, nil
	}

	// Skipped: everything from offset on, up to the stat's size when bytes
	// were left unread; else up to what was read, less a line still being
	// written.
	end.Offset = readEnd - int64(len(buf))
	if beyond > 0 {
		end.Offset = fi.Size
	}
	end.HeadHash = headHash(head[:min(end.Offset, int64(len(head)))])
	skipped = end.Offset - offset
	// Commands are counted up to where the bounds stopped the reading; the
	// bytes past that (an entry the byte bound cut, and those not read)
	// are taken to hold as many commands a byte as those before.
	commands := int64(counted)
	seen, seenN := int64(recorded+len(pending)+counted), offset-start+countedN
	if rest := skipped - countedN; rest > 0 && seenN > 0 {
		commands += rest * seen / seenN
	}
	meta := map[string]any{"bytes": skipped}
	if commands > 0 {
		meta["commands"] = commands
	}
	if len(pending)+1 > in.batch {
		if err := flush(); err != nil {
			return recorded, 0, err
		}
	}
	skip := Event{Type: EventShellSkipped, Space: name, Actor: ShellActor, Time: now, Meta: meta}
	if err := in.st.SaveHistory(ctx, name, end, append(pending, skip)); err != nil {
		return recorded, 0, err
	}
	recorded += len(pending)
	spent.cmds += len(pending)
	in.log.Warn("shell history past the bounds of a pass skipped", "space", name,
		"bytes", skipped, "commands", commands, "maxCommands", maxCmds, "maxBytes", window)
	return recorded, skipped, nil
}

// shellEvent is the audit event of one history entry, reported by the
// space: an entry without a time gets the time of the pass that found it,
// and a time outside [lo, now] is moved to the nearer end, with the time
// the file claimed in meta "reportedTs" (Unix seconds).
func shellEvent(space string, e HistoryEntry, lo, now time.Time) Event {
	at := e.Time
	meta := map[string]any{"command": e.Command}
	switch {
	case at.IsZero():
		at = now
	case at.Before(lo) || at.After(now):
		meta["reportedTs"] = at.Unix()
		if at.Before(lo) {
			at = lo
		} else {
			at = now
		}
	}
	if cmd, cut := truncateUTF8(e.Command, maxShellCommand); cut {
		meta["command"], meta["truncated"] = cmd, true
	}
	return Event{Type: EventShell, Space: space, Actor: ShellActor, Time: at, Meta: meta, Source: SourceSpace}
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
