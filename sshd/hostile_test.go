package sshd_test

import (
	"bufio"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/sshd"
)

// closedByServer reads from c until the server closes it (or a minute
// passes, which fails the test).
func closedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("the server kept a hostile connection open for a minute")
	}
}

// TestSSHHostileClients: garbage instead of a banner, a client that
// never finishes the handshake and 100 connections at once (more than
// the node's bound) end in closed connections, and the node keeps
// serving real clients.
func TestSSHHostileClients(t *testing.T) {
	t.Parallel()
	e := newSSHEnv(t, nodetest.Options{SSH: sshd.Config{MaxConns: 40, HandshakeTimeout: 3 * time.Second}})
	name := newSpace(t, e.n, "sshhostile", "")
	addr := e.n.SSHAddr
	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatalf("dialling %s: %v", addr, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	t.Run("garbage before the banner", func(t *testing.T) {
		c := dial()
		junk := make([]byte, 64<<10)
		_, _ = rand.Read(junk)
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		_, _ = c.Write(junk)
		closedByServer(t, c)
	})
	t.Run("a client that never finishes the handshake", func(t *testing.T) {
		c := dial()
		// The server speaks first; read its banner, then say nothing.
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "SSH-2.0-Clawdspace") {
			t.Fatalf("banner %q, %v", line, err)
		}
		closedByServer(t, c)
	})
	t.Run("100 connections at once", func(t *testing.T) {
		var wg sync.WaitGroup
		conns := make([]net.Conn, 100)
		for i := range conns {
			wg.Go(func() {
				c, err := net.DialTimeout("tcp", addr, 30*time.Second)
				if err != nil {
					return
				}
				conns[i] = c
				_, _ = c.Write([]byte("SSH-2.0-stalling\r\n"))
			})
		}
		wg.Wait()
		for _, c := range conns {
			if c != nil {
				wg.Go(func() { defer c.Close(); closedByServer(t, c) })
			}
		}
		wg.Wait()
		// Every slot is free again: real clients get in.
		r := run(t, e.ssh(ctxT(t), name, "--", "echo still-serving"), nil)
		if r.code != 0 || r.stdout != "still-serving\n" {
			t.Errorf("after the flood: %s", r)
		}
		if h := e.n.Do(t, "GET", "/api/health", nil); h.Status != 200 {
			t.Errorf("health after the flood: %d", h.Status)
		}
	})
}

// TestSSHKeepsSpaceAwake: an open session keeps its space from auto-sleep;
// once the client is gone the space sleeps as any idle one.
func TestSSHKeepsSpaceAwake(t *testing.T) {
	clock := nodetest.NewFakeClock(time.Now())
	e := newSSHEnv(t, nodetest.Options{Clock: clock, NoAutoSleep: true})
	name := newSpace(t, e.n, "sshawake", "")
	sl := spaces.NewSleeper(spaces.SleeperConfig{Service: e.n.Service, Clock: clock, IdleTimeout: 10 * time.Minute,
		Only: func(n string) bool { return n == name }})
	t.Cleanup(sl.Close)
	tick := func() bool {
		t.Helper()
		paused, err := sl.Tick(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paused {
			if p == name {
				return true
			}
		}
		return false
	}

	cmd := e.ssh(ctxT(t), name, "--", "echo open; sleep 1000")
	out := &lineBuffer{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the session to run", func() bool { return strings.Contains(out.String(), "open") })
	clock.Advance(30 * time.Minute)
	if tick() {
		t.Fatalf("auto-sleep paused %s while an SSH session ran in it", name)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	waitFor(t, "ssh.close", func() bool {
		_, ok := findEvent(events(t, e.n, "space="+name), spaces.EventSSHClose, nil)
		return ok
	})
	clock.Advance(30 * time.Minute)
	if !tick() {
		t.Errorf("the space did not sleep once the SSH client was gone")
	}
}
