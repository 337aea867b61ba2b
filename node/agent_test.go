package node_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// Tests of the in-space agent (engine/agent.go): every test node uses it
// by default; these prove what goes through it and that nothing a space
// does with it reaches the node or other spaces.

// agentOf is a space's agent status through the API.
func agentOf(t testing.TB, n *nodetest.Node, name string) string {
	t.Helper()
	res := n.Do(t, http.MethodGet, "/api/spaces/"+name, nil)
	var doc struct {
		Space struct {
			Agent string `json:"agent"`
		} `json:"space"`
	}
	res.JSON(t, &doc)
	return doc.Space.Agent
}

// waitAgent polls a space's agent status until it starts with want.
func waitAgent(t testing.TB, n *nodetest.Node, name, want string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := agentOf(t, n, name)
		if strings.HasPrefix(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent status of %s = %q, want %q...", name, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// throughAgent reports whether an exec ran through the agent: only the
// agent gives each exec's processes a marker of their own.
func throughAgent(t testing.TB, n *nodetest.Node, name string) bool {
	t.Helper()
	return strings.Contains(execIn(t, n, name, "env").Stdout, "CLAWDSPACE_EXEC=")
}

// running returns the space's processes whose command line holds any of
// pats, as the engine (not the agent) lists them.
func running(t testing.TB, n *nodetest.Node, name string, pats ...string) []string {
	t.Helper()
	top, err := n.Raw().ContainerTop(t.Context(), n.Engine.ContainerName(name), client.ContainerTopOptions{Arguments: []string{"-eo", "pid,args"}})
	if err != nil {
		t.Fatalf("listing the space's processes: %v", err)
	}
	var out []string
	for _, p := range top.Processes {
		line := strings.Join(p, " ")
		for _, pat := range pats {
			if strings.Contains(line, pat) {
				out = append(out, line)
			}
		}
	}
	return out
}

// waitGone waits until none of the space's processes match pats.
func waitGone(t testing.TB, n *nodetest.Node, name string, pats ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := running(t, n, name, pats...)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still running: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAgentExec(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "agexec")
	if !throughAgent(t, n, name) {
		t.Fatalf("the first exec did not go through the agent (status %q)", agentOf(t, n, name))
	}
	if got := agentOf(t, n, name); got != "connected" {
		t.Fatalf("agent status = %q, want connected", got)
	}

	t.Run("the agent is not one of the space's processes", func(t *testing.T) {
		procs, err := n.Engine.Top(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		init := false
		for _, p := range procs {
			if strings.Contains(p.Command, "clawdspace-agent") {
				t.Fatalf("Top lists the agent: %+v", p)
			}
			init = init || (p.PID == 1 && strings.Contains(p.Command, "sleep infinity") && p.Etime != "")
		}
		if !init {
			t.Fatalf("Top lacks the space's PID 1 as the space sees it: %+v", procs)
		}
		if len(running(t, n, name, "/.clawdspace/bin/clawdspace-agent")) != 1 {
			t.Fatalf("no agent runs in the space")
		}
	})

	t.Run("the space page shows it", func(t *testing.T) {
		body := bodyOf(t, page(t, n, http.MethodGet, "/spaces/"+name, nil))
		if !strings.Contains(body, `data-testid="space-agent">connected<`) {
			t.Fatalf("the space page lacks the agent's status")
		}
	})

	t.Run("env cwd stdin exit code", func(t *testing.T) {
		res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", map[string]any{
			"command": `mkdir -p sub && cd sub && echo "$FOO $(pwd) $(id -u)" && cat && echo err >&2 && exit 7`,
			"env":     map[string]string{"FOO": "bar"}, "cwd": "/workspace", "stdin": "in put",
		})
		var doc execDoc
		res.JSON(t, &doc)
		if doc.Stdout != "bar /workspace/sub 1001\nin put" || doc.Stderr != "err\n" || doc.ExitCode != 7 || agentOf(t, n, name) != "connected" {
			t.Fatalf("got %+v", doc)
		}
		res = n.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", map[string]any{"command": "pwd", "cwd": "sub"})
		res.JSON(t, &doc)
		if doc.Stdout != "/workspace/sub\n" {
			t.Fatalf("cwd sub: %+v", doc)
		}
	})

	t.Run("engine errors stay the same", func(t *testing.T) {
		// A missing command or folder: the agent does not start it and the
		// Engine API path answers as it always did.
		via := nodetest.Start(t, nodetest.Options{NoAgent: true})
		for _, body := range []map[string]any{
			{"command": []string{"no-such-command"}},
			{"command": "pwd", "cwd": "/no/such/dir"},
		} {
			a := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", body)
			b := via.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", body)
			if a.Status != b.Status || string(a.Body) != string(b.Body) {
				t.Errorf("%v: agent node %d %s, engine node %d %s", body, a.Status, a.Body, b.Status, b.Body)
			}
		}
	})

	t.Run("streaming order", func(t *testing.T) {
		req, _ := http.NewRequest("POST", n.URL+"/api/spaces/"+name+"/exec?stream=true",
			strings.NewReader(`{"command":"echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three"}`))
		req.Header.Set("Authorization", "Bearer "+nodetest.Key)
		resp, err := n.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var lines []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		got := strings.Join(lines, "\n")
		i1, i2, i3 := strings.Index(got, `"one\n"`), strings.Index(got, `"two\n"`), strings.Index(got, `"three\n"`)
		if i1 < 0 || i2 < i1 || i3 < i2 || !strings.Contains(lines[1], "stderr") || !strings.Contains(got, `"exitCode":0`) {
			t.Fatalf("stream:\n%s", got)
		}
	})

	t.Run("timeout kills the whole tree", func(t *testing.T) {
		// A background child, and one that left the session.
		res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", map[string]any{
			"command":   "sleep 1000 & setsid sleep 1002 & sleep 1001",
			"timeoutMs": 500,
		})
		var doc struct {
			ExitCode int  `json:"exitCode"`
			TimedOut bool `json:"timedOut"`
		}
		res.JSON(t, &doc)
		if !doc.TimedOut || doc.ExitCode != 124 {
			t.Fatalf("got %d %s", res.Status, res.Body)
		}
		// Dead when answered: no settling allowed beyond the engine's reap.
		waitGone(t, n, name, "sleep 1000", "sleep 1001", "sleep 1002")
	})

	t.Run("caller gone kills", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, "POST", n.URL+"/api/spaces/"+name+"/exec?stream=true",
			strings.NewReader(`{"command":"sleep 1003 & echo started; sleep 1004"}`))
		req.Header.Set("Authorization", "Bearer "+nodetest.Key)
		resp, err := n.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		if !strings.Contains(line, "started") {
			t.Fatalf("first line %q", line)
		}
		// The second sleep starts after the line.
		eventually(t, "both sleeps running", 10*time.Second, func() bool {
			return len(running(t, n, name, "sleep 1003", "sleep 1004")) == 2
		})
		cancel()
		resp.Body.Close()
		waitGone(t, n, name, "sleep 1003", "sleep 1004")
	})

	t.Run("large output is capped on the node", func(t *testing.T) {
		doc := execIn(t, n, name, "head -c 50000000 /dev/zero | tr '\\0' a")
		if !doc.Truncated || len(doc.Stdout) == 0 || len(doc.Stdout) > 20<<20 {
			t.Fatalf("truncated %v, %d bytes", doc.Truncated, len(doc.Stdout))
		}
	})

}

