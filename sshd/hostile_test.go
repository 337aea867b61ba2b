package sshd_test

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

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
	e := newSSHEnv(t, nodetest.Options{SSH: sshd.Config{MaxConns: 40, HandshakeTimeout: 3 * time.Second, MaxConnsPerCaller: 3,
		KeepAlive: 300 * time.Millisecond, KeepAliveMax: 3}})
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

	t.Run("sftp in an image without sftp-server says so", func(t *testing.T) {
		r := run(t, e.ssh(ctxT(t), name, "-s", "--", "sftp"), strings.NewReader(""))
		if r.code != 127 || !strings.Contains(r.stderr, "no sftp-server") {
			t.Errorf("the sftp subsystem in the busybox image: %s", r)
		}
	})
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
	t.Run("one address holds at most MaxHandshakesPerAddr handshakes", func(t *testing.T) {
		var stalled []net.Conn
		for range sshd.MaxHandshakesPerAddr {
			c := dial()
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "SSH-2.0-Clawdspace") {
				t.Fatalf("banner %q, %v", line, err)
			}
			stalled = append(stalled, c)
		}
		// One more from the same address is closed without a banner.
		c := dial()
		if b, err := io.ReadAll(c); len(b) != 0 || err != nil {
			t.Errorf("a handshake past the bound read %q, %v; want a close without a banner", b, err)
		}
		for _, c := range stalled {
			c.Close()
		}
		waitFor(t, "a connection to be let in again", func() bool {
			return run(t, e.ssh(ctxT(t), name, "--", "true"), nil).code == 0
		})
	})
	t.Run("one caller's connections are bounded", func(t *testing.T) {
		var open []*exec.Cmd
		for i := range 3 {
			cmd := e.ssh(ctxT(t), name, "--", "echo up; sleep 1000")
			out := &lineBuffer{}
			cmd.Stdout = out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			open = append(open, cmd)
			waitFor(t, fmt.Sprintf("session %d", i), func() bool { return strings.Contains(out.String(), "up") })
		}
		r := run(t, e.ssh(ctxT(t), name, "--", "true"), nil)
		if r.code != 1 || !strings.Contains(r.stderr, "has 3 SSH connections open") {
			t.Errorf("a fourth connection of the same key: %s", r)
		}
		for _, c := range open {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
		waitFor(t, "a connection to be let in again", func() bool {
			return run(t, e.ssh(ctxT(t), name, "--", "true"), nil).code == 0
		})
	})
	t.Run("a client that stops answering is found by keepalives", func(t *testing.T) {
		closes := func() int {
			n := 0
			for _, ev := range events(t, e.n, "space="+name) {
				if ev.Type == spaces.EventSSHClose {
					n++
				}
			}
			return n
		}
		before := closes()
		// A proxy that freezes once the session runs: the client neither
		// answers nor hangs up, like a laptop whose network went away.
		frozen := make(chan struct{})
		proxy := freezingProxy(t, addr, frozen)
		host, port, _ := net.SplitHostPort(proxy)
		line := fmt.Sprintf("[%s]:%s %s", host, port, ssh.MarshalAuthorizedKey(hostKey(t, e.n)))
		if err := os.WriteFile(e.knownHost, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		a := append(e.opts(e.key), "-p", port, name+"@"+host, "echo up; sleep 1000")
		cmd := exec.CommandContext(ctxT(t), "ssh", a...)
		out := &lineBuffer{}
		cmd.Stdout = out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		waitFor(t, "the session", func() bool { return strings.Contains(out.String(), "up") })
		close(frozen)
		waitFor(t, "the node to end the dead client's connection", func() bool { return closes() > before })
	})
}

// freezingProxy forwards connections to addr until frozen is closed, then
// stops moving bytes either way without closing anything.
func freezingProxy(t *testing.T, addr string, frozen <-chan struct{}) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			select {
			case <-frozen:
				<-t.Context().Done()
				return
			default:
			}
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			wg.Go(func() { defer c.Close(); pipe(up, c) })
			wg.Go(func() { defer up.Close(); pipe(c, up) })
		}
	})
	return ln.Addr().String()
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
