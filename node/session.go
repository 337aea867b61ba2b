package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

// Dashboard sessions: the cookie holds a random token, never the key. A
// session ends SessionTTL after its last use, and its token is replaced
// when it is older than SessionRotate (the old one works for
// sessionGrace more, for requests already under way).
const (
	SessionTTL    = 12 * time.Hour
	SessionRotate = 15 * time.Minute
	sessionGrace  = time.Minute
	// sessionSlide is how stale an expiry may get before a request moves
	// it on: one write per minute of use, not one per request.
	sessionSlide = time.Minute
)

// sessionCookie names the cookie that carries the session token
// (HttpOnly, SameSite=Strict).
const sessionCookie = "clawdspace_session"

func hashToken(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// keyHash is the hash sessions are issued under: a new key ends them.
func (s *Server) keyHash() []byte { return hashToken("clawdspace-api-key:" + s.cfg.APIKey) }

// startSession issues a session for the browser of r and sets its cookie.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request) error {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return fmt.Errorf("making a session token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	now := s.clock.Now()
	sess := spaces.Session{TokenHash: hashToken(token), KeyHash: s.keyHash(), IssuedAt: now, ExpiresAt: now.Add(SessionTTL)}
	if err := s.cfg.Sessions.CreateSession(r.Context(), sess, now); err != nil {
		return err
	}
	setSessionCookie(w, r, token)
	return nil
}

// session returns the live session of the cookie of r.
func (s *Server) session(r *http.Request) (spaces.Session, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" || len(ck.Value) > 128 {
		return spaces.Session{}, false
	}
	sess, err := s.cfg.Sessions.Session(r.Context(), hashToken(ck.Value))
	if err != nil {
		if !errors.Is(err, spaces.ErrNotFound) {
			s.log.Error("reading session", "err", err)
		}
		return spaces.Session{}, false
	}
	if !s.clock.Now().Before(sess.ExpiresAt) || subtle.ConstantTimeCompare(sess.KeyHash, s.keyHash()) != 1 {
		return spaces.Session{}, false
	}
	return sess, true
}

// refreshSession moves the session of r on after a request it signed in:
// a new token when the old one is older than SessionRotate, else a later
// expiry.
func (s *Server) refreshSession(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "" {
		// A WebSocket handshake's cookies may not be kept: the token
		// moves on with the next plain request instead.
		return
	}
	sess, ok := s.session(r)
	if !ok {
		return
	}
	now := s.clock.Now()
	ctx := r.Context()
	switch {
	case now.Sub(sess.IssuedAt) >= SessionRotate:
		if err := s.startSession(w, r); err != nil {
			s.log.Error("rotating session", "err", err)
			return
		}
		end := now.Add(sessionGrace)
		if sess.ExpiresAt.Before(end) {
			end = sess.ExpiresAt
		}
		if err := s.cfg.Sessions.ExtendSession(ctx, sess.TokenHash, end); err != nil {
			s.log.Error("ending rotated session", "err", err)
		}
	case sess.ExpiresAt.Before(now.Add(SessionTTL - sessionSlide)):
		if err := s.cfg.Sessions.ExtendSession(ctx, sess.TokenHash, now.Add(SessionTTL)); err != nil {
			s.log.Error("extending session", "err", err)
			return
		}
		if ck, err := r.Cookie(sessionCookie); err == nil {
			setSessionCookie(w, r, ck.Value)
		}
	}
}

// endSession deletes the session of r's cookie server-side.
func (s *Server) endSession(r *http.Request) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return
	}
	if err := s.cfg.Sessions.DeleteSession(r.Context(), hashToken(ck.Value)); err != nil {
		s.log.Error("deleting session", "err", err)
	}
}

func setSessionCookie(w http.ResponseWriter, r *http.Request, token string) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: token, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: int(SessionTTL / time.Second),
	})
}

func clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: -1,
	})
}

// memSessions keeps sessions in memory, for a node built without a store
// of them (they end with the process).
type memSessions struct {
	mu sync.Mutex
	m  map[string]spaces.Session
}

func (m *memSessions) CreateSession(_ context.Context, s spaces.Session, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]spaces.Session{}
	}
	for k, v := range m.m {
		if !now.Before(v.ExpiresAt) {
			delete(m.m, k)
		}
	}
	m.m[string(s.TokenHash)] = s
	return nil
}

func (m *memSessions) Session(_ context.Context, h []byte) (spaces.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.m[string(h)]
	if !ok {
		return spaces.Session{}, spaces.Errorf(spaces.ErrNotFound, "no such session")
	}
	return s, nil
}

func (m *memSessions) ExtendSession(_ context.Context, h []byte, expires time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.m[string(h)]; ok {
		s.ExpiresAt = expires
		m.m[string(h)] = s
	}
	return nil
}

func (m *memSessions) DeleteSession(_ context.Context, h []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, string(h))
	return nil
}
