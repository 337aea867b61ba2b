package node

import (
	"context"
	"net"
	"net/http"

	"github.com/coder/websocket"

	"github.com/adam91holt/clawdspace/spaces"
)

// sshTunnelReadLimit bounds one WebSocket message of the SSH tunnel (the
// CLI sends at most 32 KiB at a time).
const sshTunnelReadLimit = 1 << 20

// SSHServer is the node's SSH door, given the streams of /api/ssh: a
// connection whose caller the API already knows.
type SSHServer interface {
	ServeConn(ctx context.Context, conn net.Conn, c spaces.Caller) error
}

// handleSSH serves GET /api/ssh: an SSH connection carried in the binary
// messages of a WebSocket, for clients that cannot reach the node's SSH
// port (`clawdspace ssh-proxy` as ProxyCommand). The caller is the API's
// (key or tailnet identity); the SSH user names the space, and the SSH
// server asks the Service as for any other SSH connection.
func (s *Server) handleSSH(w http.ResponseWriter, r *http.Request) {
	if s.cfg.SSH == nil {
		s.writeError(w, r, spaces.Errorf(spaces.ErrUnavailable, "SSH is turned off on this node"))
		return
	}
	if !isWebSocketUpgrade(r) {
		s.writeError(w, r, spaces.Errorf(spaces.ErrInvalid, "The SSH tunnel needs a WebSocket upgrade"))
		return
	}
	if err := sameOrigin(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, done, ok := s.terms.add(r.Context())
	if !ok {
		s.writeError(w, r, spaces.Errorf(spaces.ErrUnavailable, "Node is shutting down"))
		return
	}
	defer done()
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		s.log.Debug("ssh tunnel upgrade refused", "err", err)
		return
	}
	ws.SetReadLimit(sshTunnelReadLimit)
	conn := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	defer conn.Close()
	if err := s.cfg.SSH.ServeConn(ctx, conn, callerOf(r)); err != nil {
		s.log.Debug("ssh tunnel", "err", err)
	}
}
