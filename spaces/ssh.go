package spaces

import (
	"context"
	"maps"
	"sync"
	"time"
)

// OpenSSH decides whether c may open an SSH connection to space name (the
// terminal action, as a shell needs) and records ssh.open with meta (the
// door's facts: the user, the remote address, a key's fingerprint). The
// returned end records ssh.close with the connection's duration; later
// calls do nothing. What the connection runs (shells, commands, sftp,
// forwarded ports) is decided and audited by the methods it calls.
func (s *Service) OpenSSH(ctx context.Context, c Caller, name string, meta map[string]any) (end func(), err error) {
	if err := s.authorize(ctx, c, name, ActTerminal); err != nil {
		return nil, err
	}
	if err := ValidateName(name); err != nil {
		return nil, SpaceNotFound()
	}
	if _, err := s.cfg.Engine.Get(ctx, name); err != nil {
		return nil, err
	}
	if err := s.audit(ctx, c, name, EventSSHOpen, maps.Clone(meta)); err != nil {
		return nil, err
	}
	opened := s.clock.Now()
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			m := map[string]any{"durationMs": s.clock.Now().Sub(opened).Milliseconds()}
			if err := s.audit(ctx, c, name, EventSSHClose, m); err != nil {
				s.log.Error("recording ssh close", "space", name, "err", err)
			}
		})
	}, nil
}
