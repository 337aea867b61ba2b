package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/store"
)

// termWait bounds every wait for terminal output or state.
const termWait = 30 * time.Second

// termClient is a terminal WebSocket as a client sees it: binary messages
// are output, collected; text messages are queued.
type termClient struct {
	t *testing.T
	c *websocket.Conn

	mu   sync.Mutex
	out  []byte
	mark int // waitFor looks after this offset

	texts chan string
	done  chan struct{}
	err   error // why reading ended, once done is closed
}

// bearer is the header of the test key.
func bearer() http.Header {
	return http.Header{"Authorization": {"Bearer " + nodetest.Key}}
}

// dialTerminal opens GET /api/spaces/NAME/terminal (path and query given).
func dialTerminal(n *nodetest.Node, pathQuery string, h http.Header) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.URL, "http")+pathQuery, &websocket.DialOptions{HTTPHeader: h})
}

// openTerminal opens a terminal on name and fails the test when it cannot.
func openTerminal(t *testing.T, n *nodetest.Node, name, query string, h http.Header) *termClient {
	t.Helper()
	c, resp, err := dialTerminal(n, "/api/spaces/"+name+"/terminal"+query, h)
	if err != nil {
		status, body := 0, ""
		if resp != nil {
			status = resp.StatusCode
			b := new(bytes.Buffer)
			_, _ = b.ReadFrom(resp.Body)
			body = b.String()
		}
		t.Fatalf("opening terminal on %s: %v (status %d, body %s)", name, err, status, body)
	}
	tc := &termClient{t: t, c: c, texts: make(chan string, 16), done: make(chan struct{})}
	go tc.read()
	t.Cleanup(func() { _ = c.CloseNow() })
	return tc
}

func (tc *termClient) read() {
	defer close(tc.done)
	for {
		typ, data, err := tc.c.Read(context.Background())
		if err != nil {
			tc.err = err
			return
		}
		if typ == websocket.MessageText {
			select {
			case tc.texts <- string(data):
			default:
			}
			continue
		}
		tc.mu.Lock()
		tc.out = append(tc.out, data...)
		tc.mu.Unlock()
	}
}

func (tc *termClient) send(typ websocket.MessageType, data []byte) {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), termWait)
	defer cancel()
	if err := tc.c.Write(ctx, typ, data); err != nil {
		tc.t.Fatalf("writing to the terminal: %v", err)
	}
}

func (tc *termClient) sendJSON(v any) {
	tc.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.send(websocket.MessageText, b)
}

// input types keys with an input message.
func (tc *termClient) input(keys string) {
	tc.t.Helper()
	tc.sendJSON(map[string]string{"type": "input", "data": keys})
}

func (tc *termClient) resize(cols, rows int) {
	tc.t.Helper()
	tc.sendJSON(map[string]any{"type": "resize", "cols": cols, "rows": rows})
}

// waitMatch waits until the output after the last match matches re, and
// returns the submatches.
func (tc *termClient) waitMatch(re *regexp.Regexp) []string {
	tc.t.Helper()
	deadline := time.Now().Add(termWait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		tc.mu.Lock()
		rest := tc.out[tc.mark:]
		loc := re.FindSubmatchIndex(rest)
		var m []string
		if loc != nil {
			for i := 0; i < len(loc); i += 2 {
				if loc[i] >= 0 {
					m = append(m, string(rest[loc[i]:loc[i+1]]))
				} else {
					m = append(m, "")
				}
			}
			tc.mark += loc[1]
		}
		all := string(tc.out)
		tc.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-tc.done:
			tc.t.Fatalf("terminal closed (%v) before %q appeared; output:\n%q", tc.err, re, all)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("timed out waiting for %q; output:\n%q", re, all)
		}
	}
}

// waitFor waits until s appears in the output after the last match.
func (tc *termClient) waitFor(s string) {
	tc.t.Helper()
	tc.waitMatch(regexp.MustCompile(regexp.QuoteMeta(s)))
}

// shellPID asks the shell for its PID, which is also its session ID.
func (tc *termClient) shellPID() string {
	tc.t.Helper()
	tc.input("echo pid-$$-end\n")
	return tc.waitMatch(regexp.MustCompile(`pid-(\d+)-end`))[1]
}

// waitClosed waits for the server to end the socket and returns why.
func (tc *termClient) waitClosed() error {
	tc.t.Helper()
	select {
	case <-tc.done:
		return tc.err
	case <-time.After(termWait):
		tc.t.Fatalf("the terminal was not closed within %v", termWait)
		return nil
	}
}

