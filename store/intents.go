package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/adam91holt/clawdspace/spaces"
)

const (
	beginIntentSQL = `INSERT INTO intents (space, kind, node_run, detail, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (space) DO UPDATE SET
			kind = excluded.kind, node_run = excluded.node_run, detail = excluded.detail, created_at = excluded.created_at`
	endIntentSQL     = `DELETE FROM intents WHERE space = ?`
	selectIntentsSQL = `SELECT space, kind, node_run, detail, created_at FROM intents ORDER BY created_at, space`
)

// intentDetail is the JSON of intents.detail.
type intentDetail struct {
	VolumeExisted bool   `json:"volumeExisted,omitempty"`
	Image         string `json:"image,omitempty"`
	RemoveVolume  bool   `json:"removeVolume,omitempty"`
	Checkpoint    string `json:"checkpoint,omitempty"`
	State         string `json:"state,omitempty"`
	PoolMember    string `json:"poolMember,omitempty"`
}

// BeginIntent records in, replacing an earlier intent of the same space.
func (s *Store) BeginIntent(ctx context.Context, in spaces.Intent) (err error) {
	defer s.mapFull(&err)
	if in.Space == "" || in.Kind == "" {
		return spaces.Errorf(spaces.ErrInvalid, "space and kind are required")
	}
	detail, err := json.Marshal(intentDetail{VolumeExisted: in.VolumeExisted, Image: in.Image, RemoveVolume: in.RemoveVolume,
		Checkpoint: in.Checkpoint, State: string(in.State), PoolMember: in.PoolMember})
	if err != nil {
		return fmt.Errorf("encoding intent: %w", err)
	}
	if _, err := s.rw.ExecContext(ctx, beginIntentSQL, in.Space, in.Kind, in.NodeRun, string(detail), toMillis(in.Created)); err != nil {
		return fmt.Errorf("recording %s intent of %q: %w", in.Kind, in.Space, err)
	}
	return nil
}

// EndIntent removes the intent of space, if any.
func (s *Store) EndIntent(ctx context.Context, space string) (err error) {
	defer s.mapFull(&err)
	if _, err := s.rw.ExecContext(ctx, endIntentSQL, space); err != nil {
		return fmt.Errorf("clearing intent of %q: %w", space, err)
	}
	return nil
}

// Intents returns every recorded intent, oldest first.
func (s *Store) Intents(ctx context.Context) ([]spaces.Intent, error) {
	rows, err := s.ro.QueryContext(ctx, selectIntentsSQL)
	if err != nil {
		return nil, fmt.Errorf("listing intents: %w", err)
	}
	defer rows.Close()
	var out []spaces.Intent
	for rows.Next() {
		var (
			in      spaces.Intent
			detail  string
			created sql.NullInt64
		)
		if err := rows.Scan(&in.Space, &in.Kind, &in.NodeRun, &detail, &created); err != nil {
			return nil, fmt.Errorf("reading intent: %w", err)
		}
		var d intentDetail
		if err := json.Unmarshal([]byte(detail), &d); err != nil {
			return nil, fmt.Errorf("decoding intent of %q: %w", in.Space, err)
		}
		in.VolumeExisted, in.Image, in.RemoveVolume, in.Created = d.VolumeExisted, d.Image, d.RemoveVolume, fromMillis(created)
		in.Checkpoint, in.State, in.PoolMember = d.Checkpoint, spaces.Status(d.State), d.PoolMember
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing intents: %w", err)
	}
	return out, nil
}
