package engine_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/engine"
	"github.com/adam91holt/clawdspace/spaces"
)

// stressRounds is how many rounds a race test runs:
// CLAWDSPACE_STRESS_ROUNDS, else def.
func stressRounds(t *testing.T, def int) int {
	t.Helper()
	if v := os.Getenv("CLAWDSPACE_STRESS_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("CLAWDSPACE_STRESS_ROUNDS=%q is not a positive number", v)
		}
		return n
	}
	return def
}

// freezerFile returns the file that tells whether a container's cgroup is
// frozen: freezer.state (cgroup v1) or cgroup.freeze (v2).
func freezerFile(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatalf("reading the cgroup of the space (the test runs on the engine's host): %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if strings.Contains(","+parts[1]+",", ",freezer,") {
			return "/sys/fs/cgroup/freezer" + parts[2] + "/freezer.state"
		}
		if parts[0] == "0" && parts[1] == "" {
			return "/sys/fs/cgroup" + parts[2] + "/cgroup.freeze"
		}
	}
	t.Fatalf("no freezer cgroup in %q", b)
	return ""
}

// frozen reads a freezer file: "THAWED"/"FREEZING"/"FROZEN" (v1), "0"/"1" (v2).
func frozen(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
	return strings.TrimSpace(string(b))
}

func thawed(state string) bool { return state == "THAWED" || state == "0" }

// raceSpace makes a space for a pause race in a namespace of its own
// (nodes of other tests on this engine pause idle spaces of the default
// namespace, without this engine's gate) and returns its engine, name and
// freezer file. Its clean-up never leaves the space frozen (a frozen
// container hangs docker stats for everyone).
func raceSpace(t *testing.T, base string) (*engine.Engine, string, string) {
	t.Helper()
	eng := newEngine(t, "race")
	name := uniqueName(base)
	cleanup(t, name, eng)
	create(t, eng, name)
	raw := eng.Client()
	ins, err := raw.ContainerInspect(t.Context(), eng.ContainerName(name), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id, file := ins.Container.ID, freezerFile(t, ins.Container.State.Pid)
	// Registered after cleanup, so it runs first.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = raw.ContainerUnpause(ctx, id, client.ContainerUnpauseOptions{})
		if s := frozen(t, file); !thawed(s) {
			t.Errorf("the space is still frozen (%s) after the test; thawing it by hand", s)
			_ = os.WriteFile(file, []byte(map[bool]string{true: "THAWED", false: "0"}[strings.HasSuffix(file, "freezer.state")]), 0o644)
		}
	})
	return eng, name, file
}

// resumeAndWait resumes the space of a race round, checks that its cgroup
// is thawed, and waits for the round's callers (wg) to finish.
func resumeAndWait(t *testing.T, eng *engine.Engine, name, file string, round int, wg *sync.WaitGroup, stuck string) {
	t.Helper()
	rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err := eng.Resume(rctx, name)
	cancel()
	if err != nil {
		t.Fatalf("round %d: resume: %v", round, err)
	}
	if s := frozen(t, file); !thawed(s) {
		t.Fatalf("round %d: the space is still frozen (%s) after the unpause; processes: %s", round, s, cgroupProcs(file))
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		// Longer than the callers' own one-minute deadline: a hang of the
		// engine shows as their deadline errors, a slow engine (a loaded
		// machine) is not taken for one. Where the callers wait says which step hangs (the gate, the
		// engine's create or start, the output stream).
		t.Logf("goroutines in the engine:\n%s", engineStacks())
		t.Fatalf("round %d: %s; freezer %s, processes: %s", round, stuck, frozen(t, file), cgroupProcs(file))
	}
}

