package node_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// ingestHistory runs one pass of a new ingester on n and fails the test when
// it failed for space. Other tests' spaces run on the same engine and may
// vanish under the pass; their failures are not this test's.
func ingestHistory(t testing.TB, n *nodetest.Node, space string) {
	t.Helper()
	in := spaces.NewIngester(spaces.IngesterConfig{Service: n.Service})
	defer in.Close()
	err := in.IngestOnce(t.Context())
	if err != nil && (strings.Contains(err.Error(), "space "+space+":") || strings.Contains(err.Error(), "listing spaces")) {
		t.Fatalf("ingesting history: %v", err)
	}
}

// shellEvents returns the space.shell events of space as "ts command" lines.
func shellEvents(t testing.TB, n *nodetest.Node, space string) []string {
	t.Helper()
	var out []string
	for _, e := range auditEvents(t, n, "?limit=1000&space="+space) {
		if e.Type != spaces.EventShell {
			continue
		}
		if e.Actor != "shell" || e.Space != space {
			t.Errorf("shell event %+v: want actor shell and space %s", e, space)
		}
		cmd, _ := e.Meta["command"].(string)
		if strings.HasPrefix(cmd, "#1") {
			t.Errorf("a timestamp line was recorded as a command: %q", cmd)
		}
		out = append(out, e.TS+" "+cmd)
	}
	return out
}

func wantShell(t testing.TB, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("%s: space.shell events\n got  %q\n want %q", what, got, want)
	}
}

func TestHistoryIngest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := nodetest.Start(t, nodetest.Options{DataDir: dir})
	name := newSpace(t, n, "hist")
	const hist = " >> /workspace/.bash_history"

	execIn(t, n, name, `printf '#1700000000\necho one\n#1700000001\necho two\n'`+hist)
	ingestHistory(t, n, name)
	first := []string{"2023-11-14T22:13:20.000Z echo one", "2023-11-14T22:13:21.000Z echo two"}
	wantShell(t, "first pass", shellEvents(t, n, name), first...)

	ingestHistory(t, n, name)
	wantShell(t, "unchanged file", shellEvents(t, n, name), first...)

	execIn(t, n, name, `printf '#1700000002\nfor i in 1 2; do\n  echo $i\ndone\n#1700000003\necho fou'`+hist)
	ingestHistory(t, n, name)
	third := "2023-11-14T22:13:22.000Z for i in 1 2; do\n  echo $i\ndone"
	wantShell(t, "after an append", shellEvents(t, n, name), append(first, third)...)

	execIn(t, n, name, `printf 'r\n'`+hist)
	ingestHistory(t, n, name)
	upToFour := append(first, third, "2023-11-14T22:13:23.000Z echo four")
	wantShell(t, "after the partial line ends", shellEvents(t, n, name), upToFour...)

	// A restarted node with a new ingester goes on where the old one stopped.
	n.Stop()
	n = nodetest.Start(t, nodetest.Options{DataDir: dir})
	ingestHistory(t, n, name)
	wantShell(t, "after a restart", shellEvents(t, n, name), upToFour...)

	// Truncated and rewritten, shorter than what was recorded.
	execIn(t, n, name, `printf '#1700000100\necho replaced\n' > /workspace/.bash_history`)
	ingestHistory(t, n, name)
	replaced := append(upToFour, "2023-11-14T22:15:00.000Z echo replaced")
	wantShell(t, "after truncation", shellEvents(t, n, name), replaced...)

	// Replaced by a longer file with another start.
	execIn(t, n, name, `printf '#1700000200\necho another file entirely, longer than the one before\n#1700000201\necho ok\n' > /workspace/.bash_history.new && mv /workspace/.bash_history.new /workspace/.bash_history`)
	ingestHistory(t, n, name)
	wantShell(t, "after replacement", shellEvents(t, n, name), append(replaced,
		"2023-11-14T22:16:40.000Z echo another file entirely, longer than the one before",
		"2023-11-14T22:16:41.000Z echo ok")...)
}

