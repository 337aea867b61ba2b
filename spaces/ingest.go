package spaces

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
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
	// Only, when set, limits the Ingester to the spaces it accepts (tests
	// that share the engine), as SleeperConfig.Only does.
	Only func(name string) bool
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
	only     func(string) bool

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
		only:     cfg.Only,
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
		if sp.Status != StatusRunning || (in.only != nil && !in.only(sp.Name)) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Each space has a deadline of its own, so one whose agent stalls
		// does not hold up the pass (the cursor is saved per batch).
		sctx, cancel := context.WithTimeout(ctx, ingestSpaceTimeout)
		n, skipped, err := in.ingestSpace(sctx, sp.Name, sp.Created, now, in.budget(sp.Name, now))
		cancel()
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
