package sshd_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/crypto/ssh"

	"github.com/adam91holt/clawdspace/fleet"
	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// TestSSHTunnelThroughTheFleet: /api/ssh?node=B asked of node A is
// forwarded to B (the upgrade passes through A's reverse proxy) and
// reaches B's SSH server with the API caller; an SSH client (Go's, over
// the WebSocket) runs a command in a space of B. The host key it sees is
// B's.
func TestSSHTunnelThroughTheFleet(t *testing.T) {
	t.Parallel()
	b := nodetest.Start(t, nodetest.Options{Hostname: "ssh-b", Namespace: "sshb"})
	a := nodetest.Start(t, nodetest.Options{Hostname: "ssh-a", Namespace: "ssha",
		Nodes: []fleet.StaticNode{{Name: "ssh-a", URL: "http://127.0.0.1:1"}, {Name: "ssh-b", URL: b.URL}}})
	if err := a.Fleet.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	name := newSpace(t, b, "sshfar", "")

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for _, via := range []struct {
		what, url string
		header    http.Header
	}{
		{"?node=", "ws" + strings.TrimPrefix(a.URL, "http") + "/api/ssh?node=ssh-b", http.Header{}},
		{"Clawdspace-Node", "ws" + strings.TrimPrefix(a.URL, "http") + "/api/ssh", http.Header{"Clawdspace-Node": {"ssh-b"}}},
	} {
		via.header.Set("Authorization", "Bearer "+nodetest.Key)
		ws, _, err := websocket.Dial(ctx, via.url, &websocket.DialOptions{HTTPHeader: via.header})
		if err != nil {
			t.Fatalf("%s: opening the tunnel: %v", via.what, err)
		}
		conn := websocket.NetConn(ctx, ws, websocket.MessageBinary)
		want := hostKey(t, b)
		sc, chans, reqs, err := ssh.NewClientConn(conn, "tunnel", &ssh.ClientConfig{
			User: name, HostKeyCallback: ssh.FixedHostKey(want), Timeout: time.Minute,
		})
		if err != nil {
			t.Fatalf("%s: SSH over the tunnel: %v", via.what, err)
		}
		client := ssh.NewClient(sc, chans, reqs)
		sess, err := client.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		sess.Stdout, sess.Stderr = &out, &errOut
		err = sess.Run("hostname; exit 3")
		var ee *ssh.ExitError
		if !asExit(err, &ee) || ee.ExitStatus() != 3 || out.String() != name+"\n" {
			t.Errorf("%s: command on ssh-b: %v, stdout %q, stderr %q", via.what, err, out.String(), errOut.String())
		}
		client.Close()
	}
	if _, ok := findEvent(events(t, b, "space="+name), spaces.EventSSHOpen, nil); !ok {
		t.Errorf("no ssh.open row on ssh-b")
	}
}

func asExit(err error, target **ssh.ExitError) bool {
	e, ok := err.(*ssh.ExitError)
	if ok {
		*target = e
	}
	return ok
}

// TestSSHOff: with SSH turned off nothing listens and /api/ssh says why
// (503) before any upgrade; a plain GET is told it needs one (400).
func TestSSHOff(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{NoSSH: true})
	if n.SSHAddr != "" {
		t.Errorf("SSH listens on %s with SSH off", n.SSHAddr)
	}
	r := n.Do(t, "GET", "/api/ssh", nil, "Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "SSH is turned off") {
		t.Errorf("/api/ssh with SSH off: %d %s", r.Status, r.Body)
	}
	on := nodetest.Start(t, nodetest.Options{})
	if r := on.Do(t, "GET", "/api/ssh", nil); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "WebSocket upgrade") {
		t.Errorf("/api/ssh without an upgrade: %d %s", r.Status, r.Body)
	}
	if r := on.DoKey(t, "", "GET", "/api/ssh", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("/api/ssh without a key: %d %s", r.Status, r.Body)
	}
}
