package engine

import (
	"context"
	"net"

	"github.com/adam91holt/clawdspace/spaces"
)

// DialPort is not built yet: see issue 14.
func (e *Engine) DialPort(ctx context.Context, name string, port uint16) (net.Conn, error) {
	return nil, spaces.Errorf(spaces.ErrUnavailable, "forwarding ports is not built yet")
}

// ListeningPorts is not built yet: see issue 14.
func (e *Engine) ListeningPorts(ctx context.Context, name string) ([]spaces.ListeningPort, error) {
	return nil, spaces.Errorf(spaces.ErrUnavailable, "detecting ports is not built yet")
}
