package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

const (
	selectCursorSQL = `SELECT offset, size, mtime_ns, head_hash, saved_at FROM history_cursor WHERE space = ?`
	upsertCursorSQL = `INSERT INTO history_cursor (space, offset, size, mtime_ns, head_hash, saved_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (space) DO UPDATE SET
			offset = excluded.offset, size = excluded.size,
			mtime_ns = excluded.mtime_ns, head_hash = excluded.head_hash, saved_at = excluded.saved_at`
)

// HistoryCursor returns how far the history of space was recorded, or the
// zero cursor when nothing was.
//
// Forget leaves cursors alone: a space destroyed without its volume and
// created again finds its old history file, whose commands are already in
// the audit log; a new file is told apart by the cursor's head hash.
func (s *Store) HistoryCursor(ctx context.Context, space string) (spaces.HistoryCursor, error) {
	var (
		c     spaces.HistoryCursor
		mtime int64
		saved int64
	)
	err := s.ro.QueryRowContext(ctx, selectCursorSQL, space).Scan(&c.Offset, &c.Size, &mtime, &c.HeadHash, &saved)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return spaces.HistoryCursor{}, nil
	case err != nil:
		return spaces.HistoryCursor{}, fmt.Errorf("reading history cursor of %q: %w", space, err)
	}
	if mtime != 0 {
		c.MTime = time.Unix(0, mtime).UTC()
	}
	if saved != 0 {
		c.SavedAt = time.UnixMilli(saved).UTC()
	}
	return c, nil
}

// SaveHistory records events (each of space) and sets the cursor of space in
// one transaction, so that a crash neither loses nor repeats a command. It
// takes at most spaces.MaxHistoryBatch events, so that one call holds the
// single write connection only briefly: the ingester saves a long history
// in several calls, each with the cursor after its events.
func (s *Store) SaveHistory(ctx context.Context, space string, cur spaces.HistoryCursor, events []spaces.Event) (err error) {
	defer s.mapFull(&err)
	if space == "" {
		return spaces.Errorf(spaces.ErrInvalid, "space is required")
	}
	if len(events) > spaces.MaxHistoryBatch {
		return spaces.Errorf(spaces.ErrInvalid, "%d history events in one save, more than %d", len(events), spaces.MaxHistoryBatch)
	}
	if cur.Offset < 0 {
		return spaces.Errorf(spaces.ErrInvalid, "history offset %d is negative", cur.Offset)
	}
	for _, e := range events {
		if e.Type == "" {
			return spaces.Errorf(spaces.ErrInvalid, "event type is required")
		}
		if e.Space != space {
			return spaces.Errorf(spaces.ErrInvalid, "event of space %q saved with the history of %q", e.Space, space)
		}
	}
	var mtime int64
	if !cur.MTime.IsZero() {
		mtime = cur.MTime.UnixNano()
	}
	hash := cur.HeadHash
	if hash == nil {
		hash = []byte{} // the column is NOT NULL
	}

	tx, err := s.rw.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("saving history of %q: %w", space, err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit

	if len(events) > 0 {
		stmt, err := tx.PrepareContext(ctx, insertEventSQL)
		if err != nil {
			return fmt.Errorf("saving history of %q: %w", space, err)
		}
		defer stmt.Close()
		now := time.Now()
		for _, e := range events {
			args, err := eventArgs(e, now)
			if err != nil {
				return fmt.Errorf("saving history of %q: %w", space, err)
			}
			if _, err := stmt.ExecContext(ctx, args...); err != nil {
				return fmt.Errorf("saving history of %q: recording event: %w", space, err)
			}
		}
	}
	var saved int64
	if !cur.SavedAt.IsZero() {
		saved = cur.SavedAt.UnixMilli()
	}
	if _, err := tx.ExecContext(ctx, upsertCursorSQL, space, cur.Offset, cur.Size, mtime, hash, saved); err != nil {
		return fmt.Errorf("saving history cursor of %q: %w", space, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("saving history of %q: committing: %w", space, err)
	}
	return nil
}
