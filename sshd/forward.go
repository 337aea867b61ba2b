package sshd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/adam91holt/clawdspace/spaces"
)

// directTCPIP serves ssh -L: a connection to a port of the space itself
// (localhost, 127.0.0.1, ::1 or the space's name), through
// Service.ConnectPort, which decides (the ports action) and audits.
func (c *connection) directTCPIP(ctx context.Context, nc ssh.NewChannel) {
	var p struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	if !c.isSpaceHost(p.Host) {
		_ = nc.Reject(ssh.Prohibited, fmt.Sprintf("clawdspace forwards only to the space's own ports (localhost:PORT), not to %.64q", p.Host))
		return
	}
	if p.Port == 0 || p.Port > 65535 {
		_ = nc.Reject(ssh.ConnectionFailed, "port must be between 1 and 65535")
		return
	}
	conn, err := c.srv.cfg.Service.ConnectPort(ctx, c.caller, c.space, uint16(p.Port), 0)
	if err != nil {
		reason := ssh.ConnectionFailed
		if errors.Is(err, spaces.ErrForbidden) {
			reason = ssh.Prohibited
		}
		_ = nc.Reject(reason, refusalMessage(c.space, err))
		return
	}
	defer conn.Close()
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	go ssh.DiscardRequests(reqs)
	stop := context.AfterFunc(ctx, func() { ch.Close(); conn.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(conn, ch)
		_ = conn.CloseWrite()
	})
	_, _ = io.Copy(ch, conn)
	_ = ch.CloseWrite()
	wg.Wait()
}

// isSpaceHost reports whether host names the space itself.
func (c *connection) isSpaceHost(host string) bool {
	h := strings.ToLower(strings.Trim(host, "[]"))
	switch h {
	case "localhost", "127.0.0.1", "::1", "0.0.0.0", "":
		return true
	}
	return h == strings.ToLower(c.space)
}
