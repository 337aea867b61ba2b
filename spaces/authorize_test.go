package spaces_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/store"
)

// untouchable is an engine with no methods: reaching it panics, which
// callSafely reports. A refused call must not reach the engine at all.
type untouchable struct{ spaces.Engine }

// authCase calls one Service method as c; act is what it needs (or, for
// some, also lets it through), space the space it names ("" when none).
type authCase struct {
	act   spaces.Action
	also  []spaces.Action
	space string
	call  func(ctx context.Context, s *spaces.Service, c spaces.Caller) error
}

// authThen are the actions some methods need besides their case's act,
// each checked after it: a caller with every other action is refused for
// each. Export and Fork hand over all the source's files: files too.
var authThen = map[string][]spaces.Action{
	"Export": {spaces.ActFiles},
	"Fork":   {spaces.ActFiles},
}

// authCases lists every exported Service method that acts for a caller.
// TestEveryServiceMethodDecides fails when a method is neither here nor
// in authExempt, so a new method cannot forget its check.
func authCases() map[string]authCase {
	const sp = "victim"
	return map[string]authCase{
		"List": {spaces.ActRead, nil, "", func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.List(ctx, c)
			return err
		}},
		"Count": {spaces.ActRead, []spaces.Action{spaces.ActNode}, "", func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, _, err := s.Count(ctx, c)
			return err
		}},
		"Get": {spaces.ActRead, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.Get(ctx, c, sp)
			return err
		}},
		"Stats": {spaces.ActRead, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.Stats(ctx, c, sp)
			return err
		}},
		"Observe": {spaces.ActRead, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.Observe(ctx, c, sp)
			return err
		}},
		"EngineInfo": {spaces.ActRead, []spaces.Action{spaces.ActNode}, "", func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.EngineInfo(ctx, c)
			return err
		}},
		"PoolStatus": {spaces.ActRead, []spaces.Action{spaces.ActNode}, "", func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.PoolStatus(ctx, c)
			return err
		}},
		"Create": {spaces.ActCreate, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.Create(ctx, c, spaces.CreateRequest{Name: sp})
			return err
		}},
		"Destroy": {spaces.ActDestroy, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			return s.Destroy(ctx, c, sp, true)
		}},
		"Pause": {spaces.ActExec, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			return s.Pause(ctx, c, sp)
		}},
		"Start": {spaces.ActExec, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			return s.Start(ctx, c, sp)
		}},
		"Exec": {spaces.ActExec, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.Exec(ctx, c, sp, spaces.ExecRequest{Cmd: []string{"true"}})
			return err
		}},
		"Push": {spaces.ActExec, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.Push(ctx, c, sp, spaces.PushRequest{})
			return err
		}},
		"ListFiles": {spaces.ActFiles, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, _, err := s.ListFiles(ctx, c, sp, "/")
			return err
		}},
		"OpenFile": {spaces.ActFiles, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, _, err := s.OpenFile(ctx, c, sp, "/a")
			return err
		}},
		"WriteFile": {spaces.ActFiles, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			return s.WriteFile(ctx, c, sp, "/a", 1, strings.NewReader("x"))
		}},
		"MakeDir": {spaces.ActFiles, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			return s.MakeDir(ctx, c, sp, "/d")
		}},
		"DeleteFile": {spaces.ActFiles, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			return s.DeleteFile(ctx, c, sp, "/a", true)
		}},
		"OpenTerminal": {spaces.ActTerminal, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			t, err := s.OpenTerminal(ctx, c, sp, 80, 24)
			if err == nil {
				t.Close()
			}
			return err
		}},
		"OpenTerminalFor": {spaces.ActTerminal, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			t, err := s.OpenTerminalFor(ctx, c, sp, spaces.TerminalRequest{Command: "true"})
			if err == nil {
				t.Close()
			}
			return err
		}},
		"Run": {spaces.ActTerminal, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.Run(ctx, c, sp, spaces.ExecRequest{Cmd: []string{"true"}})
			return err
		}},
		"OpenSSH": {spaces.ActTerminal, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			end, err := s.OpenSSH(ctx, c, sp, nil)
			if err == nil {
				end()
			}
			return err
		}},
		"Ports": {spaces.ActRead, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.Ports(ctx, c, sp)
			return err
		}},
		"OpenForward": {spaces.ActPorts, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, _, err := s.OpenForward(ctx, c, sp, spaces.ForwardRequest{Port: 3000})
			return err
		}},
		"CloseForward": {spaces.ActPorts, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			return s.CloseForward(ctx, c, sp, 3000)
		}},
		"ConnectPort": {spaces.ActPorts, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			conn, err := s.ConnectPort(ctx, c, sp, 3000, 0)
			if err == nil {
				conn.Close()
			}
			return err
		}},
		"Checkpoints": {spaces.ActRead, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.Checkpoints(ctx, c, sp)
			return err
		}},
		"CreateCheckpoint": {spaces.ActCheckpoint, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.CreateCheckpoint(ctx, c, sp, "one")
			return err
		}},
		"DeleteCheckpoint": {spaces.ActCheckpoint, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			return s.DeleteCheckpoint(ctx, c, sp, "one")
		}},
		"Restore": {spaces.ActCheckpoint, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.Restore(ctx, c, sp, "one", false)
			return err
		}},
		// A fork of a space into itself needs create and checkpoint on it.
		"Fork": {spaces.ActCreate, []spaces.Action{spaces.ActCheckpoint}, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.Fork(ctx, c, sp+"@one", sp)
			return err
		}},
		"Export": {spaces.ActCheckpoint, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			return s.Export(ctx, c, sp, "", io.Discard)
		}},
		"Import": {spaces.ActCreate, nil, sp, func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.Import(ctx, c, sp, strings.NewReader(""), 0)
			return err
		}},
		"Templates": {spaces.ActRead, nil, "", func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.Templates(ctx, c)
			return err
		}},
		"Template": {spaces.ActRead, nil, "", func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.Template(ctx, c, "default")
			return err
		}},
		"PutTemplate": {spaces.ActTemplates, nil, "", func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.PutTemplate(ctx, c, "name: t\n")
			return err
		}},
		"DeleteTemplate": {spaces.ActTemplates, nil, "", func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			return s.DeleteTemplate(ctx, c, "default")
		}},
		"Events": {spaces.ActAdmin, nil, "", func(ctx context.Context, s *spaces.Service, c spaces.Caller) error {
			_, err := s.Events(ctx, c, spaces.AuditQuery{Limit: 10})
			return err
		}},
	}
}

