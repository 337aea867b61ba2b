package cli

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/nodetest"
)

// listed is a space as `list --json` prints it.
type listed struct {
	Name    string  `json:"name"`
	Status  string  `json:"status"`
	Memory  int64   `json:"memory"`
	CPUs    float64 `json:"cpus"`
	Node    string  `json:"node"`
	NodeURL string  `json:"nodeUrl"`
}

func (e *cliEnv) listed(name string) (listed, bool) {
	e.t.Helper()
	var all []listed
	e.jsonOf(&all, "list", "--json")
	for _, s := range all {
		if s.Name == name {
			return s, true
		}
	}
	return listed{}, false
}

func TestCreateListStopStartDestroy(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	name := nodetest.Name(t, e.node.Engine, "life")

	r := e.ok(nil, "create", name, "--memory", "256m", "-c", "0.5")
	if !strings.Contains(r.Stdout, "Created space "+name) || !strings.Contains(r.Stdout, "256 MiB") {
		t.Errorf("create said %s", r)
	}
	if r := e.run(nil, "create", name, "-m", "256m"); r.Code != 1 || !strings.Contains(r.Stderr, "Space already exists") {
		t.Errorf("second create: %s", r)
	}

	r = e.ok(nil, "list")
	if lines := strings.Split(r.Stdout, "\n"); !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(r.Stdout, name) {
		t.Errorf("list table:\n%s", r.Stdout)
	}
	s, ok := e.listed(name)
	if !ok || s.Status != "running" || s.Memory != 256<<20 || s.CPUs != 0.5 || s.NodeURL != e.node.URL || s.Node == "" {
		t.Fatalf("list --json entry = %+v, %v", s, ok)
	}
	if r := e.ok(nil, "ls", "--server", e.node.URL); !strings.Contains(r.Stdout, name) {
		t.Errorf("ls --server: %s", r)
	}

	steps := []struct {
		args       []string
		wantOut    string
		wantStatus string
	}{
		{[]string{"stop", name}, "Paused " + name, "paused"},
		{[]string{"start", name}, "Started " + name, "running"},
		{[]string{"stop", "--server", e.node.URL, name}, "Paused " + name, "paused"},
		{[]string{"start", "-s", strings.TrimPrefix(e.node.URL, "http://"), name}, "Started " + name, "running"},
	}
	for _, st := range steps {
		if r := e.ok(nil, st.args...); !strings.Contains(r.Stdout, st.wantOut) {
			t.Errorf("%v said %s", st.args, r)
		}
		if s, _ := e.listed(name); s.Status != st.wantStatus {
			t.Errorf("after %v status = %q, want %q", st.args, s.Status, st.wantStatus)
		}
	}
	var res map[string]string
	e.jsonOf(&res, "stop", name, "--json")
	if res["message"] != "Space paused" || res["name"] != name || res["nodeUrl"] != e.node.URL {
		t.Errorf("stop --json = %v", res)
	}

	// destroy asks first; anything but y keeps the space, and exits 0.
	for _, answer := range []string{"n\n", "", "yes please\n"} {
		r := e.run(strings.NewReader(answer), "destroy", name)
		if r.Code != 0 || !strings.Contains(r.Stderr, "Destroy space "+name) || !strings.Contains(r.Stderr, "Cancelled") {
			t.Errorf("destroy answered %q: %s", answer, r)
		}
		if _, ok := e.listed(name); !ok {
			t.Fatalf("answer %q destroyed the space", answer)
		}
	}
	r = e.ok(strings.NewReader("y\n"), "destroy", name)
	if !strings.Contains(r.Stdout, "Destroyed "+name) {
		t.Errorf("destroy: %s", r)
	}
	if _, ok := e.listed(name); ok {
		t.Fatal("the space is still listed")
	}
	vol := "clawdspace-vol-" + name
	if _, err := e.node.Raw().VolumeInspect(t.Context(), vol, volumeInspectOptions()); err != nil {
		t.Fatalf("destroy without --volume removed the volume: %v", err)
	}

	// A new space of the same name gets the kept volume; -f --volume
	// removes both without asking.
	e.ok(nil, "create", name, "-m", "256m")
	e.ok(nil, "destroy", "-f", "--volume", name)
	if _, err := e.node.Raw().VolumeInspect(t.Context(), vol, volumeInspectOptions()); err == nil {
		t.Fatal("destroy --volume kept the volume")
	}
	oneLineError(t, e.run(nil, "destroy", "-f", name), 1, "not found")
}

