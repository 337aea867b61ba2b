package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// The auto-sleep tests run one pass at a time with Tick on a fake clock.
// They are not parallel: a pass looks at every space on the engine, and on
// a clock minutes ahead of the real one the spaces of other tests look idle
// too. Go runs sequential tests while the parallel ones wait.

const autoSleepIdle = 10 * time.Minute

// autoSleepNode starts a node on clock with a Sleeper over its service.
func autoSleepNode(t *testing.T, clock *nodetest.FakeClock, dir string) (*nodetest.Node, *spaces.Sleeper) {
	t.Helper()
	n := nodetest.Start(t, nodetest.Options{Clock: clock, DataDir: dir, NoAutoSleep: true})
	// Only this test's spaces: other test processes may share the engine.
	mine := func(name string) bool { return strings.HasPrefix(name, "t-as") }
	s := spaces.NewSleeper(spaces.SleeperConfig{Service: n.Service, Clock: clock, IdleTimeout: autoSleepIdle, Only: mine})
	t.Cleanup(s.Close)
	return n, s
}

// autoSleepTick runs one pass and reports whether it paused name.
func autoSleepTick(t *testing.T, s *spaces.Sleeper, name string) bool {
	t.Helper()
	paused, err := s.Tick(t.Context())
	if err != nil {
		t.Fatalf("Tick: %v", err)
	}
	return slices.Contains(paused, name)
}

// wantStatus checks a space's status through the API and on the engine.
func wantStatus(t *testing.T, n *nodetest.Node, name, want string) {
	t.Helper()
	if got := getSpace(t, n, name).Status; got != want {
		t.Errorf("%s: status %s, want %s", name, got, want)
	}
	if paused := inspect(t, n, name).State.Paused; paused != (want == "paused") {
		t.Errorf("%s: engine says paused=%v, want %s", name, paused, want)
	}
}

// wantAutoSleepPause checks that the newest audit row of name is a
// space.pause by auto-sleep.
func wantAutoSleepPause(t *testing.T, n *nodetest.Node, name string) {
	t.Helper()
	events := auditEvents(t, n, "?space="+name)
	if len(events) == 0 {
		t.Fatalf("%s: no audit events", name)
	}
	if e := events[len(events)-1]; e.Type != spaces.EventPause || e.Actor != spaces.CallerAutoSleep().Actor {
		t.Errorf("%s: newest audit event %s by %s, want %s by %s", name, e.Type, e.Actor, spaces.EventPause, spaces.CallerAutoSleep().Actor)
	}
}

// isoMillis is how the API writes times.
func isoMillis(ts time.Time) string { return ts.UTC().Format("2006-01-02T15:04:05.000Z") }

func TestAutoSleepPausesIdleSpace(t *testing.T) {
	clock := nodetest.NewFakeClock(time.Now())
	n, s := autoSleepNode(t, clock, "")
	name := newSpace(t, n, "asidle")
	before := getSpace(t, n, name).LastActivity

	clock.Advance(autoSleepIdle - time.Minute)
	if autoSleepTick(t, s, name) {
		t.Fatal("paused a minute before the timeout")
	}
	wantStatus(t, n, name, "running")

	clock.Advance(2 * time.Minute)
	if !autoSleepTick(t, s, name) {
		t.Fatal("not paused a minute after the timeout")
	}
	wantStatus(t, n, name, "paused")
	wantAutoSleepPause(t, n, name)
	if got := getSpace(t, n, name).LastActivity; got != before {
		t.Errorf("lastActivity %s after the pause, was %s: pausing and reading are not activity", got, before)
	}
	rows := len(auditEvents(t, n, "?space="+name))
	if autoSleepTick(t, s, name) {
		t.Error("paused a paused space again")
	}
	if got := len(auditEvents(t, n, "?space="+name)); got != rows {
		t.Errorf("%d audit rows after a pass over the paused space, want %d", got, rows)
	}

	// An exec wakes it.
	if out := execIn(t, n, name, "echo awake"); out.Stdout != "awake\n" {
		t.Errorf("exec in the paused space = %+v", out)
	}
	wantStatus(t, n, name, "running")
}