// TestExecPauseRace races execs of `true` against a pause at a random
// moment (0-60 ms after them) and an unpause, round after round. Engine
// 20.10 hangs for good when it freezes an exec's process while that is
// still runc's init; every unpause must thaw, and then every exec answer.
func TestExecPauseRace(t *testing.T) {
	eng, name, file := raceSpace(t, "race")

	const execs = 4
	rounds := stressRounds(t, 200)
	var refused, ran int
	for round := 0; round < rounds; round++ {
		type answer struct {
			code int
			err  error
		}
		answers := make(chan answer, execs)
		var wg sync.WaitGroup
		for range execs {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				code, err := eng.Exec(ctx, name, spaces.ExecSpec{Cmd: []string{"true"}})
				answers <- answer{code, err}
			})
		}
		time.Sleep(time.Duration(rand.IntN(61)) * time.Millisecond) // the race's offset, not a wait for state
		pctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		perr := eng.Pause(pctx, name)
		cancel()
		if perr != nil {
			t.Fatalf("round %d: pause: %v", round, perr)
		}
		if s := frozen(t, file); thawed(s) {
			t.Fatalf("round %d: the pause answered but the space is not frozen (%s)", round, s)
		}

		// A pause may freeze a command that runs already; it ends once
		// thawed. So the unpause comes first, then every exec must answer.
		resumeAndWait(t, eng, name, file, round, &wg, "execs never answered")
		close(answers)
		for a := range answers {
			switch {
			case a.err == nil && a.code == 0:
				ran++
			case errors.Is(a.err, spaces.ErrNotRunning):
				refused++ // made while paused: the service resumes and retries
			default:
				t.Fatalf("round %d: exec answered code %d, err %v", round, a.code, a.err)
			}
		}
	}
	t.Logf("%d rounds: %d execs ran, %d found the space paused", rounds, ran, refused)
}

// cgroupProcs describes the processes of the cgroup of a freezer file, for
// failure messages: PID, name and state.
func cgroupProcs(freezerFile string) string {
	dir := freezerFile[:strings.LastIndexByte(freezerFile, '/')]
	b, _ := os.ReadFile(dir + "/cgroup.procs")
	var out []string
	for _, pid := range strings.Fields(string(b)) {
		comm, _ := os.ReadFile("/proc/" + pid + "/comm")
		stat, _ := os.ReadFile("/proc/" + pid + "/stat")
		state := ""
		if s := string(stat); strings.LastIndexByte(s, ')') > 0 {
			if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 {
				state = f[0]
			}
		}
		out = append(out, pid+" "+strings.TrimSpace(string(comm))+" "+state)
	}
	return strings.Join(out, ", ")
}

// TestTerminalPauseRace is TestExecPauseRace for TTY execs (terminals):
// two open at once, a pause 0-30 ms later, an unpause; every terminal
// must then end.
func TestTerminalPauseRace(t *testing.T) {
	eng, name, file := raceSpace(t, "termrace")

	const terms = 2
	rounds := stressRounds(t, 200) / 2
	for round := 0; round < max(rounds, 1); round++ {
		errs := make(chan error, terms)
		var wg sync.WaitGroup
		for range terms {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				term, err := eng.Terminal(ctx, name, spaces.TerminalSpec{Cmd: []string{"true"}, Cols: 80, Rows: 24})
				if errors.Is(err, spaces.ErrNotRunning) {
					errs <- nil // opened while paused: the service resumes and retries
					return
				}
				if err != nil {
					errs <- err
					return
				}
				defer term.Close()
				_, _ = io.Copy(io.Discard, term)
				_, err = term.Wait(ctx)
				errs <- err
			})
		}
		time.Sleep(time.Duration(rand.IntN(31)) * time.Millisecond) // the race's offset, not a wait for state
		pctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := eng.Pause(pctx, name); err != nil {
			t.Fatalf("round %d: pause: %v", round, err)
		}
		cancel()
		resumeAndWait(t, eng, name, file, round, &wg, "terminals never ended")
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: terminal: %v", round, err)
			}
		}
	}
}

// engineStacks returns the stacks of the goroutines that are in this
// package's code.
func engineStacks() string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "clawdspace/engine.") && !strings.Contains(g, "engineStacks") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
