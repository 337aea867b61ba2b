package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

// Activity only moves forward: max() keeps a late, out-of-order Touch from
// winding last_activity back (and waking the auto-sleep too early). SQLite's
// multi-argument max() is NULL when any argument is, hence the coalesce.
const (
	touchSQL = `INSERT INTO space_activity (space, last_activity) VALUES (?, ?)
		ON CONFLICT (space) DO UPDATE SET
			last_activity = max(coalesce(space_activity.last_activity, 0), excluded.last_activity)`
	markStartedSQL = `INSERT INTO space_activity (space, last_activity, started_at) VALUES (?, ?, ?)
		ON CONFLICT (space) DO UPDATE SET
			started_at = excluded.started_at,
			last_activity = max(coalesce(space_activity.last_activity, 0), excluded.last_activity)`
	selectActivitySQL = `SELECT space, last_activity, started_at FROM space_activity`
	selectOneSQL      = `SELECT last_activity, started_at FROM space_activity WHERE space = ?`
	forgetSQL         = `DELETE FROM space_activity WHERE space = ?`
)

// Touch records activity in space at at, unless later activity is known.
func (s *Store) Touch(ctx context.Context, space string, at time.Time) (err error) {
	defer s.mapFull(&err)
	if space == "" {
		return spaces.Errorf(spaces.ErrInvalid, "space is required")
	}
	if _, err := s.rw.ExecContext(ctx, touchSQL, space, toMillis(at)); err != nil {
		return fmt.Errorf("touching space %q: %w", space, err)
	}
	return nil
}

// MarkStarted records that space was started at at. A start is activity too,
// so last activity moves up to at when it is earlier.
func (s *Store) MarkStarted(ctx context.Context, space string, at time.Time) (err error) {
	defer s.mapFull(&err)
	if space == "" {
		return spaces.Errorf(spaces.ErrInvalid, "space is required")
	}
	ms := toMillis(at)
	if _, err := s.rw.ExecContext(ctx, markStartedSQL, space, ms, ms); err != nil {
		return fmt.Errorf("marking space %q started: %w", space, err)
	}
	return nil
}

// Activity returns the known activity of every space. Times never recorded
// are the zero time.
func (s *Store) Activity(ctx context.Context) (map[string]spaces.SpaceActivity, error) {
	rows, err := s.ro.QueryContext(ctx, selectActivitySQL)
	if err != nil {
		return nil, fmt.Errorf("listing activity: %w", err)
	}
	defer rows.Close()

	out := make(map[string]spaces.SpaceActivity)
	for rows.Next() {
		var (
			space        string
			last, starts sql.NullInt64
		)
		if err := rows.Scan(&space, &last, &starts); err != nil {
			return nil, fmt.Errorf("reading activity: %w", err)
		}
		out[space] = spaces.SpaceActivity{LastActivity: fromMillis(last), StartedAt: fromMillis(starts)}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing activity: %w", err)
	}
	return out, nil
}

// SpaceActivity returns the known activity of one space (zero times when
// nothing is recorded), by its primary key.
func (s *Store) SpaceActivity(ctx context.Context, space string) (spaces.SpaceActivity, error) {
	var last, starts sql.NullInt64
	err := s.ro.QueryRowContext(ctx, selectOneSQL, space).Scan(&last, &starts)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return spaces.SpaceActivity{}, nil
	case err != nil:
		return spaces.SpaceActivity{}, fmt.Errorf("reading activity of %q: %w", space, err)
	}
	return spaces.SpaceActivity{LastActivity: fromMillis(last), StartedAt: fromMillis(starts)}, nil
}

// Forget drops what is known of space, typically after it was destroyed.
// Forgetting an unknown space is not an error.
func (s *Store) Forget(ctx context.Context, space string) (err error) {
	defer s.mapFull(&err)
	if _, err := s.rw.ExecContext(ctx, forgetSQL, space); err != nil {
		return fmt.Errorf("forgetting space %q: %w", space, err)
	}
	return nil
}