// sessionAlive reports whether a process of the session sid (the shell and
// everything it started) still runs in the space, asking the engine directly
// so that it works after the node stopped.
func sessionAlive(t *testing.T, n *nodetest.Node, name, sid string) bool {
	t.Helper()
	var out bytes.Buffer
	code, err := n.Engine.Exec(context.Background(), name, spaces.ExecSpec{Cmd: []string{"ps", "-eo", "pid=,sid=,args="}, Stdout: &out})
	if err != nil || code != 0 {
		t.Fatalf("ps in %s: code %d, err %v", name, code, err)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == sid || f[1] == sid) {
			return true
		}
	}
	return false
}

// processRunning reports whether a process with exactly these arguments
// runs in the space.
func processRunning(t *testing.T, n *nodetest.Node, name, args string) bool {
	t.Helper()
	for _, line := range strings.Split(execIn(t, n, name, []string{"ps", "-eo", "args="}).Stdout, "\n") {
		if strings.TrimSpace(line) == args {
			return true
		}
	}
	return false
}

// terminalEvents returns the terminal audit events of a space.
func terminalEvents(t *testing.T, n *nodetest.Node, name string) (open, closed []eventDoc) {
	t.Helper()
	for _, e := range auditEvents(t, n, "?space="+name) {
		switch e.Type {
		case spaces.EventTerminalOpen:
			open = append(open, e)
		case spaces.EventTerminalClose:
			closed = append(closed, e)
		}
	}
	return open, closed
}

// bashSpace creates a space of the sandbox image, which has bash.
func bashSpace(t *testing.T, n *nodetest.Node, base string) string {
	t.Helper()
	name := nodetest.Name(t, n.Engine, base)
	createSpace(t, n, name, map[string]any{"memory": "256m", "image": sandboxImage()})
	return name
}

func TestTerminalBash(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := bashSpace(t, n, "termbash")
	tc := openTerminal(t, n, name, "?cols=120&rows=50", bearer())

	tc.input("echo hi-$((20+22))\n")
	tc.waitFor("hi-42")
	tc.input(`echo "who=$(id -un) cwd=$(pwd) bash=${BASH_VERSION:+yes} login=$(shopt -q login_shell && echo yes) term=$TERM"` + "\n")
	tc.waitFor("who=sandbox cwd=/workspace bash=yes login=yes term=xterm-256color")

	t.Run("initial size", func(t *testing.T) {
		tc.t = t
		tc.input("stty size\n")
		tc.waitFor("50 120")
	})
	t.Run("resize", func(t *testing.T) {
		tc.t = t
		tc.resize(100, 40)
		tc.input("stty size\n")
		tc.waitFor("40 100")
	})
	t.Run("ping", func(t *testing.T) {
		tc.t = t
		tc.sendJSON(map[string]string{"type": "ping"})
		select {
		case msg := <-tc.texts:
			if msg != `{"type":"pong"}` {
				t.Errorf("answer to ping = %q, want {\"type\":\"pong\"}", msg)
			}
		case <-time.After(termWait):
			t.Fatal("no pong")
		}
	})
	t.Run("raw keystrokes", func(t *testing.T) {
		tc.t = t
		tc.send(websocket.MessageBinary, []byte("echo raw-$((6*7))\n"))
		tc.waitFor("raw-42")
		// Text that is not a control message is keystrokes too.
		tc.send(websocket.MessageText, []byte("echo text-$((40+3))\n"))
		tc.waitFor("text-43")
		tc.send(websocket.MessageText, []byte(`{"type":"other"}`+"\n"))
		tc.waitFor(`{type:other}: command not found`)
		// Ctrl-C reaches the shell's foreground job through the TTY.
		tc.input("sleep 600; echo not-interrupted\n")
		eventually(t, "sleep 600 to run", termWait, func() bool { return processRunning(t, n, name, "sleep 600") })
		tc.send(websocket.MessageBinary, []byte{3})
		tc.input("echo after-$((1+1))\n")
		tc.waitFor("after-2")
	})
	t.Run("exit closes normally", func(t *testing.T) {
		tc.t = t
		tc.input("exit 3\n")
		err := tc.waitClosed()
		if got := websocket.CloseStatus(err); got != websocket.StatusNormalClosure {
			t.Fatalf("close status %v (%v), want normal closure", got, err)
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) && ce.Reason != "Shell exited with code 3" {
			t.Errorf("close reason %q", ce.Reason)
		}
		eventually(t, "terminal.close in the audit log", termWait, func() bool {
			_, closed := terminalEvents(t, n, name)
			return len(closed) == 1
		})
		_, closed := terminalEvents(t, n, name)
		if code, _ := closed[0].Meta["exitCode"].(float64); code != 3 {
			t.Errorf("terminal.close meta %v, want exitCode 3", closed[0].Meta)
		}
	})
}

