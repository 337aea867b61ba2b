package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

const (
	selectForwardsSQL = `SELECT space, port, node_port, https, created_by, created_at FROM forwards ORDER BY node_port`
	insertForwardSQL  = `INSERT INTO forwards (space, port, node_port, https, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)`
	deleteForwardSQL  = `DELETE FROM forwards WHERE space = ? AND port = ?`
	deleteForwardsSQL = `DELETE FROM forwards WHERE space = ?`
)

// Forwards returns every forwarded port, sorted by node port.
func (s *Store) Forwards(ctx context.Context) ([]spaces.Forward, error) {
	rows, err := s.ro.QueryContext(ctx, selectForwardsSQL)
	if err != nil {
		return nil, fmt.Errorf("listing forwards: %w", err)
	}
	defer rows.Close()
	var out []spaces.Forward
	for rows.Next() {
		var f spaces.Forward
		var created int64
		if err := rows.Scan(&f.Space, &f.Port, &f.NodePort, &f.HTTPS, &f.CreatedBy, &created); err != nil {
			return nil, fmt.Errorf("reading a forward: %w", err)
		}
		f.Created = time.UnixMilli(created).UTC()
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing forwards: %w", err)
	}
	return out, nil
}

// AddForward stores f; spaces.ErrExists when its node port, or its space
// and port, are taken.
func (s *Store) AddForward(ctx context.Context, f spaces.Forward) (err error) {
	defer s.mapFull(&err)
	_, err = s.rw.ExecContext(ctx, insertForwardSQL, f.Space, f.Port, f.NodePort, f.HTTPS, f.CreatedBy, f.Created.UnixMilli())
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return spaces.Errorf(spaces.ErrExists, "node port %d or port %d of space %s is already forwarded", f.NodePort, f.Port, f.Space)
	}
	if err != nil {
		return fmt.Errorf("storing a forward: %w", err)
	}
	return nil
}

// DeleteForward removes the forward of space's port; spaces.ErrNotFound
// when there is none.
func (s *Store) DeleteForward(ctx context.Context, space string, port uint16) (err error) {
	defer s.mapFull(&err)
	res, err := s.rw.ExecContext(ctx, deleteForwardSQL, space, port)
	if err != nil {
		return fmt.Errorf("removing a forward: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return spaces.Errorf(spaces.ErrNotFound, "port %d of space %s is not forwarded", port, space)
	}
	return nil
}

// DeleteForwards removes every forward of space.
func (s *Store) DeleteForwards(ctx context.Context, space string) (err error) {
	defer s.mapFull(&err)
	if _, err := s.rw.ExecContext(ctx, deleteForwardsSQL, space); err != nil {
		return fmt.Errorf("removing the forwards of %s: %w", space, err)
	}
	return nil
}