// TestAgentConcurrentExecs: 200 execs at once on one space, all through
// the agent's one connection, each with its own output.
func TestAgentConcurrentExecs(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "agconc")
	waitAgent(t, n, name, "connected")
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for i := range 200 {
		wg.Go(func() {
			res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", map[string]any{"command": fmt.Sprintf("echo %d; echo $CLAWDSPACE_EXEC >&2", i)})
			var doc execDoc
			if res.Status == http.StatusOK {
				res.JSON(t, &doc)
			}
			if doc.Stdout != fmt.Sprintf("%d\n", i) || len(doc.Stderr) < 10 {
				errs <- fmt.Sprintf("exec %d: %d %s", i, res.Status, res.Body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got := agentOf(t, n, name); got != "connected" {
		t.Fatalf("agent status after the load = %q", got)
	}
}

// TestAgentPauseResume: the agent freezes with its space and its
// connection survives; an exec on a paused space resumes it as before.
func TestAgentPauseResume(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "agpause")
	waitAgent(t, n, name, "connected")
	for range 3 {
		if err := n.Service.Pause(t.Context(), spaces.CallerAPIKey(), name); err != nil {
			t.Fatalf("pause: %v", err)
		}
		if got := execIn(t, n, name, "echo $CLAWDSPACE_EXEC"); len(got.Stdout) < 10 {
			t.Fatalf("exec after pause did not go through the agent: %+v", got)
		}
	}
	// Stopped and started: a new agent.
	if r := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/stop", nil); r.Status != http.StatusOK {
		t.Fatalf("stop: %d %s", r.Status, r.Body)
	}
	if r := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/start", nil); r.Status != http.StatusOK {
		t.Fatalf("start: %d %s", r.Status, r.Body)
	}
	if !throughAgent(t, n, name) {
		t.Fatalf("after a restart the exec did not go through the agent: %q", agentOf(t, n, name))
	}
}

// TestAgentSocketConfined: the socket folder is read-only in the space,
// holds only that space's socket, and no other space sees it.
func TestAgentSocketConfined(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	a, b := newSpace(t, n, "agsocka"), newSpace(t, n, "agsockb")
	for _, name := range []string{a, b} {
		got := execIn(t, n, name, "ls -A /.clawdspace/run; touch /.clawdspace/run/x 2>&1; rm -f /.clawdspace/run/agent.sock 2>&1; touch /.clawdspace/bin/x 2>&1; ls /.clawdspace/bin")
		if !strings.HasPrefix(got.Stdout, "agent.sock\n") || strings.Count(got.Stdout, "Read-only file system") != 3 || !strings.HasSuffix(got.Stdout, "clawdspace-agent\n") {
			t.Fatalf("%s: %q", name, got.Stdout)
		}
	}
	ia, err := n.Raw().ContainerInspect(t.Context(), n.Engine.ContainerName(a), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ib, err := n.Raw().ContainerInspect(t.Context(), n.Engine.ContainerName(b), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src := func(c client.ContainerInspectResult) string {
		for _, m := range c.Container.Mounts {
			if m.Destination == "/.clawdspace/run" {
				if m.RW {
					t.Errorf("the socket folder is mounted read-write")
				}
				return m.Source
			}
		}
		return ""
	}
	if sa, sb := src(ia), src(ib); sa == "" || sa == sb {
		t.Fatalf("socket folders %q and %q", sa, sb)
	}
}

// TestAgentForkOwnSocket: a fork gets an agent folder of its own volume,
// not its source's (whose socket would let it speak for the source).
func TestAgentForkOwnSocket(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	src := newSpace(t, n, "agforksrc")
	waitAgent(t, n, src, "connected")
	fork := nodetest.Name(t, n.Engine, "agforkdst")
	if res := n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": fork, "from": src}); res.Status != http.StatusCreated && res.Status != http.StatusOK {
		t.Fatalf("fork: %d %s", res.Status, res.Body)
	}
	mounts := func(name string) (run, vol string) {
		c, err := n.Raw().ContainerInspect(t.Context(), n.Engine.ContainerName(name), client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range c.Container.Mounts {
			switch m.Destination {
			case "/.clawdspace/run":
				if run != "" {
					t.Fatalf("%s mounts the agent's folder twice", name)
				}
				run = m.Source
			case "/workspace":
				vol = m.Name
			}
		}
		return run, vol
	}
	srun, _ := mounts(src)
	frun, fvol := mounts(fork)
	if frun == "" || frun == srun || filepath.Base(frun) != fvol {
		t.Fatalf("the fork's agent folder is %q (source's %q, its volume %q)", frun, srun, fvol)
	}
	if !throughAgent(t, n, fork) || agentOf(t, n, fork) != "connected" || agentOf(t, n, src) != "connected" {
		t.Fatalf("agents: fork %q, source %q", agentOf(t, n, fork), agentOf(t, n, src))
	}
}

// evilAgent builds the hostile agent of testdata/evilagent in mode.
func evilAgent(t *testing.T, mode string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "clawdspace-agent")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.mode="+mode, "-o", out, "./testdata/evilagent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the hostile agent: %v: %s", err, b)
	}
	return out
}

// TestAgentHostile: nodes whose spaces run a hostile agent. Every exec
// still runs, through the Engine API, and the space's status says why.
func TestAgentHostile(t *testing.T) {
	for _, tc := range []struct{ mode, status string }{
		{"wrongversion", "fallback: the agent speaks clawdspace-agent/999"},
		{"garbage", "fallback: "},
		{"hugeheader", "fallback: the agent did not answer its hello"},
		{"silent", "fallback: "},
		{"stall", "fallback: the agent did not answer in time"},
		{"bigframe", "fallback: the agent broke off an exec"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			n := nodetest.Start(t, nodetest.Options{AgentPath: evilAgent(t, tc.mode)})
			name := newSpace(t, n, "agevil")
			res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", map[string]any{"command": "echo hi"})
			if tc.mode == "bigframe" || tc.mode == "stall" {
				// The process started before the agent broke off, or may
				// have (the agent had the request): the exec fails (and
				// its process is dead) rather than run twice; the next
				// one falls back.
				wantError(t, res, http.StatusServiceUnavailable, "")
				res = n.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", map[string]any{"command": "echo hi"})
			}
			var doc execDoc
			res.JSON(t, &doc)
			if res.Status != http.StatusOK || doc.Stdout != "hi\n" || doc.ExitCode != 0 {
				t.Fatalf("exec: %d %s", res.Status, res.Body)
			}
			waitAgent(t, n, name, tc.status)
			if got := execIn(t, n, name, "env").Stdout; strings.Contains(got, "CLAWDSPACE_EXEC=") {
				t.Fatalf("an exec went through the hostile agent")
			}
		})
	}
}