func TestTerminalClientCloseKillsShell(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := bashSpace(t, n, "termkill")
	for _, tt := range []struct {
		name  string
		close func(c *websocket.Conn) error
	}{
		{"close handshake", func(c *websocket.Conn) error { return c.Close(websocket.StatusGoingAway, "tab closed") }},
		{"dropped connection", func(c *websocket.Conn) error { return c.CloseNow() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The browser's way: the key in the query.
			tc := openTerminal(t, n, name, "?key="+url.QueryEscape(nodetest.Key), nil)
			sid := tc.shellPID()
			// A job in the background, and one that left the shell's
			// process tree: both belong to the session.
			tc.input("sleep 987654 & (sleep 876543 &) ; echo started-$((2+2))\n")
			tc.waitFor("started-4")
			if !sessionAlive(t, n, name, sid) {
				t.Fatalf("no process of session %s before the close", sid)
			}
			if err := tt.close(tc.c); err != nil {
				t.Logf("closing: %v", err)
			}
			eventually(t, "the shell's session to end", termWait, func() bool { return !sessionAlive(t, n, name, sid) })
		})
	}

	eventually(t, "terminal.close rows", termWait, func() bool {
		_, closed := terminalEvents(t, n, name)
		return len(closed) == 2
	})
	open, closed := terminalEvents(t, n, name)
	if len(open) != 2 {
		t.Fatalf("%d terminal.open rows, want 2", len(open))
	}
	for _, e := range open {
		if e.Actor != spaces.CallerAPIKey().Actor || e.Meta["cols"] != float64(80) || e.Meta["rows"] != float64(24) {
			t.Errorf("terminal.open = actor %q meta %v, want api-key with 80x24", e.Actor, e.Meta)
		}
	}
	for _, e := range closed {
		if _, ok := e.Meta["durationMs"].(float64); e.Actor != spaces.CallerAPIKey().Actor || !ok {
			t.Errorf("terminal.close = actor %q meta %v, want api-key with durationMs", e.Actor, e.Meta)
		}
	}
}

// TestTerminalShFallback uses the busybox test image, which has no bash.
func TestTerminalShFallback(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "termsh")
	tc := openTerminal(t, n, name, "", bearer())
	tc.input("echo hi-$((20+22))\n")
	tc.waitFor("hi-42")
	tc.input(`echo "id=$(id -u) cwd=$(pwd) bash=${BASH_VERSION:-none}"` + "\n")
	tc.waitFor("id=1001 cwd=/workspace bash=none")
	tc.input("exit\n")
	if err := tc.waitClosed(); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("close: %v, want normal closure", err)
	}
}

func TestTerminalRefusals(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "termref")
	path := "/api/spaces/" + name + "/terminal"
	withKey := func(extra ...string) http.Header {
		h := bearer()
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return h
	}
	for _, tt := range []struct {
		name   string
		path   string
		header http.Header
		want   int
		msg    string
	}{
		{"no key", path, nil, http.StatusUnauthorized, ""},
		{"wrong key", path + "?key=nope", nil, http.StatusUnauthorized, "Unauthorized: wrong API key"},
		{"other site", path, withKey("Origin", "https://evil.example"), http.StatusForbidden, "Cross-origin request refused"},
		{"other port", path, withKey("Origin", "http://127.0.0.1:1"), http.StatusForbidden, "Cross-origin request refused"},
		{"missing space", "/api/spaces/t-nope-missing/terminal", bearer(), http.StatusNotFound, "Space not found"},
		{"bad name", "/api/spaces/bad.name/terminal", bearer(), http.StatusNotFound, "Space not found"},
		{"cols zero", path + "?cols=0", bearer(), http.StatusBadRequest, "cols must be a whole number between 1 and 1000"},
		{"rows too many", path + "?rows=1001", bearer(), http.StatusBadRequest, "rows must be a whole number between 1 and 1000"},
		{"cols not a number", path + "?cols=wide", bearer(), http.StatusBadRequest, "cols must be a whole number between 1 and 1000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, resp, err := dialTerminal(n, tt.path, tt.header)
			if err == nil {
				_ = c.CloseNow()
				t.Fatal("the upgrade was accepted")
			}
			if resp == nil {
				t.Fatalf("no HTTP answer: %v", err)
			}
			body := new(bytes.Buffer)
			_, _ = body.ReadFrom(resp.Body)
			wantError(t, nodetest.Response{Status: resp.StatusCode, Header: resp.Header, Body: body.Bytes()}, tt.want, tt.msg)
		})
	}
	t.Run("plain GET", func(t *testing.T) {
		wantError(t, n.Do(t, http.MethodGet, path, nil), http.StatusBadRequest, "The terminal needs a WebSocket upgrade")
	})
	t.Run("same origin", func(t *testing.T) {
		tc := openTerminal(t, n, name, "", withKey("Origin", n.URL))
		tc.input("echo same-$((1+1))\n")
		tc.waitFor("same-2")
	})
	// Only the accepted terminal reached the space.
	if open, _ := terminalEvents(t, n, name); len(open) != 1 {
		t.Errorf("%d terminal.open rows, want 1 (refusals must not start a shell)", len(open))
	}
}