// TestHistoryIngestBoundsAFlood: a space that floods its history file gets
// at most the per-pass bound of space.shell rows and one space.shell.skipped
// row, and the next pass adds nothing.
func TestHistoryIngestBoundsAFlood(t *testing.T) {
	t.Parallel()
	const size = 2 << 20 // 1 Mi commands "a"
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "histflood")
	if out := execIn(t, n, name, []string{"sh", "-c", "yes a | head -c 2097152 > /workspace/.bash_history"}); out.ExitCode != 0 {
		t.Fatalf("flooding the history: %+v", out)
	}
	count := func() (shell, skipped int, skip eventDoc) {
		t.Helper()
		for _, e := range auditEvents(t, n, "?limit=1000&space="+name) {
			switch e.Type {
			case spaces.EventShell:
				shell++
			case spaces.EventShellSkipped:
				skipped, skip = skipped+1, e
			}
		}
		return shell, skipped, skip
	}

	ingestHistory(t, n, name)
	shell, skipped, skip := count()
	if shell != spaces.DefaultPassCommands || skipped != 1 {
		t.Fatalf("after the flood: %d space.shell and %d space.shell.skipped rows, want %d and 1",
			shell, skipped, spaces.DefaultPassCommands)
	}
	wantBytes, wantCommands := float64(size-2*spaces.DefaultPassCommands), float64(size/2-spaces.DefaultPassCommands)
	if skip.Actor != "shell" || skip.Meta["bytes"] != wantBytes || skip.Meta["commands"] != wantCommands {
		t.Errorf("skip row = %+v, want actor shell, bytes %v, commands %v", skip, wantBytes, wantCommands)
	}

	ingestHistory(t, n, name)
	if s2, k2, _ := count(); s2 != shell || k2 != skipped {
		t.Errorf("the next pass added %d space.shell and %d space.shell.skipped rows", s2-shell, k2-skipped)
	}

	// What is typed after the flood is recorded as usual.
	execIn(t, n, name, `printf '#1700000000\necho after the flood\n' >> /workspace/.bash_history`)
	ingestHistory(t, n, name)
	got := shellEvents(t, n, name)
	if s3, k3, _ := count(); s3 != shell+1 || k3 != skipped || got[len(got)-1] != "2023-11-14T22:13:20.000Z echo after the flood" {
		t.Errorf("after an append: %d space.shell rows (last %q) and %d skips, want %d, the append, and %d",
			s3, got[len(got)-1], k3, shell+1, skipped)
	}
}

func TestHistoryIngestSkipsPausedSpace(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "histpause")
	execIn(t, n, name, `printf '#1700000000\necho while running\n' >> /workspace/.bash_history`)
	if res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/stop", nil); res.Status != http.StatusOK {
		t.Fatalf("stop: %d %s", res.Status, res.Body)
	}
	ingestHistory(t, n, name)
	wantShell(t, "paused space", shellEvents(t, n, name))
	if got := getSpace(t, n, name).Status; got != "paused" {
		t.Errorf("status after a pass = %q: the ingester must not wake a paused space", got)
	}

	if res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/start", nil); res.Status != http.StatusOK {
		t.Fatalf("start: %d %s", res.Status, res.Body)
	}
	ingestHistory(t, n, name)
	wantShell(t, "resumed space", shellEvents(t, n, name), "2023-11-14T22:13:20.000Z echo while running")
}

// TestHistoryIngestRealBash runs an interactive bash of the real sandbox
// image, which writes the history file itself.
func TestHistoryIngestRealBash(t *testing.T) {
	t.Parallel()
	const image = "clawdspace:latest"
	n := nodetest.Start(t, nodetest.Options{})
	if _, err := n.Raw().ImageInspect(t.Context(), image); cerrdefs.IsNotFound(err) {
		t.Fatalf("%s is not built (make test builds it)", image)
	} else if err != nil {
		t.Fatal(err)
	}
	name := nodetest.Name(t, n.Engine, "histbash")
	createSpace(t, n, name, map[string]any{"memory": "256m", "image": image})
	before := time.Now().Add(-time.Second)
	out := execIn(t, n, name, []string{"bash", "-c", `printf 'echo via-bash\n' | bash -i >/dev/null 2>&1`})
	after := time.Now().Add(time.Second)
	if out.ExitCode != 0 {
		t.Fatalf("bash -i: %+v", out)
	}
	ingestHistory(t, n, name)
	var found int
	for _, e := range auditEvents(t, n, "?space="+name) {
		if e.Type != spaces.EventShell {
			continue
		}
		if cmd := e.Meta["command"]; cmd != "echo via-bash" {
			t.Errorf("unexpected shell command %q", cmd)
			continue
		}
		found++
		if ts := parseISO(t, "ts", e.TS); ts.Before(before) || ts.After(after) {
			t.Errorf("ts = %s, want between %s and %s", e.TS, before.UTC(), after.UTC())
		}
	}
	if found != 1 {
		t.Errorf("%d space.shell events of echo via-bash, want 1", found)
	}
}