// authExempt are the exported methods that act for nobody, each with why.
var authExempt = map[string]string{
	"Authorize":       "is the check itself",
	"RecordRefusal":   "is the audit log itself (doors record refusals that came before a caller)",
	"Recover":         "is the node's own start-up work, before anything is served",
	"HasGPU":          "is a fixed fact of the node's configuration",
	"Pool":            "gives the node's assembly the warm pool's background loop (PoolStatus is the read)",
	"Hold":            "marks a space busy for work already authorized (an open terminal)",
	"Busy":            "is a test hook (export_test.go)",
	"ForwardsChanged": "only says that the forward table changed",
	"ServedForwards":  "feeds the door that listens on forwarded ports; ConnectPort decides each connection",
}

// without is every action but acts, on every space.
func without(acts ...spaces.Action) []spaces.Action {
	var out []spaces.Action
	for _, a := range spaces.Actions() {
		if !slices.Contains(acts, a) {
			out = append(out, a)
		}
	}
	return out
}

func newAuthService(t *testing.T) (*spaces.Service, *store.Store, *sleepClock) {
	t.Helper()
	st, err := store.New(t.Context(), store.Config{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := &sleepClock{now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	svc, err := spaces.New(t.Context(), spaces.Config{Engine: untouchable{}, Store: st, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return svc, st, clock
}

// callSafely runs the case, turning a panic (a nil engine method reached)
// into an error.
func callSafely(ctx context.Context, tc authCase, s *spaces.Service, c spaces.Caller) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reached the engine before deciding: %v", p)
		}
	}()
	return tc.call(ctx, s, c)
}

// TestEveryServiceMethodDecides walks every exported Service method with
// callers that lack its action and asserts a refusal, one auth.denied
// audit row naming the action, and no work done.
func TestEveryServiceMethodDecides(t *testing.T) {
	cases := authCases()
	typ := reflect.TypeFor[*spaces.Service]()
	for i := range typ.NumMethod() {
		name := typ.Method(i).Name
		_, tested := cases[name]
		if _, exempt := authExempt[name]; !tested && !exempt {
			t.Errorf("Service.%s is neither in the authorization table nor exempt: add it to authCases", name)
		}
		if _, exempt := authExempt[name]; tested && exempt {
			t.Errorf("Service.%s is both tested and exempt", name)
		}
	}
	for name := range cases {
		if _, ok := typ.MethodByName(name); !ok {
			t.Errorf("authCases names Service.%s, which does not exist", name)
		}
	}

	for name, tc := range cases {
		callers := map[string]spaces.Caller{
			"nobody":                      {},
			"a person lacking the action": personWith(t, spaces.Grant{Actions: without(append([]spaces.Action{tc.act}, tc.also...)...)}),
			"a vouched caller lacking the action": func() spaces.Caller {
				c := personWith(t, spaces.Grant{Actions: without(append([]spaces.Action{tc.act}, tc.also...)...)})
				c.Kind, c.Via = spaces.KindVouched, "node-2"
				return c
			}(),
		}
		if tc.space != "" {
			callers["a person with the action on other spaces only"] = personWith(t, spaces.Grant{Actions: spaces.Actions(), Spaces: []string{"other-*"}})
		}
		wantAct := map[string]spaces.Action{}
		for _, a := range authThen[name] {
			who := "a person lacking only " + string(a)
			callers[who] = personWith(t, spaces.Grant{Actions: without(a)})
			wantAct[who] = a
		}
		for who, c := range callers {
			act := cmp.Or(wantAct[who], tc.act)
			t.Run(name+"/"+who, func(t *testing.T) {
				svc, st, _ := newAuthService(t)
				before, err := st.Events(t.Context(), spaces.AuditQuery{Limit: 1000})
				if err != nil {
					t.Fatal(err)
				}
				err = callSafely(t.Context(), tc, svc, c)
				if !errors.Is(err, spaces.ErrForbidden) {
					t.Fatalf("%s as %s = %v, want ErrForbidden", name, who, err)
				}
				after, err := st.Events(t.Context(), spaces.AuditQuery{Limit: 1000})
				if err != nil {
					t.Fatal(err)
				}
				if len(after) != len(before)+1 {
					t.Fatalf("audit rows: %d before, %d after, want one more (the refusal): %+v", len(before), len(after), after)
				}
				ev := after[len(after)-1]
				wantActor := c.Actor
				if wantActor == "" {
					wantActor = "anonymous"
				}
				if ev.Type != spaces.EventDenied || ev.Space != tc.space || ev.Actor != wantActor || ev.Meta["action"] != string(act) {
					t.Fatalf("audit row = %+v, want %s by %s on %q for %s", ev, spaces.EventDenied, wantActor, tc.space, act)
				}
				if reason, _ := ev.Meta["reason"].(string); !strings.Contains(reason, "may not "+string(act)) {
					t.Fatalf("reason %q does not say what was refused", reason)
				}
				if c.Via != "" && ev.Meta["via"] != c.Via {
					t.Fatalf("audit row %+v lacks the vouching node", ev)
				}
			})
		}
	}
}

func personWith(t *testing.T, g spaces.Grant) spaces.Caller {
	t.Helper()
	acc, errs := spaces.AccessFrom([]spaces.Grant{g})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return spaces.Caller{Kind: spaces.KindPerson, Actor: "mallory@example.com", Device: "laptop", Addr: "100.64.0.9", Access: acc}
}

// TestRefusalsAreAuditedOncePerInterval: a caller retrying a forbidden
// call in a loop leaves one row per interval, and each new refusal
// (another action, space or caller) gets its own.
func TestRefusalsAreAuditedOncePerInterval(t *testing.T) {
	svc, st, clock := newAuthService(t)
	mallory := personWith(t, spaces.Grant{Role: "viewer"})
	eve := personWith(t, spaces.Grant{Role: "viewer"})
	eve.Actor = "eve@example.com"
	denied := func() int {
		t.Helper()
		ev, err := st.Events(t.Context(), spaces.AuditQuery{Type: spaces.EventDenied, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(ev)
	}
	for range 50 {
		if err := svc.Pause(t.Context(), mallory, "a"); !errors.Is(err, spaces.ErrForbidden) {
			t.Fatalf("pause = %v", err)
		}
	}
	if n := denied(); n != 1 {
		t.Fatalf("%d rows for 50 quick refusals, want 1", n)
	}
	_ = svc.Pause(t.Context(), mallory, "b")
	_ = svc.Destroy(t.Context(), mallory, "a", false)
	_ = svc.Pause(t.Context(), eve, "a")
	if n := denied(); n != 4 {
		t.Fatalf("%d rows after three other refusals, want 4", n)
	}
	clock.mu.Lock()
	clock.now = clock.now.Add(11 * time.Second)
	clock.mu.Unlock()
	_ = svc.Pause(t.Context(), mallory, "a")
	if n := denied(); n != 5 {
		t.Fatalf("%d rows after the interval, want 5", n)
	}
}

// TestListShowsOnlyReadableSpaces: the list is the caller's, not the
// node's.
func TestListShowsOnlyReadableSpaces(t *testing.T) {
	eng := &listEngine{names: []string{"alice-1", "alice-2", "bob-1"}}
	st, err := store.New(t.Context(), store.Config{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := spaces.New(t.Context(), spaces.Config{Engine: eng, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		caller spaces.Caller
		want   []string
	}{
		{"the API key sees all", spaces.CallerAPIKey(), []string{"alice-1", "alice-2", "bob-1"}},
		{"alice sees hers", personWith(t, spaces.Grant{Role: "viewer", Spaces: []string{"alice-*"}}), []string{"alice-1", "alice-2"}},
		{"a grant on no existing space sees none", personWith(t, spaces.Grant{Role: "operator", Spaces: []string{"carol-*"}}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := svc.List(t.Context(), tt.caller)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, sp := range list {
				got = append(got, sp.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("list = %v, want %v", got, tt.want)
			}
		})
	}
}

type listEngine struct {
	spaces.Engine
	names []string
}

func (e *listEngine) List(context.Context) ([]spaces.Space, error) {
	out := make([]spaces.Space, 0, len(e.names))
	for _, n := range e.names {
		out = append(out, spaces.Space{Name: n, Status: spaces.StatusRunning})
	}
	return out, nil
}
