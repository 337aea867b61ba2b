package node

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"

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
			c = spaces.CallerLocal
		default:
			got := requestKey(r)
			if got == "" || subtle.ConstantTimeCompare([]byte(got), key) != 1 {
				msg := "Unauthorized: missing API key (send Authorization: Bearer KEY)"
				if got != "" {
					msg = "Unauthorized: wrong API key"
				}
				s.log.Debug("auth denied", "path", r.URL.Path, "remote", r.RemoteAddr, "reason", msg)
				s.writeError(w, r, spaces.Errorf(spaces.ErrUnauthorized, "%s", msg))
				return
			}
			c = spaces.CallerAPIKey
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
}
