package spaces

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// EventAuditPruned records that retention deleted old audit rows.
const EventAuditPruned = "audit.prune"

// Defaults of AuditRetentionConfig.
const (
	DefaultAuditMaxAge   = 90 * 24 * time.Hour
	DefaultAuditMaxRows  = 1_000_000
	defaultPruneInterval = time.Hour
)

// AuditRetentionConfig holds every dependency of an AuditRetention.
type AuditRetentionConfig struct {
	// Service gives the store; required.
	Service *Service
	// MaxAge deletes rows older than this; 0 keeps rows of any age.
	MaxAge time.Duration
	// MaxRows keeps only the newest this many rows; 0 keeps any number.
	MaxRows int64
	// Interval is the time between passes of Start; 0: an hour.
	Interval time.Duration
	// Clock and Logger default to the service's.
	Clock  Clock
	Logger *slog.Logger
}

// AuditRetention deletes audit rows past their age or beyond the row
// bound, a pass at start and then every Interval, and records each pass
// that deleted something as an audit.prune row (meta "deleted", "maxAge"
// in seconds, "maxRows").
type AuditRetention struct {
	cfg  AuditRetentionConfig
	loop Loop
}

// NewAuditRetention returns an AuditRetention; it does nothing until Start
// or PruneOnce. It panics when cfg.Service is nil.
func NewAuditRetention(cfg AuditRetentionConfig) *AuditRetention {
	if cfg.Service == nil {
		panic("spaces: AuditRetentionConfig.Service is required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = defaultPruneInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = cfg.Service.clock
	}
	if cfg.Logger == nil {
		cfg.Logger = cfg.Service.log
	}
	return &AuditRetention{cfg: cfg}
}

// Start prunes now and then every Interval until Close or until ctx ends.
func (a *AuditRetention) Start(ctx context.Context) {
	// PruneOnce logs its own failures; the next pass tries again.
	a.loop.Start(ctx, a.cfg.Interval, true, func(ctx context.Context) { _, _ = a.PruneOnce(ctx) })
}

// Close stops the loop of Start and waits for a pass under way to end.
func (a *AuditRetention) Close() { a.loop.Close() }

// PruneOnce deletes what is past the bounds now and returns how many rows
// it deleted.
func (a *AuditRetention) PruneOnce(ctx context.Context) (int64, error) {
	var before time.Time
	if a.cfg.MaxAge > 0 {
		before = a.cfg.Clock.Now().Add(-a.cfg.MaxAge)
	}
	if before.IsZero() && a.cfg.MaxRows <= 0 {
		return 0, nil
	}
	n, err := a.cfg.Service.cfg.Store.PruneAudit(ctx, before, a.cfg.MaxRows)
	if err != nil {
		a.cfg.Logger.Error("pruning the audit log", "err", err)
		return n, fmt.Errorf("pruning the audit log: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	a.cfg.Logger.Info("pruned the audit log", "deleted", n, "maxAge", a.cfg.MaxAge, "maxRows", a.cfg.MaxRows)
	meta := map[string]any{"deleted": n, "maxAge": int64(a.cfg.MaxAge / time.Second), "maxRows": a.cfg.MaxRows}
	if err := a.cfg.Service.cfg.Store.Record(ctx, Event{Type: EventAuditPruned, Actor: "retention", Time: a.cfg.Clock.Now(), Meta: meta}); err != nil {
		a.cfg.Logger.Error("recording an audit prune", "err", err)
	}
	return n, nil
}
