package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

// DefaultEventLimit is the number of events Events returns when the query
// sets no positive limit.
const DefaultEventLimit = 200

const (
	insertEventSQL = `INSERT INTO audit (ts, space, type, actor, meta, source) VALUES (?, ?, ?, ?, ?, ?)`

	// The listings read newest first so that LIMIT stops early on the rowid
	// (or audit_space_id) b-tree; Events reverses the page in Go.
	selectEventsSQL = `SELECT id, ts, space, type, actor, meta, source FROM audit`
)

// Record appends e to the audit log. e.ID is ignored; a zero e.Time is
// recorded as the current time, since an audit row without a time is useless.
func (s *Store) Record(ctx context.Context, e spaces.Event) (err error) {
	defer s.mapFull(&err)
	if e.Type == "" {
		return spaces.Errorf(spaces.ErrInvalid, "event type is required")
	}
	args, err := eventArgs(e, time.Now())
	if err != nil {
		return fmt.Errorf("recording %s event: %w", e.Type, err)
	}
	if _, err := s.rw.ExecContext(ctx, insertEventSQL, args...); err != nil {
		return fmt.Errorf("recording %s event: %w", e.Type, err)
	}
	return nil
}

// Events returns the newest q.Limit events (DefaultEventLimit when q.Limit is
// not positive) that match q's filters, oldest first.
func (s *Store) Events(ctx context.Context, q spaces.AuditQuery) ([]spaces.Event, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultEventLimit
	}
	query, args := eventsQuery(q, limit)
	rows, err := s.ro.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	defer rows.Close()

	events := make([]spaces.Event, 0, min(limit, 64))
	for rows.Next() {
		var (
			e    spaces.Event
			ts   sql.NullInt64
			meta sql.NullString
		)
		if err := rows.Scan(&e.ID, &ts, &e.Space, &e.Type, &e.Actor, &meta, &e.Source); err != nil {
			return nil, fmt.Errorf("reading event: %w", err)
		}
		e.Time = fromMillis(ts)
		if e.Meta, err = decodeMeta(meta); err != nil {
			return nil, fmt.Errorf("reading event %d: %w", e.ID, err)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	slices.Reverse(events)
	return events, nil
}

// eventArgs are the values of insertEventSQL for e; a zero time becomes
// now.
func eventArgs(e spaces.Event, now time.Time) ([]any, error) {
	if e.Time.IsZero() {
		e.Time = now
	}
	meta, err := encodeMeta(e.Meta)
	if err != nil {
		return nil, err
	}
	source := e.Source
	if source == "" {
		source = spaces.SourceNode
	}
	return []any{e.Time.UnixMilli(), e.Space, e.Type, e.Actor, meta, source}, nil
}

// eventsQuery is the SQL of an audit query: newest first, walking the
// rowid (or the space index) backwards, so LIMIT stops the scan.
func eventsQuery(q spaces.AuditQuery, limit int) (string, []any) {
	var where []string
	var args []any
	if q.Space != "" {
		where, args = append(where, "space = ?"), append(args, q.Space)
	}
	if q.Type != "" {
		where, args = append(where, "type = ?"), append(args, q.Type)
	}
	if q.Actor != "" {
		where, args = append(where, "instr(lower(actor), lower(?)) > 0"), append(args, q.Actor)
	}
	if q.Before > 0 {
		where, args = append(where, "id < ?"), append(args, q.Before)
	}
	query := selectEventsSQL
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	return query + " ORDER BY id DESC LIMIT ?", append(args, limit)
}

// encodeMeta returns meta as a JSON object, or NULL when there is nothing in it.
func encodeMeta(meta map[string]any) (sql.NullString, error) {
	if len(meta) == 0 {
		return sql.NullString{}, nil
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return sql.NullString{}, fmt.Errorf("encoding meta: %w", err)
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

// decodeMeta is the inverse of encodeMeta. Numbers come back as float64, as
// from any JSON decoding into map[string]any.
func decodeMeta(meta sql.NullString) (map[string]any, error) {
	if !meta.Valid || meta.String == "" {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(meta.String), &m); err != nil {
		return nil, fmt.Errorf("decoding meta: %w", err)
	}
	return m, nil
}

// pruneChunk is the most rows one DELETE of PruneAudit removes, so other
// writers get the store's one write connection in between.
const pruneChunk = 5000

// PruneAudit deletes the events older than before (none when before is
// zero), then the oldest beyond the newest maxRows (none when maxRows is
// not positive), in chunks of pruneChunk rows, and returns how many it
// deleted.
func (s *Store) PruneAudit(ctx context.Context, before time.Time, maxRows int64) (_ int64, err error) {
	defer s.mapFull(&err)
	var total int64
	del := func(query string, arg any) error {
		for {
			res, err := s.rw.ExecContext(ctx, query, arg, pruneChunk)
			if err != nil {
				return fmt.Errorf("pruning the audit log: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("pruning the audit log: %w", err)
			}
			total += n
			if n < pruneChunk {
				return nil
			}
		}
	}
	if !before.IsZero() {
		if err := del(`DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE ts < ? ORDER BY id LIMIT ?)`, before.UnixMilli()); err != nil {
			return total, err
		}
	}
	if maxRows > 0 {
		// The id of the oldest row to keep: the OFFSET walks the rowid
		// b-tree from the newest end.
		var keep int64
		err := s.ro.QueryRowContext(ctx, `SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?`, maxRows-1).Scan(&keep)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return total, nil // no more rows than that
		case err != nil:
			return total, fmt.Errorf("pruning the audit log: %w", err)
		}
		if err := del(`DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE id < ? ORDER BY id LIMIT ?)`, keep); err != nil {
			return total, err
		}
	}
	return total, nil
}
