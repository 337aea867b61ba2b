package node_test

import (
	"net/http"
	"strconv"
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

// historyTimes gives the times a test writes into the history of space:
// ep(i) is the "#<epoch>" of the i-th, iso(i) how the audit log shows it.
// They are whole seconds after the space was created, since the ingester
// dates no command before that, and it waits until the last (last) is
// past, since it dates none later than its pass.
func historyTimes(t testing.TB, n *nodetest.Node, space string, last int) (ep func(int) string, iso func(int) string) {
	t.Helper()
	created := parseISO(t, "created", getSpace(t, n, space).Created)
	base := created.Truncate(time.Second).Add(time.Second)
	eventually(t, "the clock to pass the history's times", 30*time.Second, func() bool {
		return !time.Now().Before(base.Add(time.Duration(last+1) * time.Second))
	})
	ep = func(i int) string { return strconv.FormatInt(base.Unix()+int64(i), 10) }
	iso = func(i int) string {
		return base.Add(time.Duration(i) * time.Second).UTC().Format("2006-01-02T15:04:05.000Z")
	}
	return ep, iso
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
	ep, iso := historyTimes(t, n, name, 6)
	const hist = " >> /workspace/.bash_history"

	execIn(t, n, name, `printf '#`+ep(0)+`\necho one\n#`+ep(1)+`\necho two\n'`+hist)
	ingestHistory(t, n, name)
	first := []string{iso(0) + " echo one", iso(1) + " echo two"}
	wantShell(t, "first pass", shellEvents(t, n, name), first...)

	ingestHistory(t, n, name)
	wantShell(t, "unchanged file", shellEvents(t, n, name), first...)

	execIn(t, n, name, `printf '#`+ep(2)+`\nfor i in 1 2; do\n  echo $i\ndone\n#`+ep(3)+`\necho fou'`+hist)
	ingestHistory(t, n, name)
	third := iso(2) + " for i in 1 2; do\n  echo $i\ndone"
	wantShell(t, "after an append", shellEvents(t, n, name), append(first, third)...)

	execIn(t, n, name, `printf 'r\n'`+hist)
	ingestHistory(t, n, name)
	upToFour := append(first, third, iso(3)+" echo four")
	wantShell(t, "after the partial line ends", shellEvents(t, n, name), upToFour...)

	// A restarted node with a new ingester goes on where the old one stopped.
	n.Stop()
	n = nodetest.Start(t, nodetest.Options{DataDir: dir})
	ingestHistory(t, n, name)
	wantShell(t, "after a restart", shellEvents(t, n, name), upToFour...)

	// Truncated and rewritten, shorter than what was recorded.
	execIn(t, n, name, `printf '#`+ep(4)+`\necho replaced\n' > /workspace/.bash_history`)
	ingestHistory(t, n, name)
	replaced := append(upToFour, iso(4)+" echo replaced")
	wantShell(t, "after truncation", shellEvents(t, n, name), replaced...)

	// Replaced by a longer file with another start.
	execIn(t, n, name, `printf '#`+ep(5)+`\necho another file entirely, longer than the one before\n#`+ep(6)+`\necho ok\n' > /workspace/.bash_history.new && mv /workspace/.bash_history.new /workspace/.bash_history`)
	ingestHistory(t, n, name)
	wantShell(t, "after replacement", shellEvents(t, n, name), append(replaced,
		iso(5)+" echo another file entirely, longer than the one before",
		iso(6)+" echo ok")...)
}

// TestHistoryIngestBoundsAFlood: a space that floods its history file gets
// at most the per-pass bound of space.shell rows and one space.shell.skipped
// row, and the next pass adds nothing.
func TestHistoryIngestBoundsAFlood(t *testing.T) {
	t.Parallel()
	const size = 2 << 20 // 1 Mi commands "a"
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "histflood")
	ep, iso := historyTimes(t, n, name, 0)
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
	execIn(t, n, name, `printf '#`+ep(0)+`\necho after the flood\n' >> /workspace/.bash_history`)
	ingestHistory(t, n, name)
	got := shellEvents(t, n, name)
	if s3, k3, _ := count(); s3 != shell+1 || k3 != skipped || got[len(got)-1] != iso(0)+" echo after the flood" {
		t.Errorf("after an append: %d space.shell rows (last %q) and %d skips, want %d, the append, and %d",
			s3, got[len(got)-1], k3, shell+1, skipped)
	}
}

