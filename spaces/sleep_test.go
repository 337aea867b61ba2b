package spaces_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

// The node package's autosleep tests run the Sleeper against the real engine
// and store; these pin its rules, and the races, with fakes.

type sleepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *sleepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// sleepStore keeps activity and audit events in memory.
type sleepStore struct {
	spaces.Store
	mu     sync.Mutex
	act    map[string]spaces.SpaceActivity
	events []spaces.Event
}

func (s *sleepStore) EnsureTemplate(context.Context, spaces.Template) error { return nil }
func (s *sleepStore) PutTemplate(context.Context, spaces.Template) error    { return nil }

func (s *sleepStore) Record(_ context.Context, e spaces.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	return nil
}

func (s *sleepStore) Touch(_ context.Context, space string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.act[space]
	if at.After(a.LastActivity) {
		a.LastActivity = at
	}
	s.act[space] = a
	return nil
}

func (s *sleepStore) Activity(context.Context) (map[string]spaces.SpaceActivity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.act), nil
}

func (s *sleepStore) SpaceActivity(_ context.Context, space string) (spaces.SpaceActivity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.act[space], nil
}

func (s *sleepStore) lastActivity(space string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.act[space].LastActivity
}

func (s *sleepStore) eventList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.events {
		out = append(out, e.Space+" "+e.Type+" "+e.Actor)
	}
	return out
}

// sleepEngine lists spaces, pauses and resumes them, and stats their shell
// history.
type sleepEngine struct {
	spaces.Engine
	mu       sync.Mutex
	spaces   map[string]spaces.Space
	history  map[string]time.Time
	pauseErr map[string]error
	onPause  func(name string)
	onStat   func(name string)
	lists    int
}

func (e *sleepEngine) List(context.Context) ([]spaces.Space, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lists++
	return slices.Collect(maps.Values(e.spaces)), nil
}

