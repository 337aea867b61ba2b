package spaces

import (
	"context"
	"time"
)

// Session is a signed-in browser: the hash of the random token its cookie
// holds, and of the API key it signed in with.
type Session struct {
	TokenHash []byte
	KeyHash   []byte
	// IssuedAt is when this token was issued; the node rotates old ones.
	IssuedAt time.Time
	// ExpiresAt ends the session; the node moves it on with use.
	ExpiresAt time.Time
}

// SessionStore keeps dashboard sessions. The SQLite adapter implements it.
type SessionStore interface {
	// CreateSession stores s and deletes the sessions expired at now.
	CreateSession(ctx context.Context, s Session, now time.Time) error
	// Session returns the session of tokenHash; ErrNotFound when none.
	Session(ctx context.Context, tokenHash []byte) (Session, error)
	// ExtendSession sets the expiry of tokenHash.
	ExtendSession(ctx context.Context, tokenHash []byte, expires time.Time) error
	// DeleteSession removes the session of tokenHash (none is no error).
	DeleteSession(ctx context.Context, tokenHash []byte) error
}
