package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

// CreateSession stores s and deletes the sessions expired at now.
func (s *Store) CreateSession(ctx context.Context, sess spaces.Session, now time.Time) (err error) {
	defer s.mapFull(&err)
	tx, err := s.rw.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("creating session: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, now.UnixMilli()); err != nil {
		return fmt.Errorf("creating session: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sessions (token_hash, key_hash, issued_at, expires_at) VALUES (?, ?, ?, ?)`,
		sess.TokenHash, sess.KeyHash, sess.IssuedAt.UnixMilli(), sess.ExpiresAt.UnixMilli()); err != nil {
		return fmt.Errorf("creating session: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("creating session: %w", err)
	}
	return nil
}

// Session returns the session of tokenHash, or spaces.ErrNotFound.
func (s *Store) Session(ctx context.Context, tokenHash []byte) (spaces.Session, error) {
	sess := spaces.Session{TokenHash: tokenHash}
	var issued, expires int64
	err := s.ro.QueryRowContext(ctx, `SELECT key_hash, issued_at, expires_at FROM sessions WHERE token_hash = ?`, tokenHash).
		Scan(&sess.KeyHash, &issued, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return spaces.Session{}, spaces.Errorf(spaces.ErrNotFound, "no such session")
	case err != nil:
		return spaces.Session{}, fmt.Errorf("reading session: %w", err)
	}
	sess.IssuedAt, sess.ExpiresAt = time.UnixMilli(issued).UTC(), time.UnixMilli(expires).UTC()
	return sess, nil
}

// ExtendSession sets the expiry of the session of tokenHash.
func (s *Store) ExtendSession(ctx context.Context, tokenHash []byte, expires time.Time) (err error) {
	defer s.mapFull(&err)
	if _, err := s.rw.ExecContext(ctx, `UPDATE sessions SET expires_at = ? WHERE token_hash = ?`, expires.UnixMilli(), tokenHash); err != nil {
		return fmt.Errorf("extending session: %w", err)
	}
	return nil
}

// DeleteSession removes the session of tokenHash.
func (s *Store) DeleteSession(ctx context.Context, tokenHash []byte) (err error) {
	defer s.mapFull(&err)
	if _, err := s.rw.ExecContext(ctx, `DELETE FROM sessions WHERE token_hash = ?`, tokenHash); err != nil {
		return fmt.Errorf("deleting session: %w", err)
	}
	return nil
}
