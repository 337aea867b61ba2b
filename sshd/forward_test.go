package sshd_test

import (
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// TestSSHLocalForward: ssh -L reaches a server in the space (python3's
// http.server on the space's loopback) and is audited as a port
// connection; a target other than the space itself is refused before
// anything is dialled.
func TestSSHLocalForward(t *testing.T) {
	t.Parallel()
	e := newSSHEnv(t, nodetest.Options{})
	name := newSpace(t, e.n, "sshfwd", sandboxImage())
	if r := run(t, e.ssh(ctxT(t), name, "--", "echo served-from-the-space > /workspace/hello.txt"), nil); r.code != 0 {
		t.Fatalf("writing the file: %s", r)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	local := ln.Addr().String()
	ln.Close()

	// The server runs in the same connection that forwards to it.
	cmd := e.ssh(ctxT(t), name, "-o", "ExitOnForwardFailure=yes", "-L", local+":localhost:8000", "--",
		"cd /workspace && exec python3 -m http.server 8000 --bind 127.0.0.1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	hc := &http.Client{Timeout: 10 * time.Second}
	var body string
	waitFor(t, "the server in the space through ssh -L", func() bool {
		resp, err := hc.Get("http://" + local + "/hello.txt")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	})
	if body != "served-from-the-space\n" {
		t.Errorf("through ssh -L: %q", body)
	}
	waitFor(t, "the port.connection row", func() bool {
		_, ok := findEvent(events(t, e.n, "space="+name), spaces.EventPortConnection, func(ev api.Event) bool {
			return ev.Meta["door"] == "ssh" && ev.Meta["port"] == float64(8000)
		})
		return ok
	})

	// -W uses the same channel type; a host other than the space is
	// refused by the node (no name is looked up, nothing is dialled).
	a := e.opts(e.key)
	for i := range a {
		if a[i] == "LogLevel=ERROR" {
			a[i] = "LogLevel=INFO" // ssh says why a channel failed at INFO
		}
	}
	a = append(a, "-p", e.port, "-W", "example.invalid:80", name+"@"+e.host)
	r := run(t, exec.CommandContext(ctxT(t), "ssh", a...), nil)
	if r.code != 255 || !strings.Contains(r.stderr, "administratively prohibited") || !strings.Contains(r.stderr, "only to the space's own ports") {
		t.Errorf("a forward to another host: %s", r)
	}
}
