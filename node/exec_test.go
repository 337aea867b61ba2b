package node_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
)

func TestExec(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "exec")

	tests := []struct {
		name       string
		command    any
		wantStdout string
		wantStderr string
		wantCode   int
	}{
		{name: "string via sh -c", command: "echo hello; echo $((6*7))", wantStdout: "hello\n42\n"},
		{name: "string with a pipe", command: "printf 'b\\na\\n' | sort", wantStdout: "a\nb\n"},
		{name: "argv is not a shell", command: []string{"echo", "$HOME", "a;b", "`id`"}, wantStdout: "$HOME a;b `id`\n"},
		{name: "argv keeps spaces in arguments", command: []string{"printf", "[%s]", "a  b", " c "}, wantStdout: "[a  b][ c ]"},
		{name: "stdout and stderr apart", command: "echo out; echo err >&2; echo out2", wantStdout: "out\nout2\n", wantStderr: "err\n"},
		{name: "spaces and newlines kept", command: `printf '  lead\n\n  mid  \ntrail  \n\n\n'`, wantStdout: "  lead\n\n  mid  \ntrail  \n\n\n"},
		{name: "no trailing newline", command: "printf 'x'", wantStdout: "x"},
		{name: "empty output", command: "true", wantStdout: ""},
		{name: "stderr only, byte-exact", command: `printf ' e1 \n\te2\n' >&2`, wantStderr: " e1 \n\te2\n"},
		{name: "UTF-8", command: "printf 'héllo wörld ✓ 日本語 🚀\\n'", wantStdout: "héllo wörld ✓ 日本語 🚀\n"},
		{name: "UTF-8 in argv", command: []string{"echo", "ünïcode ✓"}, wantStdout: "ünïcode ✓\n"},
		{name: "multi-line", command: "seq 1 5", wantStdout: "1\n2\n3\n4\n5\n"},
		{name: "exit 0", command: "exit 0", wantCode: 0},
		{name: "exit 1", command: "false", wantCode: 1},
		{name: "exit 42", command: "echo partial; exit 42", wantStdout: "partial\n", wantCode: 42},
		{name: "argv exit code", command: []string{"sh", "-c", "exit 7"}, wantCode: 7},
		{name: "command not found", command: "no-such-command-xyz", wantCode: 127, wantStderr: "\x00"},
		{name: "runs in /workspace as sandbox", command: "pwd; id -u; id -g", wantStdout: "/workspace\n1001\n1001\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := execIn(t, n, name, tt.command)
			if got.Stdout != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", got.Stdout, tt.wantStdout)
			}
			switch tt.wantStderr {
			case "\x00": // any non-empty stderr
				if got.Stderr == "" {
					t.Error("stderr is empty, want a message")
				}
			default:
				if got.Stderr != tt.wantStderr {
					t.Errorf("stderr = %q, want %q", got.Stderr, tt.wantStderr)
				}
			}
			if got.ExitCode != tt.wantCode {
				t.Errorf("exitCode = %d, want %d", got.ExitCode, tt.wantCode)
			}
			if got.Truncated {
				t.Error("truncated = true for a small output")
			}
		})
	}

	refused := []struct {
		name string
		body any
	}{
		{name: "empty string", body: map[string]any{"command": ""}},
		{name: "empty array", body: map[string]any{"command": []string{}}},
		{name: "array with an empty program", body: map[string]any{"command": []string{""}}},
		{name: "no command", body: map[string]any{}},
		{name: "null command", body: `{"command": null}`},
		{name: "empty body", body: ""},
		{name: "number", body: map[string]any{"command": 42}},
		{name: "object", body: map[string]any{"command": map[string]string{"a": "b"}}},
		{name: "array of numbers", body: map[string]any{"command": []int{1, 2}}},
		{name: "boolean", body: map[string]any{"command": true}},
		{name: "malformed JSON", body: `{"command": "id"`},
	}
	for _, tt := range refused {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			wantErrorContains(t, n.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", tt.body), http.StatusBadRequest)
		})
	}
}

func TestExecResumesTheSpace(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})

	t.Run("paused", func(t *testing.T) {
		name := newSpace(t, n, "execpause")
		if res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/stop", nil); res.Status != http.StatusOK {
			t.Fatalf("stop: %d %s", res.Status, res.Body)
		}
		if got := getSpace(t, n, name).Status; got != "paused" {
			t.Fatalf("status after stop = %q, want paused", got)
		}
		if out := execIn(t, n, name, "echo awake"); out.Stdout != "awake\n" || out.ExitCode != 0 {
			t.Errorf("exec on a paused space = %+v", out)
		}
		if got := getSpace(t, n, name).Status; got != "running" {
			t.Errorf("status after exec = %q, want running", got)
		}
	})

	t.Run("stopped", func(t *testing.T) {
		name := newSpace(t, n, "execstop")
		timeout := 0
		if _, err := n.Raw().ContainerStop(t.Context(), "clawdspace-"+name, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
			t.Fatalf("stopping the container: %v", err)
		}
		if got := getSpace(t, n, name).Status; got != "stopped" {
			t.Fatalf("status after a raw stop = %q, want stopped", got)
		}
		if out := execIn(t, n, name, []string{"echo", "started"}); out.Stdout != "started\n" || out.ExitCode != 0 {
			t.Errorf("exec on a stopped space = %+v", out)
		}
		if got := getSpace(t, n, name).Status; got != "running" {
			t.Errorf("status after exec = %q, want running", got)
		}
	})
}

func TestExecLargeOutput(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "big")
	const limit = 10 << 20

	tests := []struct {
		name          string
		command       string
		wantLen       int
		wantTruncated bool
	}{
		{name: "1 MiB kept", command: "head -c 1048576 /dev/zero | tr '\\0' a", wantLen: 1 << 20},
		{name: "exactly 10 MiB kept", command: "head -c 10485760 /dev/zero | tr '\\0' a", wantLen: limit},
		{name: "beyond 10 MiB truncated", command: "head -c 11000000 /dev/zero | tr '\\0' a", wantLen: limit, wantTruncated: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			out := execIn(t, n, name, tt.command)
			if len(out.Stdout) != tt.wantLen {
				t.Errorf("stdout has %d bytes, want %d", len(out.Stdout), tt.wantLen)
			}
			if strings.Trim(out.Stdout, "a") != "" {
				t.Error("stdout holds something other than the command's bytes")
			}
			if out.Truncated != tt.wantTruncated {
				t.Errorf("truncated = %v, want %v", out.Truncated, tt.wantTruncated)
			}
			if out.ExitCode != 0 {
				t.Errorf("exitCode = %d, want 0 (the command runs to its end)", out.ExitCode)
			}
			t.Logf("%s took %v", tt.name, time.Since(start))
		})
	}
	// The space is still usable after a truncated exec.
	if out := execIn(t, n, name, "echo ok"); out.Stdout != "ok\n" {
		t.Errorf("exec after a large output = %+v", out)
	}
}
