package spaces

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// SleeperConfig holds every dependency of a Sleeper.
type SleeperConfig struct {
	// Service is required: the Sleeper lists and pauses through it.
	Service *Service
	// Clock decides when a space is idle; nil means the Service's clock.
	Clock Clock
	// IdleTimeout is how long a space may go without activity before it is
	// paused (IDLE_TIMEOUT_MS). Zero or less turns auto-sleep off.
	IdleTimeout time.Duration
	// Interval is the time between passes; zero means IdleTimeout/4, at most
	// 30s and at least 1s.
	Interval time.Duration
	// Logger nil means the Service's logger.
	Logger *slog.Logger
	// Only, when set, limits the Sleeper to the spaces it accepts (tests
	// that share an engine with other tests use it).
	Only func(name string) bool
}

// Sleeper pauses running spaces that have been idle for IdleTimeout. The
// definition of activity is in docs/AUTOSLEEP.md.
type Sleeper struct {
	svc      *Service
	clock    Clock
	idle     time.Duration
	interval time.Duration
	log      *slog.Logger
	only     func(string) bool

	loop Loop
}

// NewSleeper returns a Sleeper; nothing runs until Start.
func NewSleeper(cfg SleeperConfig) *Sleeper {
	if cfg.Service == nil {
		panic("spaces: SleeperConfig.Service is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = cfg.Service.clock
	}
	if cfg.Logger == nil {
		cfg.Logger = cfg.Service.log
	}
	if cfg.Interval <= 0 {
		cfg.Interval = min(cfg.IdleTimeout/4, 30*time.Second)
		cfg.Interval = max(cfg.Interval, time.Second)
	}
	return &Sleeper{
		svc:      cfg.Service,
		clock:    cfg.Clock,
		idle:     cfg.IdleTimeout,
		interval: cfg.Interval,
		log:      cfg.Logger.With("loop", "auto-sleep"),
		only:     cfg.Only,
	}
}

// Enabled reports whether auto-sleep is on (IdleTimeout above zero).
func (s *Sleeper) Enabled() bool { return s.idle > 0 }

// Interval is the time between two passes of the loop.
func (s *Sleeper) Interval() time.Duration { return s.interval }

// Start runs Tick every Interval until ctx ends or Close is called. It does
// nothing when auto-sleep is off, or on a second call.
func (s *Sleeper) Start(ctx context.Context) {
	if !s.Enabled() {
		return
	}
	// Tick logs what goes wrong; the next pass tries again.
	s.loop.Start(ctx, s.interval, false, func(ctx context.Context) { _, _ = s.Tick(ctx) })
}

// Close stops the loop and waits for a pass in progress to end.
func (s *Sleeper) Close() { s.loop.Close() }

// Tick is one pass: it pauses, as CallerAutoSleep(), every running space that
// is not busy and whose last activity is at least IdleTimeout old. It lists
// the spaces once; an error with one space is logged, joined into err and
// does not stop the others. paused names the spaces it paused.
func (s *Sleeper) Tick(ctx context.Context) (paused []string, err error) {
	if !s.Enabled() {
		return nil, nil
	}
	list, err := s.svc.List(ctx, CallerAutoSleep())
	if err != nil {
		s.log.Error("listing spaces", "err", err)
		return nil, fmt.Errorf("listing spaces: %w", err)
	}
	now := s.clock.Now()
	var errs []error
	for _, sp := range list {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		if s.only != nil && !s.only(sp.Name) {
			continue
		}
		if sp.Status != StatusRunning || s.svc.busy.busy(sp.Name) || now.Sub(sp.LastActivity) < s.idle {
			continue
		}
		ok, err := s.svc.sleepIfIdle(ctx, sp, now, s.idle)
		if errors.Is(err, ErrConflict) {
			// A command is starting in it (one the node did not start,
			// such as a docker exec): busy, not a failure; the next pass
			// tries again.
			s.log.Info("not pausing idle space: a command is starting in it", "space", sp.Name, "err", err)
			continue
		}
		if err != nil {
			s.log.Error("pausing idle space", "space", sp.Name, "err", err)
			errs = append(errs, fmt.Errorf("pausing idle space %s: %w", sp.Name, err))
			continue
		}
		if ok {
			s.log.Info("paused idle space", "space", sp.Name, "lastActivity", sp.LastActivity, "idle", now.Sub(sp.LastActivity).Round(time.Second))
			paused = append(paused, sp.Name)
		}
	}
	return paused, errors.Join(errs...)
}

// sleepIfIdle pauses sp, whose listed activity is at least idle before now,
// unless it turns out to be active after all: new shell history, or, under
// the space's lock (so no start, resume or file access interleaves), a
// running exec, an open terminal or activity recorded since the list.
// Pausing records space.pause by auto-sleep and is not itself activity.
func (s *Service) sleepIfIdle(ctx context.Context, sp Space, now time.Time, idle time.Duration) (bool, error) {
	if err := s.noteHistory(ctx, sp.Name, sp.LastActivity, now); err != nil {
		return false, err
	}
	unlock := s.locks.Lock(sp.Name)
	defer unlock()
	if s.busy.busy(sp.Name) {
		return false, nil
	}
	act, err := s.cfg.Store.SpaceActivity(ctx, sp.Name)
	if err != nil {
		return false, err
	}
	s.applyActivity(&sp, act)
	if now.Sub(sp.LastActivity) < idle {
		return false, nil
	}
	meta := map[string]any{"idleMs": now.Sub(sp.LastActivity).Milliseconds()}
	if err := s.audit(ctx, CallerAutoSleep(), sp.Name, EventPause, meta); err != nil {
		return false, err
	}
	if err := s.cfg.Engine.Pause(ctx, sp.Name); err != nil {
		return false, err
	}
	// An exec marks the space busy before it reaches the engine, without the
	// lock; one that began between the check above and the pause would be
	// frozen. Undo the pause for it.
	if s.busy.busy(sp.Name) {
		if err := s.audit(ctx, CallerAutoSleep(), sp.Name, EventStart, map[string]any{"reason": "busy"}); err != nil {
			return false, err
		}
		return false, s.resumeLocked(ctx, sp.Name)
	}
	return true, nil
}

// noteHistory records the time of the newest shell history of a space as
// activity when it is later than last. The Ingester records new commands as
// activity too, but only on its next pass; this catches a command typed
// since then, and works with the Ingester off.
func (s *Service) noteHistory(ctx context.Context, name string, last, now time.Time) error {
	// The pass visits spaces one after another: one whose agent stalls
	// must not hold up the others.
	ctx, cancel := context.WithTimeout(ctx, internalCallTimeout)
	defer cancel()
	fi, err := s.cfg.Engine.StatPath(ctx, name, HistoryFile, false)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading shell history time: %w", err)
	}
	at := fi.MTime
	if fi.Type != TypeFile || !at.After(last) {
		return nil
	}
	if at.After(now) {
		at = now
	}
	if err := s.cfg.Store.Touch(ctx, name, at); err != nil {
		return fmt.Errorf("recording shell history activity: %w", err)
	}
	return nil
}