// TestAgentReplacedInSpace: code in a space connects to the node's socket
// itself with an agent that floods output and lies about exit codes. It
// speaks for its own space only: the node's memory stays bounded and the
// other space's agent is untouched.
func TestAgentReplacedInSpace(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name, other := newSpace(t, n, "agliar"), newSpace(t, n, "agother")
	waitAgent(t, n, name, "connected")
	bin, err := os.ReadFile(evilAgent(t, "liar"))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Engine.WriteFile(t.Context(), name, "/workspace/liar", spaces.FileContent{Mode: 0o755, Size: int64(len(bin)), Content: bytes.NewReader(bin)}); err != nil {
		t.Fatal(err)
	}
	// Started through the real agent, it dials in and takes its place.
	execIn(t, n, name, "/workspace/liar /.clawdspace/run/agent.sock liar >/dev/null 2>&1 &")
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	deadline := time.Now().Add(30 * time.Second)
	// The liar either answers (its fake exit code, its flood truncated by
	// the node's output cap) or, when its answer comes too late, the node
	// breaks it off (503: it cannot tell whether the command ran) and the
	// next exec runs as it should.
	var doc execDoc
	brokenOff := false
	for {
		res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", map[string]any{"command": "echo hi"})
		if res.Status == http.StatusServiceUnavailable {
			brokenOff = true
			break
		}
		res.JSON(t, &doc)
		if res.Status != http.StatusOK {
			t.Fatalf("exec: %d %s", res.Status, res.Body)
		}
		if doc.ExitCode == 42 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	switch {
	case brokenOff:
		if doc := execIn(t, n, name, "echo hi"); doc.ExitCode != 0 || doc.Stdout != "hi\n" {
			t.Fatalf("the exec after the liar was broken off: %+v", doc)
		}
	case doc.ExitCode != 42 || !doc.Truncated:
		ps := execIn(t, n, name, "ps -eo pid,args").Stdout
		t.Fatalf("the liar never answered: exit %d, truncated %v; processes:\n%s", doc.ExitCode, doc.Truncated, ps)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grow := int64(after.HeapInuse) - int64(before.HeapInuse); grow > 64<<20 {
		t.Errorf("the node's heap grew by %d MiB while the liar flooded 128 MiB", grow>>20)
	}
	if !throughAgent(t, n, other) || agentOf(t, n, other) != "connected" {
		t.Fatalf("the other space's agent is affected: %q", agentOf(t, n, other))
	}
}

// TestAgentOff: without the agent's binary, and for a space made without
// its mounts (by a node without the agent, as an older node's), every
// call takes the Engine API path and the status says so.
func TestAgentOff(t *testing.T) {
	off := nodetest.Start(t, nodetest.Options{NoAgent: true, Namespace: "agoff"})
	name := newSpace(t, off, "agoff")
	if got := agentOf(t, off, name); got != "off: no agent binary is configured" {
		t.Fatalf("status = %q", got)
	}
	if throughAgent(t, off, name) {
		t.Fatal("an exec went through an agent although it is off")
	}
	on := nodetest.Start(t, nodetest.Options{Namespace: "agoff"})
	if got := agentOf(t, on, name); got != "off: the space was made without the agent's mounts" {
		t.Fatalf("status on a node with the agent = %q", got)
	}
	if got := execIn(t, on, name, "echo hi"); got.Stdout != "hi\n" {
		t.Fatalf("exec: %+v", got)
	}
}

// TestAgentTerminal: a terminal through the agent: a TTY of the asked
// size, keystrokes, resize, the exit code, and Close kills what it started.
func TestAgentTerminal(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "agterm")
	waitAgent(t, n, name, "connected")
	readUntil := func(tp spaces.TerminalProcess, want string) string {
		t.Helper()
		var got []byte
		buf := make([]byte, 4096)
		for !strings.Contains(string(got), want) {
			k, err := tp.Read(buf)
			got = append(got, buf[:k]...)
			if err != nil {
				t.Fatalf("read %v before %q; got %q", err, want, got)
			}
		}
		return string(got)
	}
	tp, err := n.Engine.Terminal(t.Context(), name, spaces.TerminalSpec{Cmd: []string{"sh"}, Cols: 90, Rows: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	io := func(s string) {
		if _, err := tp.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	io("stty size; echo M=${CLAWDSPACE_EXEC:+agent}; tty\n")
	out := readUntil(tp, "/dev/pts/")
	if !strings.Contains(out, "30 90") || !strings.Contains(out, "M=agent") {
		t.Fatalf("terminal output %q", out)
	}
	if err := tp.Resize(t.Context(), 120, 40); err != nil {
		t.Fatal(err)
	}
	io("stty size\n")
	readUntil(tp, "40 120")
	io("exit 5\n")
	// Wait follows the end of the output.
	buf := make([]byte, 4096)
	for {
		if _, err := tp.Read(buf); err != nil {
			break
		}
	}
	if code, err := tp.Wait(t.Context()); code != 5 || err != nil {
		t.Fatalf("exit code %d, %v", code, err)
	}

	// Close kills the shell and its background children.
	tp2, err := n.Engine.Terminal(t.Context(), name, spaces.TerminalSpec{Cmd: []string{"sh"}, Cols: 80, Rows: 24})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp2.Write([]byte("sleep 1005 & echo bg-started\n")); err != nil {
		t.Fatal(err)
	}
	readUntil(tp2, "bg-started")
	tp2.Close()
	waitGone(t, n, name, "sleep 1005")
	if got := agentOf(t, n, name); got != "connected" {
		t.Fatalf("agent status after the terminals = %q", got)
	}
}

// TestAgentStdinFullDuplex: stdin and output interleave (an interactive
// protocol such as scp's), and an exec ends when its process does, even
// though its stdin (an SSH channel) never ends.
func TestAgentStdinFullDuplex(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "agduplex")
	waitAgent(t, n, name, "connected")
	inR, inW := io.Pipe()
	defer inW.Close()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		code, err := n.Engine.Exec(t.Context(), name, spaces.ExecSpec{Stdin: inR, Stdout: outW,
			Cmd: []string{"sh", "-c", `read x; echo "got $x $CLAWDSPACE_EXEC"; read y; echo "got $y"; exit 3`}})
		if err == nil && code != 3 {
			err = fmt.Errorf("exit code %d", code)
		}
		outW.Close()
		done <- err
	}()
	br := bufio.NewReader(outR)
	for _, in := range []string{"a", "b"} {
		if _, err := inW.Write([]byte(in + "\n")); err != nil {
			t.Fatal(err)
		}
		if l, _ := br.ReadString('\n'); !strings.HasPrefix(l, "got "+in) || (in == "a" && len(l) < 20) {
			t.Fatalf("line %q (through the agent?)", l)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the exec did not end with its process while its stdin stayed open")
	}
}

// TestAgentExecsAgainstPauses: execs through the agent while the space is
// paused again and again: each runs once and answers (the service resumes
// a paused space; no pause freezes a command between its start and the
// agent's answer).
func TestAgentExecsAgainstPauses(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{NoAutoSleep: true})
	name := newSpace(t, n, "agprace")
	waitAgent(t, n, name, "connected")
	stop := make(chan struct{})
	var pauses sync.WaitGroup
	pauses.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := n.Service.Pause(t.Context(), spaces.CallerAPIKey(), name); err != nil {
				t.Errorf("pause: %v", err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok []string
	)
	for i := range 20 {
		wg.Go(func() {
			for j := range 5 {
				// Each run appends one line: a command run twice shows.
				run := fmt.Sprintf("%d-%d", i, j)
				res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", map[string]any{"command": "echo " + run + " >> /workspace/runs; echo ok"})
				var doc execDoc
				switch res.Status {
				case http.StatusOK:
					res.JSON(t, &doc)
					if doc.Stdout != "ok\n" || doc.ExitCode != 0 {
						t.Errorf("exec %s: %+v", run, doc)
					}
					mu.Lock()
					ok = append(ok, run)
					mu.Unlock()
				case http.StatusConflict:
					// Paused again between the service's resume and its
					// second try ("try again"): it did not run.
				default:
					t.Errorf("exec %s: %d %s", run, res.Status, res.Body)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	pauses.Wait()
	slices.Sort(ok)
	runs := execIn(t, n, name, "sort /workspace/runs")
	if got := strings.Fields(runs.Stdout); !slices.Equal(got, ok) {
		t.Fatalf("the commands that answered ran once each, the others not at all:\nran      %v\nanswered %v", got, ok)
	}
}

// hijack starts, through the real agent, a hostile agent of mode in the
// space, which dials the node's socket and takes the agent's place.
func hijack(t *testing.T, n *nodetest.Node, name, mode string) {
	t.Helper()
	waitAgent(t, n, name, "connected")
	bin, err := os.ReadFile(evilAgent(t, mode))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Engine.WriteFile(t.Context(), name, "/workspace/evil", spaces.FileContent{Mode: 0o755, Size: int64(len(bin)), Content: bytes.NewReader(bin)}); err != nil {
		t.Fatal(err)
	}
	execIn(t, n, name, "/workspace/evil /.clawdspace/run/agent.sock "+mode+" >/dev/null 2>&1 &")
	// Taken over once the real agent is gone: the node closes the old
	// connection when the new one passes its hello, and the agent ends
	// with its connection. An exec sent before that could be broken off
	// by the swap (503), which is not what the tests are about.
	eventually(t, "the hostile agent in place of the real one", 10*time.Second, func() bool {
		ps := asRoot(t, n, name, "ps -eo args")
		return strings.Contains(ps, "/workspace/evil") && !strings.Contains(ps, "/.clawdspace/bin/clawdspace-agent")
	})
}

// asRoot runs a shell command through the Engine API (another user than
// the space's never goes through the agent).
func asRoot(t *testing.T, n *nodetest.Node, name, script string) string {
	t.Helper()
	var out bytes.Buffer
	if _, err := n.Engine.Exec(t.Context(), name, spaces.ExecSpec{Cmd: []string{"sh", "-c", script}, User: "0", Stdout: &out, MaxOutput: 1 << 20}); err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return out.String()
}

// TestAgentHijackedSocket: code in a space took over the agent's socket
// with an agent that records what it is asked, floods output and never
// reads stdin. The node's own execs stay bounded in memory (H1), a
// command carrying credentials never reaches it (H4), and an exec whose
// stdin it does not read still ends at its timeout (M1).
func TestAgentHijackedSocket(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "aghijack")
	hijack(t, n, name, "spy")

	// The node's execs bound what they keep: past MaxOutput the exec
	// fails with ErrTooLarge, whatever the agent sends.
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out bytes.Buffer
		_, err := n.Engine.Exec(t.Context(), name, spaces.ExecSpec{Cmd: []string{"true"}, Stdout: &out, MaxOutput: 1 << 20})
		if errors.Is(err, spaces.ErrTooLarge) {
			if out.Len() > 1<<20 {
				t.Fatalf("kept %d bytes past the bound", out.Len())
			}
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("the spy never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grow := int64(after.HeapInuse) - int64(before.HeapInuse); grow > 64<<20 {
		t.Errorf("the node's heap grew by %d MiB", grow>>20)
	}

	// A command that carries credentials goes through the Engine API.
	const secret = "hijack-Token-1234567"
	var out bytes.Buffer
	code, err := n.Engine.Exec(t.Context(), name, spaces.ExecSpec{Cmd: []string{"sh", "-c", `echo "$TOK"`}, Env: []string{"TOK=" + secret}, Stdout: &out, Credentials: true})
	if err != nil || code != 0 || out.String() != secret+"\n" {
		t.Fatalf("exec with credentials: %d %v %q", code, err, out.String())
	}
	if spied := asRoot(t, n, name, "cat /tmp/spy"); !strings.Contains(spied, `"true"`) || strings.Contains(spied, secret) {
		t.Fatalf("what the spy saw: %.300q", spied)
	}

	// An exec whose stdin the agent never reads ends at its timeout.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := n.Engine.Exec(ctx, name, spaces.ExecSpec{Cmd: []string{"cat"}, Stdin: zeros{}})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("an exec with endless stdin and output ended without an error")
		}
	case <-time.After(time.Minute):
		t.Fatal("an exec whose stdin the agent does not read outlived its timeout by a minute")
	}
}

// zeros is an endless stdin.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