func TestHistoryIngestSkipsPausedSpace(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "histpause")
	ep, iso := historyTimes(t, n, name, 0)
	execIn(t, n, name, `printf '#`+ep(0)+`\necho while running\n' >> /workspace/.bash_history`)
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
	wantShell(t, "resumed space", shellEvents(t, n, name), iso(0)+" echo while running")
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

// TestHistoryCannotFalsifyOrFloodTheAudit is issue 11 item 6's reproduction
// through a real space: "#32503680000" lines (year 3000) and entries dated
// before the space existed are dated into the window the node can vouch
// for, with the claimed time kept in meta; every row is marked as reported
// by the space; a 480-entry, 3.5 MB flood is bounded per pass, and what one
// space records is bounded over its passes.
func TestHistoryCannotFalsifyOrFloodTheAudit(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "histlie")
	created := parseISO(t, "created", getSpace(t, n, name).Created)
	execIn(t, n, name, `printf '#32503680000\necho from the year 3000\n#1000000000\necho from 2001\n' >> /workspace/.bash_history`)
	ingestHistory(t, n, name)
	now := time.Now()
	events := auditEvents(t, n, "?limit=1000&space="+name+"&type="+spaces.EventShell)
	if len(events) != 2 {
		t.Fatalf("space.shell rows = %+v, want 2", events)
	}
	for i, claimed := range []float64{32503680000, 1000000000} {
		e := events[i]
		ts := parseISO(t, "ts", e.TS)
		if ts.Before(created.Truncate(time.Second)) || ts.After(now) { // the engine's list gives whole seconds
			t.Errorf("%q dated %s, want between the space's creation %s and now %s", e.Meta["command"], e.TS, created, now)
		}
		if e.Meta["reportedTs"] != claimed || e.Source != spaces.SourceSpace {
			t.Errorf("%q: reportedTs %v, source %q; want %v and space", e.Meta["command"], e.Meta["reportedTs"], e.Source, claimed)
		}
	}
	if others := auditEvents(t, n, "?limit=1&space="+name+"&type="+spaces.EventCreate); len(others) != 1 || others[0].Source != spaces.SourceNode {
		t.Errorf("space.create row = %+v, want source node", others)
	}
	if body := bodyOf(t, page(t, n, http.MethodGet, "/audit?space="+name, nil)); !strings.Contains(body, "shell (reported by the space)") {
		t.Errorf("the dashboard's audit page does not say the shell rows are the space's report")
	}

	// The flood: 480 entries of 7,000 bytes each, all from the year 3000.
	execIn(t, n, name, []string{"sh", "-c", `i=0; cmd=$(head -c 7000 /dev/zero | tr '\0' x); while [ $i -lt 480 ]; do printf '#32503680000\necho %s\n' "$cmd"; i=$((i+1)); done >> /workspace/.bash_history`})
	in := spaces.NewIngester(spaces.IngesterConfig{Service: n.Service, SpaceHourCommands: 150})
	defer in.Close()
	pass := func() (shell, skipped, metaBytes int) {
		t.Helper()
		if err := in.IngestOnce(t.Context()); err != nil && strings.Contains(err.Error(), name) {
			t.Fatalf("ingesting: %v", err)
		}
		now := time.Now()
		for _, e := range auditEvents(t, n, "?limit=1000&space="+name) {
			switch e.Type {
			case spaces.EventShell:
				shell++
				cmd, _ := e.Meta["command"].(string)
				metaBytes += len(cmd)
				if parseISO(t, "ts", e.TS).After(now) {
					t.Errorf("a row dated %s, after now", e.TS)
				}
			case spaces.EventShellSkipped:
				skipped++
			}
		}
		return shell - 2, skipped, metaBytes
	}
	shell, skipped, size := pass()
	// 1 MiB read per pass holds 149 entries of 7 KB; each is cut to 4 KiB.
	if shell == 0 || shell > 150 || skipped != 1 || size > 1<<20 {
		t.Errorf("one pass of the flood: %d rows (%d bytes of commands), %d skipped rows; want at most 150 rows, 1 MiB, one skip", shell, size, skipped)
	}
	// More of it in the same hour: the space's hourly bound holds.
	execIn(t, n, name, []string{"sh", "-c", `i=0; while [ $i -lt 480 ]; do printf '#32503680000\necho again\n'; i=$((i+1)); done >> /workspace/.bash_history`})
	shell, skipped, _ = pass()
	if shell != 150 || skipped != 2 {
		t.Errorf("after a second flood in the same hour: %d rows, %d skipped rows; want the hour's 150 and a second skip", shell, skipped)
	}
}