func (e *sleepEngine) Pause(_ context.Context, name string) error {
	if e.onPause != nil {
		e.onPause(name)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.pauseErr[name]; err != nil {
		return err
	}
	sp := e.spaces[name]
	sp.Status = spaces.StatusPaused
	e.spaces[name] = sp
	return nil
}

func (e *sleepEngine) Resume(_ context.Context, name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	sp := e.spaces[name]
	sp.Status = spaces.StatusRunning
	e.spaces[name] = sp
	return nil
}

func (e *sleepEngine) StatPath(_ context.Context, name, p string, _ bool) (spaces.FileInfo, error) {
	if e.onStat != nil {
		e.onStat(name)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	mt, ok := e.history[name]
	if !ok || p != spaces.HistoryFile {
		return spaces.FileInfo{}, spaces.Errorf(spaces.ErrNotFound, "No such file or folder: %s", p)
	}
	return spaces.FileInfo{Name: ".bash_history", Path: p, Type: spaces.TypeFile, MTime: mt}, nil
}

func (e *sleepEngine) status(name string) spaces.Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.spaces[name].Status
}

const testIdle = 10 * time.Minute

type sleepFixture struct {
	svc     *spaces.Service
	eng     *sleepEngine
	store   *sleepStore
	clock   *sleepClock
	sleeper *spaces.Sleeper
}

// newSleepFixture returns a Sleeper with a 10-minute timeout over fakes,
// its clock at a fixed time.
func newSleepFixture(t *testing.T) *sleepFixture {
	t.Helper()
	f := &sleepFixture{
		eng:   &sleepEngine{spaces: map[string]spaces.Space{}, history: map[string]time.Time{}, pauseErr: map[string]error{}},
		store: &sleepStore{act: map[string]spaces.SpaceActivity{}},
		clock: &sleepClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
	}
	svc, err := spaces.New(t.Context(), spaces.Config{Engine: f.eng, Store: f.store, Clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	f.sleeper = spaces.NewSleeper(spaces.SleeperConfig{Service: svc, IdleTimeout: testIdle})
	t.Cleanup(f.sleeper.Close)
	return f
}

// add puts a space on the engine, created an hour ago, with its last
// activity idle before the clock (none recorded when idle is negative).
func (f *sleepFixture) add(name string, status spaces.Status, idle time.Duration) {
	now := f.clock.Now()
	f.eng.spaces[name] = spaces.Space{Name: name, Status: status, Created: now.Add(-time.Hour)}
	if idle >= 0 {
		f.store.act[name] = spaces.SpaceActivity{LastActivity: now.Add(-idle), StartedAt: now.Add(-time.Hour)}
	}
}

func TestSleeperTick(t *testing.T) {
	tests := []struct {
		name    string
		status  spaces.Status
		idle    time.Duration // negative: no activity recorded
		created time.Duration // with no activity: how long ago it was created
		held    bool
		history time.Duration // > 0: shell history written this long ago
		want    bool
	}{
		{name: "idle past the timeout", status: spaces.StatusRunning, idle: testIdle + time.Minute, want: true},
		{name: "idle exactly the timeout", status: spaces.StatusRunning, idle: testIdle, want: true},
		{name: "active just under the timeout", status: spaces.StatusRunning, idle: testIdle - time.Millisecond},
		{name: "already paused", status: spaces.StatusPaused, idle: time.Hour},
		{name: "stopped", status: spaces.StatusStopped, idle: time.Hour},
		{name: "running exec or open terminal", status: spaces.StatusRunning, idle: time.Hour, held: true},
		{name: "no activity recorded, created long ago", status: spaces.StatusRunning, idle: -1, created: time.Hour, want: true},
		{name: "no activity recorded, created recently", status: spaces.StatusRunning, idle: -1, created: time.Minute},
		{name: "new shell history", status: spaces.StatusRunning, idle: time.Hour, history: time.Minute},
		{name: "old shell history", status: spaces.StatusRunning, idle: time.Hour, history: testIdle + time.Second, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSleepFixture(t)
			now := f.clock.Now()
			f.add("sp", tt.status, tt.idle)
			if tt.idle < 0 {
				sp := f.eng.spaces["sp"]
				sp.Created = now.Add(-tt.created)
				f.eng.spaces["sp"] = sp
			}
			if tt.held {
				release := f.svc.Hold("sp")
				defer release()
			}
			if tt.history > 0 {
				f.eng.history["sp"] = now.Add(-tt.history)
			}
			before := f.store.lastActivity("sp")

			paused, err := f.sleeper.Tick(t.Context())
			if err != nil {
				t.Fatalf("Tick: %v", err)
			}
			if got := len(paused) == 1 && paused[0] == "sp"; got != tt.want || len(paused) > 1 {
				t.Errorf("paused = %v, want sp paused: %v", paused, tt.want)
			}
			wantStatus := tt.status
			if tt.want {
				wantStatus = spaces.StatusPaused
			}
			if got := f.eng.status("sp"); got != wantStatus {
				t.Errorf("status = %s, want %s", got, wantStatus)
			}
			var wantEvents []string
			if tt.want {
				wantEvents = []string{"sp space.pause auto-sleep"}
			}
			if got := f.store.eventList(); !slices.Equal(got, wantEvents) {
				t.Errorf("audit = %q, want %q", got, wantEvents)
			}
			wantAct := before
			if tt.history > 0 && now.Add(-tt.history).After(before) {
				wantAct = now.Add(-tt.history)
			}
			if got := f.store.lastActivity("sp"); !got.Equal(wantAct) {
				t.Errorf("last activity = %v, want %v (pausing is not activity; new history is)", got, wantAct)
			}
		})
	}
}

func TestSleeperOneFailureDoesNotStopOthers(t *testing.T) {
	f := newSleepFixture(t)
	for _, name := range []string{"a", "b", "c"} {
		f.add(name, spaces.StatusRunning, time.Hour)
	}
	f.eng.pauseErr["b"] = errors.New("engine said no")
	paused, err := f.sleeper.Tick(t.Context())
	slices.Sort(paused)
	if !slices.Equal(paused, []string{"a", "c"}) {
		t.Errorf("paused = %v, want [a c]", paused)
	}
	if err == nil || !strings.Contains(err.Error(), "b") || !strings.Contains(err.Error(), "engine said no") {
		t.Errorf("err = %v, want the failure of b", err)
	}
	if got := f.eng.status("b"); got != spaces.StatusRunning {
		t.Errorf("b is %s", got)
	}
}

// A pause the engine refuses because a command is starting in the space
// (engine.errStarting, a conflict) is not a failure: the next pass tries.
func TestSleeperStartingCommandIsNotAFailure(t *testing.T) {
	f := newSleepFixture(t)
	f.add("a", spaces.StatusRunning, time.Hour)
	f.add("b", spaces.StatusRunning, time.Hour)
	f.eng.pauseErr["b"] = spaces.Errorf(spaces.ErrConflict, "Space is starting a command; pause it again in a moment")
	paused, err := f.sleeper.Tick(t.Context())
	if err != nil {
		t.Errorf("err = %v, want none", err)
	}
	if !slices.Equal(paused, []string{"a"}) {
		t.Errorf("paused = %v, want [a]", paused)
	}
	delete(f.eng.pauseErr, "b")
	if paused, err := f.sleeper.Tick(t.Context()); err != nil || !slices.Equal(paused, []string{"b"}) {
		t.Errorf("next pass: paused %v, err %v; want [b]", paused, err)
	}
}

// An exec marks its space busy without the space's lock; one that starts
// while auto-sleep pauses the space must not stay frozen.
func TestSleeperResumesWhenExecStartsDuringPause(t *testing.T) {
	f := newSleepFixture(t)
	f.add("sp", spaces.StatusRunning, time.Hour)
	var release func()
	f.eng.onPause = func(name string) { release = f.svc.Hold(name) }
	paused, err := f.sleeper.Tick(t.Context())
	if err != nil {
		t.Fatalf("Tick: %v", err)
	}
	release()
	if len(paused) != 0 {
		t.Errorf("paused = %v, want none", paused)
	}
	if got := f.eng.status("sp"); got != spaces.StatusRunning {
		t.Errorf("status = %s, want running", got)
	}
	want := []string{"sp space.pause auto-sleep", "sp space.start auto-sleep"}
	if got := f.store.eventList(); !slices.Equal(got, want) {
		t.Errorf("audit = %q, want %q", got, want)
	}
}

// Activity recorded after the list (a file access, say) is seen under the
// space's lock, before the pause.
func TestSleeperRechecksActivityBeforePausing(t *testing.T) {
	f := newSleepFixture(t)
	f.add("sp", spaces.StatusRunning, time.Hour)
	f.eng.onStat = func(name string) { _ = f.store.Touch(context.Background(), name, f.clock.Now()) }
	paused, err := f.sleeper.Tick(t.Context())
	if err != nil || len(paused) != 0 {
		t.Fatalf("Tick = %v, %v; want nothing paused", paused, err)
	}
	if got := f.eng.status("sp"); got != spaces.StatusRunning {
		t.Errorf("status = %s, want running", got)
	}
	if got := f.store.eventList(); len(got) != 0 {
		t.Errorf("audit = %q, want nothing", got)
	}
}

func TestSleeperDisabled(t *testing.T) {
	f := newSleepFixture(t)
	f.add("sp", spaces.StatusRunning, time.Hour)
	for _, idle := range []time.Duration{0, -time.Second} {
		s := spaces.NewSleeper(spaces.SleeperConfig{Service: f.svc, IdleTimeout: idle, Interval: time.Millisecond})
		if s.Enabled() {
			t.Errorf("IdleTimeout %v: enabled", idle)
		}
		s.Start(t.Context())
		paused, err := s.Tick(t.Context())
		s.Close()
		if len(paused) != 0 || err != nil {
			t.Errorf("IdleTimeout %v: Tick = %v, %v", idle, paused, err)
		}
	}
	if f.eng.lists != 0 || f.eng.status("sp") != spaces.StatusRunning {
		t.Errorf("a disabled sleeper listed %d times, space %s", f.eng.lists, f.eng.status("sp"))
	}
}

func TestSleeperInterval(t *testing.T) {
	f := newSleepFixture(t)
	tests := []struct {
		name     string
		idle     time.Duration
		interval time.Duration
		want     time.Duration
	}{
		{name: "a quarter of the timeout", idle: time.Minute, want: 15 * time.Second},
		{name: "at most 30s", idle: 10 * time.Minute, want: 30 * time.Second},
		{name: "at least 1s", idle: 2 * time.Second, want: time.Second},
		{name: "given", idle: time.Minute, interval: 5 * time.Millisecond, want: 5 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spaces.NewSleeper(spaces.SleeperConfig{Service: f.svc, IdleTimeout: tt.idle, Interval: tt.interval})
			if got := s.Interval(); got != tt.want {
				t.Errorf("Interval() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSleeperLoop(t *testing.T) {
	f := newSleepFixture(t)
	f.add("sp", spaces.StatusRunning, time.Hour)
	s := spaces.NewSleeper(spaces.SleeperConfig{Service: f.svc, IdleTimeout: testIdle, Interval: 5 * time.Millisecond})
	s.Start(t.Context())
	s.Start(t.Context()) // a second Start is a no-op
	deadline := time.Now().Add(10 * time.Second)
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for f.eng.status("sp") != spaces.StatusPaused {
		if time.Now().After(deadline) {
			t.Fatal("the loop did not pause the idle space")
		}
		<-poll.C
	}
	s.Close()
	s.Close()
	f.eng.mu.Lock()
	lists := f.eng.lists
	f.eng.mu.Unlock()
	s.Start(t.Context()) // Start after Close does nothing
	s.Close()
	f.eng.mu.Lock()
	defer f.eng.mu.Unlock()
	if f.eng.lists != lists {
		t.Errorf("listed %d times after Close, want %d", f.eng.lists, lists)
	}
}