func TestAutoSleepKeepsRecentlyActiveSpace(t *testing.T) {
	clock := nodetest.NewFakeClock(time.Now())
	n, s := autoSleepNode(t, clock, "")
	name := newSpace(t, n, "asactive")

	clock.Advance(autoSleepIdle - time.Minute)
	execIn(t, n, name, "true")
	clock.Advance(autoSleepIdle - time.Minute)
	if autoSleepTick(t, s, name) {
		t.Fatal("paused 9 minutes after an exec")
	}
	wantStatus(t, n, name, "running")

	clock.Advance(2 * time.Minute)
	if !autoSleepTick(t, s, name) {
		t.Fatal("not paused 11 minutes after the exec")
	}
	wantStatus(t, n, name, "paused")
}

func TestAutoSleepLastActivityIsPersistedValue(t *testing.T) {
	clock := nodetest.NewFakeClock(time.Now())
	n, _ := autoSleepNode(t, clock, "")
	name := newSpace(t, n, "aslast")

	clock.Advance(time.Minute)
	execIn(t, n, name, "true")
	act, err := n.Store.Activity(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	stored := act[name].LastActivity
	if want := clock.Now().Truncate(time.Millisecond); !stored.Equal(want) {
		t.Errorf("stored activity %v, want the exec's end %v", stored, want)
	}
	if got := getSpace(t, n, name).LastActivity; got != isoMillis(stored) {
		t.Errorf("GET lastActivity %s, want %s", got, isoMillis(stored))
	}
	if got := listSpaces(t, n)[name].LastActivity; got != isoMillis(stored) {
		t.Errorf("list lastActivity %s, want %s", got, isoMillis(stored))
	}
}

func TestAutoSleepWaitsForRunningExec(t *testing.T) {
	clock := nodetest.NewFakeClock(time.Now())
	n, s := autoSleepNode(t, clock, "")
	name := newSpace(t, n, "asexec")

	type answer struct {
		status int
		body   string
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		body := `{"command":"echo $$ > /workspace/.long.pid; exec sleep 3600"}`
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, n.URL+"/api/spaces/"+name+"/exec", strings.NewReader(body))
		if err != nil {
			done <- answer{err: err}
			return
		}
		req.Header.Set("Authorization", "Bearer "+nodetest.Key)
		req.Header.Set("Content-Type", "application/json")
		res, err := n.HTTP.Do(req)
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer res.Body.Close()
		data, err := io.ReadAll(res.Body)
		done <- answer{status: res.StatusCode, body: string(data), err: err}
	}()
	eventually(t, "the long exec to run", 30*time.Second, func() bool {
		procs, err := n.Engine.Top(t.Context(), name)
		if err != nil {
			t.Fatalf("listing processes: %v", err)
		}
		return slices.ContainsFunc(procs, func(p spaces.Process) bool { return strings.Contains(p.Command, "sleep 3600") })
	})

	clock.Advance(autoSleepIdle + time.Minute)
	if autoSleepTick(t, s, name) {
		t.Fatal("paused a space with a running exec")
	}
	wantStatus(t, n, name, "running")

	// End the exec from outside the node, so nothing but its end is activity.
	engineExec(t, n, name, "sh", "-c", "kill $(cat /workspace/.long.pid)")
	select {
	case a := <-done:
		if a.err != nil || a.status != http.StatusOK {
			t.Fatalf("long exec: %d %s %v", a.status, a.body, a.err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the long exec did not end after kill")
	}
	if got, want := getSpace(t, n, name).LastActivity, isoMillis(clock.Now()); got != want {
		t.Errorf("lastActivity %s after the exec ended, want %s", got, want)
	}
	if autoSleepTick(t, s, name) {
		t.Fatal("paused right after the exec ended")
	}
	wantStatus(t, n, name, "running")

	clock.Advance(autoSleepIdle)
	if !autoSleepTick(t, s, name) {
		t.Fatal("not paused a timeout after the exec ended")
	}
	wantStatus(t, n, name, "paused")
	wantAutoSleepPause(t, n, name)
}

func TestAutoSleepSkipsHeldSpace(t *testing.T) {
	clock := nodetest.NewFakeClock(time.Now())
	n, s := autoSleepNode(t, clock, "")
	name := newSpace(t, n, "ashold")

	release := n.Service.Hold(name)
	clock.Advance(autoSleepIdle + time.Minute)
	if autoSleepTick(t, s, name) {
		release()
		t.Fatal("paused a held space (an open terminal)")
	}
	wantStatus(t, n, name, "running")

	// Closing the terminal is activity: the idle time starts again.
	release()
	if autoSleepTick(t, s, name) {
		t.Fatal("paused right after the hold was released")
	}
	clock.Advance(autoSleepIdle)
	if !autoSleepTick(t, s, name) {
		t.Fatal("not paused a timeout after the release")
	}
	wantStatus(t, n, name, "paused")
}

func TestAutoSleepClockSurvivesRestart(t *testing.T) {
	clock := nodetest.NewFakeClock(time.Now())
	dir := t.TempDir()
	old, _ := autoSleepNode(t, clock, dir)
	active := newSpace(t, old, "asrsa")
	quiet := newSpace(t, old, "asrsq")
	clock.Advance(5 * time.Minute)
	execIn(t, old, active, "true")
	touched := clock.Now()
	old.Stop()

	// 14 minutes after the creates, 9 after the exec.
	clock.Advance(autoSleepIdle - time.Minute)
	n, s := autoSleepNode(t, clock, dir)
	if got := getSpace(t, n, active).LastActivity; got != isoMillis(touched) {
		t.Errorf("lastActivity after the restart %s, want %s", got, isoMillis(touched))
	}
	paused, err := s.Tick(t.Context())
	if err != nil {
		t.Fatalf("Tick: %v", err)
	}
	if slices.Contains(paused, active) {
		t.Error("paused the space active 9 minutes before: the restart reset the clock")
	}
	if !slices.Contains(paused, quiet) {
		t.Error("did not pause the space idle for 14 minutes")
	}
	wantStatus(t, n, active, "running")
	wantStatus(t, n, quiet, "paused")

	clock.Advance(2 * time.Minute)
	if !autoSleepTick(t, s, active) {
		t.Fatal("not paused 11 minutes after its exec")
	}
	wantStatus(t, n, active, "paused")
}

// A shell the node did not start (docker exec on the host, say) leaves its
// commands in the history file; that is activity too.
func TestAutoSleepCountsShellHistory(t *testing.T) {
	clock := nodetest.NewFakeClock(time.Now())
	n, s := autoSleepNode(t, clock, "")
	name := newSpace(t, n, "ashist")

	// History written 20 minutes from now, by the fake clock.
	written := clock.Now().Add(20 * time.Minute).Truncate(time.Second)
	engineExec(t, n, name, "touch", "-d", fmt.Sprintf("@%d", written.Unix()), spaces.HistoryFile)
	clock.Advance(25 * time.Minute)
	if autoSleepTick(t, s, name) {
		t.Fatal("paused 5 minutes after new shell history")
	}
	wantStatus(t, n, name, "running")
	if got := getSpace(t, n, name).LastActivity; got != isoMillis(written) {
		t.Errorf("lastActivity %s, want the history's time %s", got, isoMillis(written))
	}

	clock.Advance(6 * time.Minute)
	if !autoSleepTick(t, s, name) {
		t.Fatal("not paused 11 minutes after the shell history")
	}
	wantStatus(t, n, name, "paused")
}

// engineExec runs a command in a space through the Docker engine, past the
// node (so it is not activity), and fails unless it exits 0.
func engineExec(t *testing.T, n *nodetest.Node, name string, cmd ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c := n.Raw()
	cr, err := c.ExecCreate(ctx, spaces.ContainerPrefix+name, client.ExecCreateOptions{AttachStdout: true, AttachStderr: true, Cmd: cmd})
	if err != nil {
		t.Fatalf("creating exec %v: %v", cmd, err)
	}
	att, err := c.ExecAttach(ctx, cr.ID, client.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("starting exec %v: %v", cmd, err)
	}
	var out strings.Builder
	_, err = stdcopy.StdCopy(&out, &out, att.Reader)
	att.Close()
	if err != nil {
		t.Fatalf("reading exec %v: %v", cmd, err)
	}
	ins, err := c.ExecInspect(ctx, cr.ID, client.ExecInspectOptions{})
	if err != nil {
		t.Fatalf("inspecting exec %v: %v", cmd, err)
	}
	if ins.ExitCode != 0 {
		t.Fatalf("exec %v: exit %d: %s", cmd, ins.ExitCode, out.String())
	}
}