func TestTerminalResumesPausedSpace(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "termpause")
	if res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/stop", nil); res.Status != http.StatusOK {
		t.Fatalf("stop: %d %s", res.Status, res.Body)
	}
	if got := getSpace(t, n, name).Status; got != "paused" {
		t.Fatalf("status %s after stop, want paused", got)
	}
	tc := openTerminal(t, n, name, "", bearer())
	tc.input("echo awake-$((3*3))\n")
	tc.waitFor("awake-9")
	if got := getSpace(t, n, name).Status; got != "running" {
		t.Errorf("status %s with a terminal open, want running", got)
	}
}

// TestTerminalKeepsSpaceAwake: auto-sleep never pauses a space with an open
// terminal, and the terminal's end counts as activity.
func TestTerminalKeepsSpaceAwake(t *testing.T) {
	t.Parallel()
	clock := nodetest.NewFakeClock(time.Now())
	n := nodetest.Start(t, nodetest.Options{Clock: clock, NoAutoSleep: true})
	name := newSpace(t, n, "termsleep")
	s := spaces.NewSleeper(spaces.SleeperConfig{Service: n.Service, Clock: clock, IdleTimeout: autoSleepIdle,
		Only: func(x string) bool { return x == name }})
	t.Cleanup(s.Close)

	tc := openTerminal(t, n, name, "", bearer())
	tc.input("echo up-$((1+1))\n")
	tc.waitFor("up-2")
	clock.Advance(autoSleepIdle + time.Minute)
	if autoSleepTick(t, s, name) {
		t.Fatal("auto-sleep paused a space with an open terminal")
	}
	wantStatus(t, n, name, "running")

	if err := tc.c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Logf("closing: %v", err)
	}
	closedAt := isoMillis(clock.Now())
	eventually(t, "the terminal's end to count as activity", termWait, func() bool {
		return getSpace(t, n, name).LastActivity == closedAt
	})
	if autoSleepTick(t, s, name) {
		t.Fatal("auto-sleep paused a space whose terminal just closed")
	}
	clock.Advance(autoSleepIdle + time.Minute)
	eventually(t, "auto-sleep to pause the space once idle", termWait, func() bool { return autoSleepTick(t, s, name) })
	wantStatus(t, n, name, "paused")
}

// TestTerminalShutdownEndsSessions: http.Server.Shutdown does not wait for
// hijacked connections; the node ends its terminals itself.
func TestTerminalShutdownEndsSessions(t *testing.T) {
	t.Parallel()
	// A grace period longer than the test's waits: the node must not need it.
	n := nodetest.Start(t, nodetest.Options{ShutdownGrace: 10 * time.Minute})
	name := bashSpace(t, n, "termstop")
	tc := openTerminal(t, n, name, "", bearer())
	sid := tc.shellPID()

	stopped := make(chan struct{})
	go func() { n.Stop(); close(stopped) }()
	if err := tc.waitClosed(); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("close: %v, want going away", err)
	}
	select {
	case <-stopped:
	case <-time.After(termWait):
		t.Fatal("the node did not stop")
	}
	if sessionAlive(t, n, name, sid) {
		t.Errorf("the shell's session %s outlived the node", sid)
	}
	// The node waited for the session to end: its close is in the log.
	st, err := store.New(t.Context(), store.Config{Path: filepath.Join(n.DataDir, "clawdspace.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	events, err := st.Events(t.Context(), spaces.AuditQuery{Space: name, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if last := events[len(events)-1]; last.Type != spaces.EventTerminalClose {
		t.Errorf("newest audit row %s, want %s", last.Type, spaces.EventTerminalClose)
	}
}
