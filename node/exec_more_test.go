package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

type execOut struct {
	Stdout, Stderr      string
	ExitCode            int
	TimedOut, Truncated bool
}

func execJSON(t *testing.T, n *nodetest.Node, name string, body map[string]any) (int, execOut) {
	t.Helper()
	r := n.Do(t, "POST", "/api/spaces/"+name+"/exec", body)
	var out execOut
	if r.Status == http.StatusOK {
		r.JSON(t, &out)
	}
	return r.Status, out
}

func TestExecOptions(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "execopts")
	if _, code := sh(t, n, name, "mkdir -p /workspace/sub/dir"); code != 0 {
		t.Fatal("mkdir failed")
	}
	tests := []struct {
		name   string
		body   map[string]any
		status int
		want   execOut
	}{
		{"env", map[string]any{"command": `printf %s "$GREETING"`, "env": map[string]string{"GREETING": "hi there"}}, 200, execOut{Stdout: "hi there"}},
		{"cwd", map[string]any{"command": "pwd", "cwd": "/sub/dir"}, 200, execOut{Stdout: "/workspace/sub/dir\n"}},
		{"stdin", map[string]any{"command": []string{"cat"}, "stdin": "line one\nline two\n"}, 200, execOut{Stdout: "line one\nline two\n"}},
		{"stdin base64", map[string]any{"command": []string{"wc", "-c"}, "stdinBase64": "AAEC"}, 200, execOut{Stdout: "3\n"}},
		{"output cap", map[string]any{"command": "printf 0123456789", "maxOutputBytes": 4}, 200, execOut{Stdout: "0123", Truncated: true}},
		{"timeout", map[string]any{"command": "echo started; sleep 30", "timeoutMs": 500}, 200, execOut{ExitCode: 124, TimedOut: true}},
		{"cwd outside", map[string]any{"command": "pwd", "cwd": "/../etc"}, 400, execOut{}},
		{"bad env name", map[string]any{"command": "true", "env": map[string]string{"A-B": "x"}}, 400, execOut{}},
		{"zero timeout", map[string]any{"command": "true", "timeoutMs": 0}, 400, execOut{}},
		{"negative cap", map[string]any{"command": "true", "maxOutputBytes": -1}, 400, execOut{}},
		{"stdin twice", map[string]any{"command": "true", "stdin": "a", "stdinBase64": "YQ=="}, 400, execOut{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, got := execJSON(t, n, name, tt.body)
			if status != tt.status {
				t.Fatalf("status = %d, want %d", status, tt.status)
			}
			if status != 200 {
				return
			}
			if tt.want.TimedOut {
				// What ran before the kill may or may not have been read.
				got.Stdout = ""
			}
			if got != tt.want {
				t.Fatalf("exec = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// countSleepers counts processes of the space running "sleep 7777".
func countSleepers(t *testing.T, n *nodetest.Node, name string) int {
	t.Helper()
	out, _ := sh(t, n, name, "ps -o args | grep -c '^sleep 7777$' || true")
	var c int
	for _, ch := range strings.TrimSpace(out) {
		c = c*10 + int(ch-'0')
	}
	return c
}

// TestExecTimeoutKillsProcessTree: the timeout kills the command and the
// processes it started, including ones in the background.
func TestExecTimeoutKillsProcessTree(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "killtree")
	_, got := execJSON(t, n, name, map[string]any{"command": "sleep 7777 & (sleep 7777 &) ; sh -c 'sleep 7777'", "timeoutMs": 800})
	if !got.TimedOut || got.ExitCode != 124 {
		t.Fatalf("exec = %+v", got)
	}
	eventually(t, "sleepers killed", 10*time.Second, func() bool { return countSleepers(t, n, name) == 0 })
}

func TestExecStream(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "stream")
	req, _ := http.NewRequest("POST", n.URL+"/api/spaces/"+name+"/exec",
		strings.NewReader(`{"command":"echo one; sleep 0.2; echo two >&2; printf 'x\\377'; exit 3"}`))
	req.Header.Set("Authorization", "Bearer "+nodetest.Key)
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := n.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("content type %q", ct)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	var stdout, stderr string
	for _, l := range lines[:len(lines)-1] {
		switch l["stream"] {
		case "stdout":
			if d, ok := l["data"].(string); ok {
				stdout += d
			} else {
				stdout += "<b64:" + l["dataBase64"].(string) + ">"
			}
		case "stderr":
			stderr += l["data"].(string)
		default:
			t.Fatalf("unexpected line %v", l)
		}
	}
	last := lines[len(lines)-1]
	if stdout != "one\n<b64:eP8=>" || stderr != "two\n" || last["exitCode"] != float64(3) {
		t.Fatalf("stdout %q stderr %q last %v (lines %v)", stdout, stderr, last, lines)
	}
	// ?stream=true works too, and errors before the start are plain JSON.
	if r := n.Do(t, "POST", "/api/spaces/nope-"+name+"/exec?stream=true", map[string]any{"command": "true"}); r.Status != 404 {
		t.Fatalf("missing space, streamed = %d %s", r.Status, r.Body)
	}
}

// TestExecStreamClientGone: when the client disconnects, the command and
// what it started are killed.
func TestExecStreamClientGone(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "gone")
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", n.URL+"/api/spaces/"+name+"/exec?stream=true",
		strings.NewReader(`{"command":"sleep 7777 & echo ready; sleep 7777"}`))
	req.Header.Set("Authorization", "Bearer "+nodetest.Key)
	resp, err := n.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, "ready") {
		t.Fatalf("first line %q, %v", line, err)
	}
	// The second sleep starts after the echo: wait for it.
	eventually(t, "both sleepers running before the disconnect", 10*time.Second, func() bool { return countSleepers(t, n, name) == 2 })
	cancel()
	resp.Body.Close()
	eventually(t, "sleepers killed after the client left", 10*time.Second, func() bool { return countSleepers(t, n, name) == 0 })
}

// TestShutdownEndsRunningExecs: a node that stops gives requests a grace
// period, then kills the commands still running for them.
func TestShutdownEndsRunningExecs(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{ShutdownGrace: 300 * time.Millisecond})
	name := newSpace(t, n, "shutdown")
	req, _ := http.NewRequest("POST", n.URL+"/api/spaces/"+name+"/exec?stream=true", strings.NewReader(`{"command":"echo ready; sleep 7777"}`))
	req.Header.Set("Authorization", "Bearer "+nodetest.Key)
	resp, err := n.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.Contains(line, "ready") {
		t.Fatalf("first line %q, %v", line, err)
	}
	n.Stop()
	count := func() int {
		var out strings.Builder
		if _, err := n.Engine.Exec(context.Background(), name, spaces.ExecSpec{Cmd: []string{"sh", "-c", "ps -o args | grep -c '^sleep 7777$' || true"}, Stdout: &out}); err != nil {
			t.Fatal(err)
		}
		return int(strings.TrimSpace(out.String())[0] - '0')
	}
	eventually(t, "the command killed after the grace period", 10*time.Second, func() bool { return count() == 0 })
}
