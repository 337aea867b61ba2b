package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/adam91holt/clawdspace/nodetest"
)

func getTermios(t *testing.T, f *os.File) *unix.Termios {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio
}

// TestShellInPTY runs `clawdspace shell` in a pseudo-terminal against a real
// node: it types a command, reads its output, exits the shell and checks
// that the terminal was raw during the session and restored after it.
func TestShellInPTY(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	name := e.space("shell")
	tests := []struct {
		name     string
		exit     string
		wantCode int
	}{
		{"exit", "exit", 0},
		{"exit code", "exit 3", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ptmx, tty, err := pty.Open()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ptmx.Close(); tty.Close() })
			if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 30, Cols: 100}); err != nil {
				t.Fatal(err)
			}
			before := getTermios(t, tty)

			cmd := e.command(t.Context(), "shell", name)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() {
				if cmd.ProcessState == nil {
					_ = cmd.Process.Kill()
					<-done
				}
			})
			out := nodetest.ReadPTY(ptmx)

			at := out.WaitFor(t, 0, "$ ")
			if tio := getTermios(t, tty); tio.Lflag&(unix.ECHO|unix.ICANON) != 0 {
				t.Errorf("the terminal is not raw during the session: lflag %#x", tio.Lflag)
			}
			if _, err := ptmx.Write([]byte("echo hi-$((40+2))\r")); err != nil {
				t.Fatal(err)
			}
			at = out.WaitFor(t, at, "hi-42")
			if _, err := ptmx.Write([]byte(tt.exit + "\r")); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatalf("the shell did not end; the terminal shows:\n%q", out.String()[at:])
			}
			if code := cmd.ProcessState.ExitCode(); code != tt.wantCode {
				t.Errorf("exit code %d, want %d; terminal:\n%q", code, tt.wantCode, out.String())
			}
			after := getTermios(t, tty)
			if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag || after.Cflag != before.Cflag {
				t.Errorf("the terminal was not restored: before %+v, after %+v", before, after)
			}
		})
	}
	t.Run("missing space", func(t *testing.T) {
		oneLineError(t, e.run(nil, "shell", "t-no-such"), 1, `space "t-no-such" not found`)
	})
	t.Run("window size follows SIGWINCH", func(t *testing.T) {
		// The busybox test image has no stty; the sandbox image has.
		const image = "clawdspace:latest"
		if _, err := e.node.Raw().ImageInspect(t.Context(), image); err != nil {
			t.Fatalf("%s is not built here (make test builds it): %v", image, err)
		}
		big := nodetest.Name(t, e.node.Engine, "winch")
		if r := e.node.Do(t, "POST", "/api/spaces", map[string]any{"name": big, "image": image, "memory": "256m"}); r.Status != 201 {
			t.Fatalf("creating %s: %d %s", big, r.Status, r.Body)
		}
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ptmx.Close(); tty.Close() })
		if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 30, Cols: 100}); err != nil {
			t.Fatal(err)
		}
		cmd := e.command(t.Context(), "shell", big)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				<-done
			}
		})
		out := nodetest.ReadPTY(ptmx)
		at := out.WaitFor(t, 0, "$ ")
		type_ := func(s string) {
			t.Helper()
			if _, err := ptmx.Write([]byte(s)); err != nil {
				t.Fatal(err)
			}
		}
		// The size given when the terminal opened.
		type_("stty size\r")
		at = out.WaitFor(t, at, "30 100")
		if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 41, Cols: 133}); err != nil {
			t.Fatal(err)
		}
		// The resize and the keystrokes travel separately: ask until the
		// new size shows, within the deadline.
		deadline := time.Now().Add(time.Minute)
		for {
			at = out.WaitFor(t, at, "$ ")
			type_("stty size\r")
			next := out.WaitFor(t, at, "\n")
			line := out.WaitFor(t, next, "\n")
			if strings.Contains(out.String()[next:line], "41 133") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the size did not follow; the terminal shows:\n%q", out.String())
			}
			at = line
		}
		type_("exit\r")
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("the shell did not end")
		}
	})
}

// fakeTerminal records what shell does to the terminal.
type fakeTerminal struct {
	mu         sync.Mutex
	cols, rows int
	raw        bool
	restored   bool
	resized    chan struct{}
}

func (f *fakeTerminal) MakeRaw() (func() error, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.raw = true
	return func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.restored = true
		return nil
	}, nil
}

func (f *fakeTerminal) Size() (int, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cols, f.rows, nil
}

