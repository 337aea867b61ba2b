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

// requestKey returns the API key to pass on for r to another node: the
// key r presented, or, for a dashboard session (issued for this node's
// key, which the fleet shares), the node's key.
func (s *Server) requestKey(r *http.Request) string {
	if k := headerOrQueryKey(r); k != "" {
		return k
	}
	if callerOf(r).Kind == spaces.KindAPIKey {
		return s.cfg.APIKey
	}
	return ""
}

// headerOrQueryKey returns the key of a Bearer header or of ?key=.
func headerOrQueryKey(r *http.Request) string {
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

// keyCookie carried the API key itself in earlier versions; it is no
// longer read, only cleared.
const keyCookie = "clawdspace_key"

// authenticate resolves the caller of every API request and refuses
// requests without one. Only the health route is open.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.identify(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.refreshSession(w, r)
		next.ServeHTTP(w, withCaller(r, c.Through(spaces.DoorAPI)))
	})
}

// isKey reports whether k is the node's API key (compared in constant
// time; never true when the node has no key).
func (s *Server) isKey(k string) bool {
	return k != "" && s.cfg.APIKey != "" && subtle.ConstantTimeCompare([]byte(k), []byte(s.cfg.APIKey)) == 1
}

// withCaller returns r carrying its resolved caller.
func withCaller(r *http.Request, c spaces.Caller) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), callerKey{}, c))
}

// identify resolves who makes r: the API key (header or ?key=), a
// dashboard session (the browser's cookie, which holds a session token,
// never the key), or auth disabled. A refusal is logged and audited and
// comes back as an ErrUnauthorized error.
func (s *Server) identify(r *http.Request) (spaces.Caller, error) {
	if s.cfg.Tailnet != nil && viaTailnet(r) {
		return s.identifyTailnet(r)
	}
	if s.cfg.AuthDisabled {
		return spaces.CallerLocal(), nil
	}
	got := headerOrQueryKey(r)
	if got != "" {
		return s.checkKey(r, got)
	}
	if _, ok := s.session(r); ok {
		return spaces.CallerAPIKey(), nil
	}
	if _, err := r.Cookie(sessionCookie); err == nil {
		return spaces.Caller{}, s.refuseUnknown(r, "Unauthorized: the dashboard session ended: sign in again")
	}
	return spaces.Caller{}, s.refuseUnknown(r, "Unauthorized: missing API key (send Authorization: Bearer KEY)")
}

// recordDenial writes an auth.denied audit row for a request without a
// caller.
func (s *Server) recordDenial(r *http.Request, reason string) {
	s.recordRefusal(r, spaces.Caller{Actor: "anonymous"}, "", reason, false)
}

// recordRefusal writes an auth.denied audit row with the reason, at most
// one per remote host (and, for known callers, per caller and route) per
// interval.
func (s *Server) recordRefusal(r *http.Request, c spaces.Caller, space, reason string, known bool) {
	limit := remoteIP(r.RemoteAddr)
	if known {
		limit += "|" + c.Actor + "|" + r.Method + " " + r.URL.Path
	}
	s.recordLimited(r, c, space, reason, limit)
}

// recordLimited writes an auth.denied row unless one with the same limit
// key was written within the interval.
func (s *Server) recordLimited(r *http.Request, c spaces.Caller, space, reason, limit string) {
	meta := map[string]any{"method": r.Method, "path": r.URL.Path, "remote": remoteIP(r.RemoteAddr), "reason": reason}
	if err := s.cfg.Spaces.RecordRefusal(r.Context(), c, space, limit, meta); err != nil {
		s.log.Error("recording denied request", "err", err)
	}
}
