package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
)

// binPath is the clawdspace binary built once for the whole test run.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "clawdspace-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "clawdspace")
	build := exec.Command("go", "build", "-o", binPath, "../cmd/clawdspace")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building clawdspace: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cliEnv runs the built binary as a user would, against a real node, with
// a home, config and cache of its own.
type cliEnv struct {
	t    *testing.T
	node *nodetest.Node
	home string
	env  map[string]string
}

// newCLIEnv starts a node on the real engine and points the CLI at it
// through CLAWDSPACE_HOSTS and CLAWDSPACE_KEY.
func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	n := nodetest.Start(t, nodetest.Options{})
	e := newBareEnv(t)
	e.node = n
	e.env["CLAWDSPACE_HOSTS"] = n.URL
	e.env["CLAWDSPACE_KEY"] = nodetest.Key
	return e
}

// newBareEnv is an environment with an empty home and no configuration.
func newBareEnv(t *testing.T) *cliEnv {
	t.Helper()
	home := t.TempDir()
	return &cliEnv{t: t, home: home, env: map[string]string{
		"HOME":            home,
		"XDG_CONFIG_HOME": filepath.Join(home, ".config"),
		"XDG_CACHE_HOME":  filepath.Join(home, ".cache"),
		"PATH":            os.Getenv("PATH"),
	}}
}

// result is what one run of the binary did.
type result struct {
	Stdout string
	Stderr string
	Code   int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %q\nstderr: %q", r.Code, r.Stdout, r.Stderr)
}

func (e *cliEnv) environ() []string {
	var out []string
	for k, v := range e.env {
		out = append(out, k+"="+v)
	}
	return out
}

// command prepares the binary with args; the caller sets the streams.
func (e *cliEnv) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = e.environ()
	cmd.Dir = e.home
	return cmd
}

// run runs the binary with stdin (nil for none) and waits for it.
func (e *cliEnv) run(stdin io.Reader, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 3*time.Minute)
	defer cancel()
	cmd := e.command(ctx, args...)
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errOut
	err := cmd.Run()
	r := result{Stdout: out.String(), Stderr: errOut.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("running clawdspace %v: %v", args, err)
	}
	return r
}

// ok runs the binary and fails the test unless it exits 0.
func (e *cliEnv) ok(stdin io.Reader, args ...string) result {
	e.t.Helper()
	r := e.run(stdin, args...)
	if r.Code != 0 {
		e.t.Fatalf("clawdspace %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// jsonOf runs the binary and decodes its stdout as JSON into v.
func (e *cliEnv) jsonOf(v any, args ...string) {
	e.t.Helper()
	r := e.ok(nil, args...)
	if err := json.Unmarshal([]byte(r.Stdout), v); err != nil {
		e.t.Fatalf("clawdspace %s: stdout is not JSON: %v\n%s", strings.Join(args, " "), err, r)
	}
}

// space creates a small space through the node's API (not the CLI) and
// removes it when the test ends.
func (e *cliEnv) space(base string) string {
	e.t.Helper()
	name := nodetest.Name(e.t, e.node.Engine, base)
	resp := e.node.Do(e.t, "POST", "/api/spaces", map[string]any{"name": name, "memory": "256m", "cpus": 0.5})
	if resp.Status != 201 {
		e.t.Fatalf("creating %s: %d %s", name, resp.Status, resp.Body)
	}
	return name
}

// oneLineError checks that a failed run printed exactly one line on stderr
// that contains want.
func oneLineError(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.Code != code {
		t.Errorf("exit code %d, want %d\n%s", r.Code, code, r)
	}
	lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
	if len(lines) != 1 || lines[0] == "" {
		t.Errorf("stderr has %d lines, want one:\n%s", len(lines), r.Stderr)
	}
	if !strings.HasPrefix(r.Stderr, "clawdspace: ") || !strings.Contains(r.Stderr, want) {
		t.Errorf("stderr %q does not say %q", r.Stderr, want)
	}
}

// lineWaiter collects a stream's lines so a test can wait for one.
type lineWaiter struct {
	mu    sync.Mutex
	lines []string
	all   strings.Builder
	done  chan struct{}
	more  chan struct{}
}

func newLineWaiter(r io.Reader) *lineWaiter {
	w := &lineWaiter{done: make(chan struct{}), more: make(chan struct{}, 1)}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			w.mu.Lock()
			w.lines = append(w.lines, sc.Text())
			w.all.WriteString(sc.Text() + "\n")
			w.mu.Unlock()
			select {
			case w.more <- struct{}{}:
			default:
			}
		}
	}()
	return w
}

// wait returns the first line that match accepts, failing after timeout.
func (w *lineWaiter) wait(t *testing.T, timeout time.Duration, match func(string) bool) string {
	t.Helper()
	deadline := time.After(timeout)
	seen := 0
	for {
		w.mu.Lock()
		for ; seen < len(w.lines); seen++ {
			if match(w.lines[seen]) {
				l := w.lines[seen]
				w.mu.Unlock()
				return l
			}
		}
		all := w.all.String()
		w.mu.Unlock()
		select {
		case <-w.more:
		case <-w.done:
			w.mu.Lock()
			n := len(w.lines)
			w.mu.Unlock()
			if seen == n {
				t.Fatalf("the stream ended without the line; it had:\n%s", all)
			}
		case <-deadline:
			t.Fatalf("no such line within %s; got:\n%s", timeout, all)
		}
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func volumeInspectOptions() client.VolumeInspectOptions { return client.VolumeInspectOptions{} }