func TestCreateOptions(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)

	t.Run("token from stdin reaches the space and is never printed", func(t *testing.T) {
		name := nodetest.Name(t, e.node.Engine, "tok")
		const token = "ghp_secretTOKEN123"
		r := e.ok(strings.NewReader(token+"\n"), "create", name, "-m", "256m", "--github-token-stdin", "--json")
		if strings.Contains(r.Stdout+r.Stderr, token) {
			t.Errorf("create printed the token: %s", r)
		}
		var sp map[string]any
		if err := jsonUnmarshal(r.Stdout, &sp); err != nil || sp["name"] != name || sp["node"] == nil {
			t.Errorf("create --json = %v, %v", sp, err)
		}
		if r := e.ok(nil, "exec", name, `printf %s "$GITHUB_TOKEN"`); r.Stdout != token {
			t.Errorf("GITHUB_TOKEN in the space = %q", r.Stdout)
		}
	})
	t.Run("template resources unless given", func(t *testing.T) {
		tpl := "cli-small-" + strings.ToLower(nodetest.Name(t, e.node.Engine, "x")[2:])
		e.ok(strings.NewReader("name: "+tpl+"\nresources: {memory: 300m, cpus: 0.25}\n"), "templates", "put", "-")
		t.Cleanup(func() { e.node.Do(t, "DELETE", "/api/templates/"+tpl, nil) })
		a := nodetest.Name(t, e.node.Engine, "tpl")
		e.ok(nil, "create", a, "-t", tpl)
		if s, _ := e.listed(a); s.Memory != 300<<20 || s.CPUs != 0.25 {
			t.Errorf("from the template: %+v", s)
		}
		b := nodetest.Name(t, e.node.Engine, "tpl")
		e.ok(nil, "create", b, "--template", tpl, "--cpus", "0.5")
		if s, _ := e.listed(b); s.Memory != 300<<20 || s.CPUs != 0.5 {
			t.Errorf("template with --cpus: %+v", s)
		}
	})
	t.Run("repository flags reach the node", func(t *testing.T) {
		name := nodetest.Name(t, e.node.Engine, "repo")
		oneLineError(t, e.run(nil, "create", name, "--repo", "http://example.invalid/x.git"), 1, "repoUrl must be https://")
		oneLineError(t, e.run(nil, "create", name, "-t", "offline", "--repo", "https://example.invalid/x.git", "--branch", "main", "--dest", "src"),
			1, "has no network")
	})
	t.Run("gpu on a node without one", func(t *testing.T) {
		oneLineError(t, e.run(nil, "create", nodetest.Name(t, e.node.Engine, "gpu"), "--gpu"), 1, "no node with a GPU")
		oneLineError(t, e.run(nil, "create", nodetest.Name(t, e.node.Engine, "gpu"), "-g", "-s", e.node.URL), 1, "no GPU")
	})
}

func TestExec(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	name := e.space("exec")
	binary := string([]byte{0, 1, 0xff, 0xfe, 'x', '\n'})
	tests := []struct {
		name       string
		stdin      string
		args       []string
		wantOut    string
		wantErrOut string
		wantCode   int
	}{
		{"stdin is piped", "hi\n", []string{"exec", name, "cat"}, "hi\n", "", 0},
		{"alias x", "", []string{"x", name, "echo", "a", "b"}, "a b\n", "", 0},
		{"exit code and streams", "", []string{"exec", name, "echo out; echo err >&2; exit 3"}, "out\n", "err\n", 3},
		{"binary stdin and stdout", binary, []string{"exec", name, "cat"}, binary, "", 0},
		{"env and cwd", "", []string{"exec", "-e", "A=1", "--env", "B=two words", "--cwd", "/", name, `echo "$A $B"; pwd`}, "1 two words\n/workspace\n", "", 0},
		{"flags after the name belong to the command", "", []string{"exec", name, "echo", "--timeout", "-n"}, "--timeout -n\n", "", 0},
		{"no stdin", "ignored", []string{"exec", "-n", name, "cat; echo done"}, "done\n", "", 0},
		{"timeout", "", []string{"exec", "--timeout", "500ms", name, "echo start; sleep 30"}, "start\n", "clawdspace: the command timed out after 500ms and was killed\n", 124},
		{"command not found", "", []string{"exec", name, "no-such-program"}, "", "not found", 127},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run(strings.NewReader(tt.stdin), tt.args...)
			if r.Code != tt.wantCode || r.Stdout != tt.wantOut || !strings.Contains(r.Stderr, tt.wantErrOut) {
				t.Errorf("got %s\nwant exit %d, stdout %q, stderr with %q", r, tt.wantCode, tt.wantOut, tt.wantErrOut)
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		r := e.run(nil, "exec", "--json", name, "echo out; echo err >&2; exit 5")
		var got struct {
			Stdout   string `json:"stdout"`
			Stderr   string `json:"stderr"`
			ExitCode int    `json:"exitCode"`
		}
		if err := jsonUnmarshal(r.Stdout, &got); err != nil || r.Code != 5 || got.Stdout != "out\n" || got.Stderr != "err\n" || got.ExitCode != 5 {
			t.Errorf("exec --json: %+v, %v\n%s", got, err, r)
		}
	})
	t.Run("missing space", func(t *testing.T) {
		oneLineError(t, e.run(nil, "exec", "t-no-such-space", "true"), 1, `space "t-no-such-space" not found`)
	})
	t.Run("paused space is resumed", func(t *testing.T) {
		e.ok(nil, "stop", name)
		if r := e.ok(nil, "exec", name, "echo awake"); r.Stdout != "awake\n" {
			t.Errorf("exec in a paused space: %s", r)
		}
	})
}

// TestExecStreamsLive checks that output shows before the command ends and
// that an interrupted exec exits 130.
func TestExecStreamsLive(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	name := e.space("live")
	cmd := e.command(t.Context(), "exec", "-n", name, "echo first; sleep 60; echo never")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := newLineWaiter(out)
	lines.wait(t, time.Minute, func(l string) bool { return l == "first" })
	if cmd.ProcessState != nil {
		t.Fatal("the command had ended before its first line was shown")
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-lines.done
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("interrupted exec exited %d, want 130", code)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	name := e.space("stats")
	var st struct {
		MemoryLimitBytes int64 `json:"memoryLimitBytes"`
		Pids             int   `json:"pids"`
	}
	e.jsonOf(&st, "stats", name, "--json")
	if st.MemoryLimitBytes != 256<<20 || st.Pids < 1 {
		t.Errorf("stats --json = %+v", st)
	}
	r := e.ok(nil, "stats", name)
	for _, want := range []string{"CPU:", "Memory:", "256 MiB", "Processes:"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("stats lacks %q:\n%s", want, r.Stdout)
		}
	}
	oneLineError(t, e.run(nil, "stats", "t-nope"), 1, `space "t-nope" not found`)
}
