package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

// capsRow is the JSON a node's capabilities are stored as: the database's
// own format, with the same keys the API used when it was made.
type capsRow struct {
	GPU           bool   `json:"gpu"`
	GPUName       string `json:"gpuName,omitempty"`
	GPUMemory     string `json:"gpuMemory,omitempty"`
	Arch          string `json:"arch"`
	Platform      string `json:"platform"`
	CPUs          int    `json:"cpus,omitempty"`
	Memory        uint64 `json:"memory,omitempty"`
	MemoryFree    uint64 `json:"memoryFree,omitempty"`
	Spaces        *int   `json:"spaces,omitempty"`
	SpacesRunning *int   `json:"spacesRunning,omitempty"`
}

const (
	selectNodesSQL = `SELECT name, url, status, latency_ms, version, capabilities, last_seen, checked_at, problem
		FROM nodes ORDER BY name`
	upsertNodeSQL = `INSERT INTO nodes (name, url, status, latency_ms, version, capabilities, last_seen, checked_at, problem)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
			url = excluded.url, status = excluded.status, latency_ms = excluded.latency_ms,
			version = excluded.version, capabilities = excluded.capabilities,
			last_seen = excluded.last_seen, checked_at = excluded.checked_at, problem = excluded.problem`
)

// Nodes returns the cached health of every known node, by name.
func (s *Store) Nodes(ctx context.Context) ([]spaces.NodeHealth, error) {
	rows, err := s.ro.QueryContext(ctx, selectNodesSQL)
	if err != nil {
		return nil, fmt.Errorf("reading nodes: %w", err)
	}
	defer rows.Close()
	var out []spaces.NodeHealth
	for rows.Next() {
		var n spaces.NodeHealth
		var caps sql.NullString
		var seen, checked int64
		if err := rows.Scan(&n.Name, &n.URL, &n.Status, &n.LatencyMs, &n.Version, &caps, &seen, &checked, &n.Problem); err != nil {
			return nil, fmt.Errorf("reading nodes: %w", err)
		}
		if caps.Valid {
			var row capsRow
			if err := json.Unmarshal([]byte(caps.String), &row); err != nil {
				return nil, fmt.Errorf("reading capabilities of node %s: %w", n.Name, err)
			}
			c := spaces.NodeCapabilities(row)
			n.Capabilities = &c
		}
		if seen > 0 {
			n.LastSeen = time.UnixMilli(seen)
		}
		n.CheckedAt = time.UnixMilli(checked)
		out = append(out, n)
	}
	return out, rows.Err()
}

// PutNodes stores the health of nodes in one transaction.
func (s *Store) PutNodes(ctx context.Context, nodes []spaces.NodeHealth) (err error) {
	defer s.mapFull(&err)
	tx, err := s.rw.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storing nodes: %w", err)
	}
	defer tx.Rollback()
	for _, n := range nodes {
		var caps sql.NullString
		if n.Capabilities != nil {
			b, err := json.Marshal(capsRow(*n.Capabilities))
			if err != nil {
				return fmt.Errorf("storing node %s: %w", n.Name, err)
			}
			caps = sql.NullString{String: string(b), Valid: true}
		}
		var seen int64
		if !n.LastSeen.IsZero() {
			seen = n.LastSeen.UnixMilli()
		}
		if _, err := tx.ExecContext(ctx, upsertNodeSQL, n.Name, n.URL, n.Status, n.LatencyMs, n.Version, caps,
			seen, n.CheckedAt.UnixMilli(), n.Problem); err != nil {
			return fmt.Errorf("storing node %s: %w", n.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storing nodes: %w", err)
	}
	return nil
}