func (f *fakeTerminal) Resizes() (<-chan struct{}, func())  { return f.resized, func() {} }
func (f *fakeTerminal) ReadPassword(func()) ([]byte, error) { return nil, errors.New("not here") }

func (f *fakeTerminal) resize(cols, rows int) {
	f.mu.Lock()
	f.cols, f.rows = cols, rows
	f.mu.Unlock()
	f.resized <- struct{}{}
}

// fixedNode is a spaceFinder that always answers one node.
type fixedNode struct{ c *Client }

func (f fixedNode) FindSpace(context.Context, string, string) (*Client, error) { return f.c, nil }

type wsMessage struct {
	typ  websocket.MessageType
	data string
}

// TestShellProtocol drives shellRun against a fake terminal endpoint: the
// initial size, a resize on SIGWINCH, keystrokes as binary messages, output
// copied, text messages not printed, the shell's exit code from the close
// reason, and the terminal restored.
func TestShellProtocol(t *testing.T) {
	got := make(chan wsMessage, 16)
	var query, auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/spaces/demo/terminal" {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"Space not found"}`)
			return
		}
		query, auth = r.URL.RawQuery, r.Header.Get("Authorization")
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		ctx := context.Background()
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			got <- wsMessage{typ, string(data)}
			if typ == websocket.MessageBinary {
				if string(data) == "bye" {
					_ = c.Close(websocket.StatusNormalClosure, "Shell exited with code 7")
					return
				}
				_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"pong"}`))
				_ = c.Write(ctx, websocket.MessageBinary, []byte(strings.ToUpper(string(data))))
			}
		}
	}))
	t.Cleanup(srv.Close)

	term := &fakeTerminal{cols: 100, rows: 30, resized: make(chan struct{}, 1)}
	inR, inW := io.Pipe()
	out := &syncBuffer{}
	o := &ShellOptions{
		IO:     &IO{In: inR, Out: out, ErrOut: io.Discard, StdinTTY: true, Term: term},
		Spaces: fixedNode{&Client{BaseURL: srv.URL, Key: "k-123", Name: "fake", HTTP: srv.Client()}},
		Name:   "demo",
	}
	errc := make(chan error, 1)
	go func() { errc <- shellRun(t.Context(), o) }()

	next := func() wsMessage {
		t.Helper()
		select {
		case m := <-got:
			return m
		case err := <-errc:
			t.Fatalf("shell ended early: %v", err)
		case <-time.After(time.Minute):
			t.Fatal("no message")
		}
		return wsMessage{}
	}
	// resizeMessage is the window size message as the node reads it.
	type resizeMessage struct {
		Type string `json:"type"`
		Cols int    `json:"cols"`
		Rows int    `json:"rows"`
	}
	resizeOf := func(m wsMessage) resizeMessage {
		t.Helper()
		var r resizeMessage
		if m.typ != websocket.MessageText || json.Unmarshal([]byte(m.data), &r) != nil || r.Type != "resize" {
			t.Fatalf("want a resize message, got %v %q", m.typ, m.data)
		}
		return r
	}
	if r := resizeOf(next()); r.Cols != 100 || r.Rows != 30 {
		t.Errorf("first resize = %+v", r)
	}
	if query != "cols=100&rows=30" || auth != "Bearer k-123" {
		t.Errorf("dial query %q, auth %q", query, auth)
	}
	term.resize(120, 40)
	if r := resizeOf(next()); r.Cols != 120 || r.Rows != 40 {
		t.Errorf("resize after SIGWINCH = %+v", r)
	}
	io.WriteString(inW, "hello")
	if m := next(); m.typ != websocket.MessageBinary || m.data != "hello" {
		t.Errorf("keystrokes arrived as %v %q", m.typ, m.data)
	}
	io.WriteString(inW, "bye")
	var ee *ExitError
	select {
	case err := <-errc:
		if !errors.As(err, &ee) || ee.Code != 7 {
			t.Errorf("shellRun() = %v, want exit code 7", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("shellRun did not return after the close")
	}
	if s := out.String(); s != "HELLO" {
		t.Errorf("output = %q, want only the binary messages", s)
	}
	term.mu.Lock()
	raw, restored := term.raw, term.restored
	term.mu.Unlock()
	if !raw || !restored {
		t.Errorf("raw %v, restored %v", raw, restored)
	}

	o.Name = "gone"
	if err := shellRun(t.Context(), o); err == nil || err.Error() != `space "gone" not found on fake` {
		t.Errorf("missing space: %v", err)
	}
}

// syncBuffer is a goroutine-safe writer.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
