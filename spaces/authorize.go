package spaces

import (
	"context"
	"sync"
	"time"
)

// Every entry point of the Service starts with authorize: the one place
// that decides whether a caller may do an action to a space (or to the
// node) and that writes the audit row of a refusal. Doors (the REST API,
// the dashboard, the terminal, later MCP and SSH) only resolve the Caller
// and pass it on; what a success does is audited by the method itself,
// with its outcome.

// refusalInterval bounds the audit rows for refusals: one per caller,
// action and space per interval, so a client retrying a forbidden call in
// a loop cannot flood the log.
const refusalInterval = 10 * time.Second

// authorize returns nil when c may do one of acts to space ("" for a node
// action, or to ask about some space), and otherwise logs and audits the
// refusal and returns an ErrForbidden error naming the first action.
func (s *Service) authorize(ctx context.Context, c Caller, space string, acts ...Action) error {
	for _, a := range acts {
		if c.Can(a, space) {
			s.log.Debug("authorized", "actor", c.Actor, "kind", c.Kind, "device", c.Device, "door", c.Door, "action", a, "space", space)
			return nil
		}
	}
	err := Forbidden(c, acts[0], space)
	s.log.Debug("forbidden", "actor", c.Actor, "kind", c.Kind, "device", c.Device, "door", c.Door, "actions", acts, "space", space, "access", c.Access.String())
	if c.Actor == "" {
		c.Actor = "anonymous"
	}
	key := "service|" + c.Kind.String() + "|" + c.Actor + "|" + c.Device + "|" + c.Addr + "|" + c.Via + "|" + string(acts[0]) + "|" + space
	meta := map[string]any{"action": string(acts[0]), "reason": err.Error()}
	if aerr := s.recordRefusal(ctx, c, space, key, meta); aerr != nil {
		s.log.Error("recording a refusal", "err", aerr)
	}
	return err
}

// RecordRefusal writes the auth.denied row of a request a door refused
// before it had a caller to pass on (no key or a wrong one, a forged
// vouch), at most one per limit key per interval, like the Service's own
// refusals.
func (s *Service) RecordRefusal(ctx context.Context, c Caller, space, limit string, meta map[string]any) error {
	return s.recordRefusal(ctx, c, space, "door|"+limit, meta)
}

// recordRefusal writes an auth.denied row unless one with the same key
// was written within refusalInterval.
func (s *Service) recordRefusal(ctx context.Context, c Caller, space, key string, meta map[string]any) error {
	if !s.refusals.allow(key, s.clock.Now()) {
		return nil
	}
	return s.audit(ctx, c, space, EventDenied, meta)
}

// Authorize is authorize for what a door serves that is not an operation
// of the Service: the machine's facts, the fleet's nodes, a form to fill
// in before an upload or a create. It decides and audits a refusal the
// same way every Service method does.
func (s *Service) Authorize(ctx context.Context, c Caller, space string, acts ...Action) error {
	return s.authorize(ctx, c, space, acts...)
}

// limiter remembers when a key was last let through.
type limiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// allow reports whether key may pass now: not within refusalInterval of
// its last pass. The memory is bounded: past 10000 keys it starts over.
func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil || len(l.last) > 10000 {
		l.last = make(map[string]time.Time)
	}
	if t, ok := l.last[key]; ok && now.Sub(t) < refusalInterval && now.Sub(t) >= 0 {
		return false
	}
	l.last[key] = now
	return true
}
