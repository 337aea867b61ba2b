package node

import (
	"context"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

type callerKey struct{}

// callerOf returns the caller resolved for r by the auth middleware.
func callerOf(r *http.Request) spaces.Caller {
	c, _ := r.Context().Value(callerKey{}).(spaces.Caller)
	return c
}

// requestKey returns the API key a request presents: a Bearer header, or the
// key query parameter browsers use.
func requestKey(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if k, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(k)
		}
		if k, ok := strings.CutPrefix(h, "bearer "); ok {
			return strings.TrimSpace(k)
		}
		return ""
	}
	return r.URL.Query().Get("key")
}

// authenticate resolves the caller of every request and refuses requests
// without one. Only the health route is open.
func (s *Server) authenticate(next http.Handler) http.Handler {
	key := []byte(s.cfg.APIKey)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c spaces.Caller
		switch {
		case s.cfg.AuthDisabled:
			c = spaces.CallerLocal()
		default:
			got := requestKey(r)
			if got == "" || subtle.ConstantTimeCompare([]byte(got), key) != 1 {
				msg := "Unauthorized: missing API key (send Authorization: Bearer KEY)"
				if got != "" {
					msg = "Unauthorized: wrong API key"
				}
				s.log.Debug("auth denied", "path", r.URL.Path, "remote", r.RemoteAddr, "reason", msg)
				s.recordDenial(r, msg)
				s.writeError(w, r, spaces.Errorf(spaces.ErrUnauthorized, "%s", msg))
				return
			}
			c = spaces.CallerAPIKey()
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
}

// denialLog limits audit rows for refused requests to one per remote host
// per interval, so a client stuck with a wrong key cannot flood the log.
type denialLog struct {
	mu   sync.Mutex
	last map[string]time.Time
}

const denialInterval = 10 * time.Second

func (d *denialLog) allow(host string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last == nil || len(d.last) > 10000 {
		d.last = make(map[string]time.Time)
	}
	if t, ok := d.last[host]; ok && now.Sub(t) < denialInterval {
		return false
	}
	d.last[host] = now
	return true
}

// recordDenial writes an auth.denied audit row with the reason.
func (s *Server) recordDenial(r *http.Request, reason string) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !s.denials.allow(host, s.clock.Now()) {
		return
	}
	meta := map[string]any{"method": r.Method, "path": r.URL.Path, "remote": host, "reason": reason}
	if err := s.cfg.Spaces.Record(r.Context(), spaces.Caller{Actor: "anonymous"}, "", spaces.EventDenied, meta); err != nil {
		s.log.Error("recording denied request", "err", err)
	}
}
