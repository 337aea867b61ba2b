package sshd_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/tailnet"
)

// bridge listens on 127.0.0.1 and carries each connection to addr through
// the tailnet device dev, so the OpenSSH client (which cannot use tsnet's
// userspace network) reaches the node as dev: WhoIs sees dev's address.
func bridge(t *testing.T, dev *tailnet.Node, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				up, err := dev.Dial(t.Context(), "tcp", addr)
				if err != nil {
					t.Logf("bridge: dialling %s: %v", addr, err)
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
				<-done
			})
		}
	})
	return ln.Addr().String()
}

// TestSSHOnTailnet: on the tailnet there are no keys. A person whose
// grants give the terminal action gets in without any key; one without
// it is told why (stderr, exit 1) and the refusal is audited with the
// device and the ssh door.
func TestSSHOnTailnet(t *testing.T) {
	t.Parallel()
	ctl := nodetest.StartControl(t)
	n := nodetest.Start(t, nodetest.Options{Tailnet: ctl, Hostname: "ssh-node", Namespace: "sshtn"})
	viewer := ctl.Join(t, "viewer-laptop")
	dev := ctl.Join(t, "dev-laptop")
	termOnly := ctl.Join(t, "term-laptop")
	nodetest.WaitForPeers(t, n.TS, viewer, dev, termOnly)
	name := newSpace(t, n, "sshtn", "")
	ctl.Grant(t, viewer, []*tailnet.Node{n.TS}, spaces.Grant{Role: "viewer"})
	ctl.Grant(t, dev, []*tailnet.Node{n.TS}, spaces.Grant{Role: "operator", Spaces: []string{name}})
	ctl.Grant(t, termOnly, []*tailnet.Node{n.TS}, spaces.Grant{Role: "viewer", Actions: []spaces.Action{spaces.ActTerminal}})
	if want := net.JoinHostPort(n.TS.Addr(), "22"); n.SSHAddr != want {
		t.Fatalf("SSH listens on %s, want %s", n.SSHAddr, want)
	}

	dir := t.TempDir()
	known := filepath.Join(dir, "known_hosts")
	client := func(dev *tailnet.Node, user string, args ...string) result {
		t.Helper()
		host, port, _ := net.SplitHostPort(bridge(t, dev, n.SSHAddr))
		line := fmt.Sprintf("[%s]:%s %s", host, port, ssh.MarshalAuthorizedKey(hostKey(t, n)))
		if err := os.WriteFile(known, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		// No key at all: IdentityFile /dev/null, no agent.
		a := []string{"-F", "/dev/null", "-o", "IdentityFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
			"-o", "UserKnownHostsFile=" + known, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "LogLevel=INFO",
			"-p", port}
		var command []string
		for i, x := range args {
			if x == "--" {
				args, command = args[:i], args[i+1:]
				break
			}
		}
		a = append(append(append(a, args...), user+"@"+host), command...)
		return run(t, exec.CommandContext(ctxT(t), "ssh", a...), nil)
	}

	r := client(dev, name, "--", "id -u; echo $((6*7))")
	if r.code != 0 || r.stdout != "1001\n42\n" {
		t.Errorf("a person with the terminal grant, without a key: %s", r)
	}
	evs := events(t, n, "space="+name)
	open, ok := findEvent(evs, spaces.EventSSHOpen, nil)
	if !ok || !strings.HasPrefix(open.Actor, "user-") || open.Meta["device"] != "dev-laptop" || open.Meta["door"] != "ssh" {
		t.Errorf("ssh.open of the person: %+v (found %v)", open, ok)
	}

	r = client(viewer, name, "--", "id")
	if r.code != 1 || !strings.Contains(r.stderr, "Forbidden") || !strings.Contains(r.stderr, "terminal") {
		t.Errorf("a viewer: want exit 1 and why on stderr: %s", r)
	}
	waitFor(t, "the viewer's auth.denied row", func() bool {
		_, ok := findEvent(events(t, n, "space="+name), spaces.EventDenied, func(ev api.Event) bool {
			return ev.Meta["door"] == "ssh" && ev.Meta["device"] == "viewer-laptop" && ev.Meta["action"] == string(spaces.ActTerminal)
		})
		return ok
	})
	// The terminal grant without ports: a shell yes, ssh -L/-W no (the
	// Service decides, per channel).
	if r := client(termOnly, name, "--", "echo shell-ok"); r.code != 0 || r.stdout != "shell-ok\n" {
		t.Errorf("terminal without ports, a command: %s", r)
	}
	r = client(termOnly, name, "-W", "localhost:8000")
	if r.code != 255 || !strings.Contains(r.stderr, "administratively prohibited") || !strings.Contains(r.stderr, "ports") {
		t.Errorf("terminal without ports, ssh -W: %s", r)
	}
	// Another space than the granted one: refused the same way.
	r = client(dev, "t-not-granted", "--", "true")
	if r.code != 1 || !strings.Contains(r.stderr, "Forbidden") {
		t.Errorf("a space outside the grant: %s", r)
	}
}
