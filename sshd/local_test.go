package sshd_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// TestSSHLocalMode drives a real node's SSH door in local mode with the
// real OpenSSH client (ssh, scp, sftp) on a space of the sandbox image.
func TestSSHLocalMode(t *testing.T) {
	t.Parallel()
	e := newSSHEnv(t, nodetest.Options{})
	name := newSpace(t, e.n, "ssh", sandboxImage())

	t.Run("shell with a PTY and its exit status", func(t *testing.T) {
		r := run(t, e.ssh(ctxT(t), name, "-tt"), strings.NewReader("echo hi-$((40+2)); tty; exit 3\n"))
		if r.code != 3 || !contains(r.stdout, "hi-42") || !contains(r.stdout, "/dev/pts/") {
			t.Errorf("want exit 3 with hi-42 on a pts: %s", r)
		}
	})
	t.Run("the window size and its changes reach the PTY", func(t *testing.T) {
		// ssh in a terminal of its own, as a person runs it: it sends the
		// terminal's size and TERM, and a window-change when it is resized.
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ptmx.Close(); tty.Close() })
		if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 41, Cols: 133}); err != nil {
			t.Fatal(err)
		}
		// The size is read after "ready": engines before API 1.42 apply a
		// terminal's size only just after its start, before the node
		// passes on any output.
		cmd := e.ssh(ctxT(t), name, "-t", "--", "echo TERM=$TERM ready; while read line; do [ \"$line\" = q ] && exit 6; stty size; done")
		cmd.Env = append(os.Environ(), "TERM=xterm-test")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		out := readTerminal(ptmx)
		at := out.waitFor(t, 0, "TERM=xterm-test ready")
		enter := func(s string) {
			t.Helper()
			if _, err := ptmx.Write([]byte(s + "\r")); err != nil {
				t.Fatal(err)
			}
		}
		enter("")
		at = out.waitFor(t, at, "41 133")
		if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 50, Cols: 150}); err != nil {
			t.Fatal(err)
		}
		// The change travels apart from the keystrokes (ssh sends it on
		// SIGWINCH, the node resizes through the engine): ask until the
		// shell sees it.
		waitFor(t, "the new size in the space", func() bool {
			enter("")
			return strings.Contains(out.String()[at:], "50 150")
		})
		enter("q")
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("ssh did not end")
		}
		if code := cmd.ProcessState.ExitCode(); code != 6 {
			t.Errorf("exit code %d, want 6; terminal:\n%q", code, out.String())
		}
	})
	t.Run("a command: exit status, stdout and stderr apart, runs as the space's user", func(t *testing.T) {
		r := run(t, e.ssh(ctxT(t), name, "--", "echo out; echo err >&2; id -u; pwd; exit 7"), nil)
		if r.code != 7 || r.stdout != "out\n1001\n/workspace\n" || r.stderr != "err\n" {
			t.Errorf("want exit 7, out/1001//workspace on stdout, err on stderr: %s", r)
		}
	})
	t.Run("stdin is streamed and its end is seen", func(t *testing.T) {
		data := make([]byte, 10<<20)
		if _, err := rand.Read(data); err != nil {
			t.Fatal(err)
		}
		r := run(t, e.ssh(ctxT(t), name, "--", "wc -c"), bytes.NewReader(data))
		if r.code != 0 || strings.TrimSpace(r.stdout) != "10485760" {
			t.Errorf("wc -c of 10 MiB: %s", r)
		}
		sum := sha256.Sum256(data)
		r = run(t, e.ssh(ctxT(t), name, "--", "sha256sum"), bytes.NewReader(data))
		if !strings.HasPrefix(r.stdout, hex.EncodeToString(sum[:])) {
			t.Errorf("sha256sum of the input: %s", r)
		}
	})
	t.Run("scp and sftp both ways, byte-identical, owned by the space's user", func(t *testing.T) {
		dir := t.TempDir()
		data := make([]byte, 3<<20+17)
		if _, err := rand.Read(data); err != nil {
			t.Fatal(err)
		}
		src := filepath.Join(dir, "src.bin")
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		want := hex.EncodeToString(sum[:])
		scp := func(legacy bool, args ...string) result {
			a := append(e.opts(e.key), "-P", e.port)
			if legacy {
				a = append(a, "-O")
			}
			return run(t, exec.CommandContext(ctxT(t), "scp", append(a, args...)...), nil)
		}
		remote := func(p string) string { return name + "@" + e.host + ":" + p }
		check := func(path string) {
			t.Helper()
			r := run(t, e.ssh(ctxT(t), name, "--", "sha256sum "+path+" && stat -c %u:%g "+path), nil)
			if r.code != 0 || !strings.HasPrefix(r.stdout, want) || !contains(r.stdout, "\n1001:1001") {
				t.Errorf("%s in the space: %s", path, r)
			}
		}
		back := func(path string) {
			t.Helper()
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != want {
				t.Errorf("%s: %d bytes, not the file sent", path, len(b))
			}
		}
		// scp of OpenSSH 9 speaks sftp; -O is the legacy protocol (scp -t
		// as a command).
		if r := scp(false, src, remote("/workspace/scp.bin")); r.code != 0 {
			t.Fatalf("scp up: %s", r)
		}
		check("/workspace/scp.bin")
		if r := scp(false, remote("/workspace/scp.bin"), filepath.Join(dir, "scp.back")); r.code != 0 {
			t.Fatalf("scp down: %s", r)
		}
		back(filepath.Join(dir, "scp.back"))
		if r := scp(true, src, remote("/workspace/legacy.bin")); r.code != 0 {
			t.Fatalf("scp -O up: %s", r)
		}
		check("/workspace/legacy.bin")
		if r := scp(true, remote("/workspace/legacy.bin"), filepath.Join(dir, "legacy.back")); r.code != 0 {
			t.Fatalf("scp -O down: %s", r)
		}
		back(filepath.Join(dir, "legacy.back"))

		batch := filepath.Join(dir, "batch")
		script := "put " + src + " /workspace/sftp.bin\nget /workspace/sftp.bin " + filepath.Join(dir, "sftp.back") + "\nls -l /workspace/sftp.bin\n"
		if err := os.WriteFile(batch, []byte(script), 0o600); err != nil {
			t.Fatal(err)
		}
		a := append(e.opts(e.key), "-P", e.port, "-b", batch, name+"@"+e.host)
		if r := run(t, exec.CommandContext(ctxT(t), "sftp", a...), nil); r.code != 0 {
			t.Fatalf("sftp: %s", r)
		}
		check("/workspace/sftp.bin")
		back(filepath.Join(dir, "sftp.back"))
	})
	t.Run("what is refused: -R, agent forwarding, an unknown space, a wrong key", func(t *testing.T) {
		r := run(t, e.ssh(ctxT(t), name, "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:22", "--", "true"), nil)
		if r.code == 0 {
			t.Errorf("ssh -R was not refused: %s", r)
		}
		r = run(t, e.ssh(ctxT(t), name, "-A", "--", "echo agent=${SSH_AUTH_SOCK:-none}"), nil)
		if r.code != 0 || !contains(r.stdout, "agent=none") {
			t.Errorf("ssh -A: %s", r)
		}
		r = run(t, e.ssh(ctxT(t), "t-no-such-space", "--", "true"), nil)
		if r.code != 1 || !contains(r.stderr, `space "t-no-such-space" not found`) {
			t.Errorf("unknown space: want exit 1 and a clear message: %s", r)
		}
		other := e.newKey("stranger@test")
		a := append(e.opts(other), "-p", e.port, name+"@"+e.host, "true")
		r = run(t, exec.CommandContext(ctxT(t), "ssh", a...), nil)
		if r.code != 255 || !contains(r.stderr, "Permission denied") {
			t.Errorf("a key not in authorized_keys: %s", r)
		}
		waitFor(t, "the refused key's auth.denied row", func() bool {
			_, ok := findEvent(events(t, e.n, ""), spaces.EventDenied, func(ev api.Event) bool {
				return ev.Meta["door"] == "ssh" && strings.HasPrefix(ev.Actor, "ssh-key SHA256:")
			})
			return ok
		})
	})
	t.Run("a dropped client kills what its session started", func(t *testing.T) {
		for _, tt := range []struct {
			name, sleep string
			args        []string
		}{
			{"command", "1000", nil},
			{"PTY", "1001", []string{"-tt"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				pattern := `"sleep ` + tt.sleep[:3] + "[" + tt.sleep[3:] + `]"`
				args := append(tt.args, "--", "sleep "+tt.sleep+" & echo started; wait")
				cmd := e.ssh(ctxT(t), name, args...)
				out := &lineBuffer{}
				cmd.Stdout = out
				if tt.args != nil {
					// A PTY session reads keystrokes from stdin: keep it open.
					pr, pw, err := os.Pipe()
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { pr.Close(); pw.Close() })
					cmd.Stdin = pr
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "the command to start", func() bool { return contains(out.String(), "started") })
				if r := run(t, e.ssh(ctxT(t), name, "--", "pgrep -f "+pattern), nil); r.code != 0 {
					t.Fatalf("no sleep process while the session is open: %s", r)
				}
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				waitFor(t, "the sleep to be killed", func() bool {
					return run(t, e.ssh(ctxT(t), name, "--", "pgrep -f "+pattern), nil).code == 1
				})
			})
		}
	})
	t.Run("audit rows", func(t *testing.T) {
		evs := events(t, e.n, "space="+name)
		open, ok := findEvent(evs, spaces.EventSSHOpen, nil)
		if !ok {
			t.Fatalf("no ssh.open row")
		}
		if !strings.HasPrefix(open.Actor, "ssh-key SHA256:") || open.Meta["door"] != "ssh" || open.Meta["keyComment"] != "me@test" ||
			open.Meta["user"] != name || !strings.HasPrefix(open.Meta["key"].(string), "SHA256:") {
			t.Errorf("ssh.open: %+v", open)
		}
		if _, ok := findEvent(evs, spaces.EventSSHClose, func(ev api.Event) bool { _, ok := ev.Meta["durationMs"]; return ok }); !ok {
			t.Errorf("no ssh.close row with durationMs")
		}
		if _, ok := findEvent(evs, spaces.EventExec, func(ev api.Event) bool { return ev.Meta["door"] == "ssh" }); !ok {
			t.Errorf("no space.exec row through the ssh door")
		}
		if _, ok := findEvent(evs, spaces.EventTerminalOpen, func(ev api.Event) bool { return ev.Meta["door"] == "ssh" }); !ok {
			t.Errorf("no terminal.open row through the ssh door: %+v", evs)
		}
	})
	t.Run("the authorized_keys file is read again when it changes", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(e.n.SSHDir, "authorized_keys"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		// Modification times may be coarse: make the change visible.
		later := time.Now().Add(2 * time.Second)
		_ = os.Chtimes(filepath.Join(e.n.SSHDir, "authorized_keys"), later, later)
		if r := run(t, e.ssh(ctxT(t), name, "--", "true"), nil); r.code != 255 {
			t.Errorf("a removed key still gets in: %s", r)
		}
	})
}

// lineBuffer is a bytes.Buffer safe for a reader and a writer.
type lineBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// terminalOutput collects what a pseudo-terminal shows.
type terminalOutput struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	more chan struct{}
}

func readTerminal(f *os.File) *terminalOutput {
	p := &terminalOutput{more: make(chan struct{}, 1)}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := f.Read(b)
			p.mu.Lock()
			p.buf.Write(b[:n])
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return p
}

func (p *terminalOutput) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// waitFor waits until s appears after offset from, and returns the
// offset after it.
func (p *terminalOutput) waitFor(t *testing.T, from int, s string) int {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		out := p.String()
		if i := strings.Index(out[from:], s); i >= 0 {
			return from + i + len(s)
		}
		select {
		case <-p.more:
		case <-deadline:
			t.Fatalf("no %q in the terminal within a minute; it shows:\n%q", s, out)
		}
	}
}
