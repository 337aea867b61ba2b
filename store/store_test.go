package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

// t0 is a fixed instant with sub-millisecond precision, to check truncation.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123_456_789, time.UTC)

func openAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := New(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatalf("New(%q): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newTestStore(t testing.TB) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "state.db"))
}

func TestNewCreatesPrivateFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	openAt(t, filepath.Join(dir, "state.db"))
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o700); got != want {
		t.Errorf("folder mode = %v, want %v", got, want)
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state.db")

	s, err := New(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, spaces.Event{Time: t0, Space: "a", Type: spaces.EventCreate, Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutTemplate(ctx, spaces.Template{Name: "small"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for i := range 2 {
		s := openAt(t, path)
		evs, err := s.Events(ctx, spaces.AuditQuery{})
		if err != nil || len(evs) != 1 || evs[0].Actor != "alice" {
			t.Fatalf("reopen %d: Events = %+v, %v; want alice's event", i, evs, err)
		}
		if _, err := s.Template(ctx, "small"); err != nil {
			t.Fatalf("reopen %d: Template: %v", i, err)
		}
		ms, err := loadMigrations()
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := s.ro.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != len(ms) {
			t.Errorf("reopen %d: %d schema_migrations rows, want %d", i, n, len(ms))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadHandleIsReadOnly(t *testing.T) {
	s := newTestStore(t)
	if _, err := s.ro.ExecContext(t.Context(), `DELETE FROM audit`); err == nil {
		t.Error("write through the read handle succeeded, want error")
	}
}

func TestNewRefusesNewerSchema(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openAt(t, path)
	if _, err := s.rw.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s2, err := New(ctx, Config{Path: path}); err == nil {
		s2.Close()
		t.Fatal("New on a database from a newer program succeeded, want error")
	}
}

func TestEvents(t *testing.T) {
	ctx := t.Context()
	s := newTestStore(t)
	// ids 1..7; space "" is for events about no space (e.g. denials).
	for i, sp := range []string{"a", "b", "a", "", "a", "b", "a"} {
		e := spaces.Event{Time: t0.Add(time.Duration(i) * time.Second), Space: sp, Type: spaces.EventExec, Actor: "alice"}
		if err := s.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		q    spaces.AuditQuery
		want []int64
	}{
		{name: "all, default limit", q: spaces.AuditQuery{}, want: []int64{1, 2, 3, 4, 5, 6, 7}},
		{name: "negative limit is default", q: spaces.AuditQuery{Limit: -1}, want: []int64{1, 2, 3, 4, 5, 6, 7}},
		{name: "newest three, oldest first", q: spaces.AuditQuery{Limit: 3}, want: []int64{5, 6, 7}},
		{name: "one space", q: spaces.AuditQuery{Space: "a"}, want: []int64{1, 3, 5, 7}},
		{name: "one space, newest two", q: spaces.AuditQuery{Space: "a", Limit: 2}, want: []int64{5, 7}},
		{name: "other space", q: spaces.AuditQuery{Space: "b"}, want: []int64{2, 6}},
		{name: "unknown space", q: spaces.AuditQuery{Space: "zzz"}, want: []int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := s.Events(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			got := []int64{}
			for _, e := range evs {
				got = append(got, e.ID)
				if want := t0.Add(time.Duration(e.ID-1) * time.Second).Truncate(time.Millisecond); !e.Time.Equal(want) {
					t.Errorf("event %d time = %v, want %v", e.ID, e.Time, want)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDefaultEventLimit(t *testing.T) {
	ctx := t.Context()
	s := newTestStore(t)
	for range DefaultEventLimit + 5 {
		if err := s.Record(ctx, spaces.Event{Time: t0, Type: spaces.EventExec}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.Events(ctx, spaces.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != DefaultEventLimit || evs[0].ID != 6 || evs[len(evs)-1].ID != DefaultEventLimit+5 {
		t.Errorf("got %d events, ids %d..%d; want %d events, ids 6..%d",
			len(evs), evs[0].ID, evs[len(evs)-1].ID, DefaultEventLimit, DefaultEventLimit+5)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	ctx := t.Context()
	local := time.FixedZone("UTC+2", 2*3600)
	tests := []struct {
		name     string
		in       spaces.Event
		want     spaces.Event
		wantNull bool // meta column is NULL
	}{
		{
			name:     "nil meta",
			in:       spaces.Event{Time: t0, Space: "a", Type: spaces.EventStart, Actor: "alice"},
			want:     spaces.Event{ID: 1, Time: t0.Truncate(time.Millisecond), Space: "a", Type: spaces.EventStart, Actor: "alice"},
			wantNull: true,
		},
		{
			name:     "empty meta",
			in:       spaces.Event{Time: t0, Type: spaces.EventDenied, Actor: "bob", Meta: map[string]any{}},
			want:     spaces.Event{ID: 1, Time: t0.Truncate(time.Millisecond), Type: spaces.EventDenied, Actor: "bob"},
			wantNull: true,
		},
		{
			name: "nested meta, local time",
			in: spaces.Event{Time: t0.In(local), Space: "a", Type: spaces.EventExec, Actor: "tag:ci", Meta: map[string]any{
				"cmd": "ls -l", "exit": 2, "ok": false, "args": []string{"-l"}, "env": map[string]string{"A": "1"},
			}},
			want: spaces.Event{ID: 1, Time: t0.Truncate(time.Millisecond), Space: "a", Type: spaces.EventExec, Actor: "tag:ci", Meta: map[string]any{
				"cmd": "ls -l", "exit": float64(2), "ok": false, "args": []any{"-l"}, "env": map[string]any{"A": "1"},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t)
			if err := s.Record(ctx, tt.in); err != nil {
				t.Fatal(err)
			}
			evs, err := s.Events(ctx, spaces.AuditQuery{})
			if err != nil || len(evs) != 1 {
				t.Fatalf("Events = %+v, %v; want one event", evs, err)
			}
			// Rows recorded without a source are the node's.
			tt.want.Source = spaces.SourceNode
			if got := evs[0]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			var isNull bool
			if err := s.ro.QueryRowContext(ctx, `SELECT meta IS NULL FROM audit`).Scan(&isNull); err != nil {
				t.Fatal(err)
			}
			if isNull != tt.wantNull {
				t.Errorf("meta IS NULL = %v, want %v", isNull, tt.wantNull)
			}
		})
	}
}

func TestRecordRejectsMissingType(t *testing.T) {
	s := newTestStore(t)
	if err := s.Record(t.Context(), spaces.Event{Time: t0}); !errors.Is(err, spaces.ErrInvalid) {
		t.Errorf("Record without type = %v, want ErrInvalid", err)
	}
}

// TestConcurrentRecord checks that writers queue instead of failing with
// SQLITE_BUSY, while readers keep reading.
func TestConcurrentRecord(t *testing.T) {
	ctx := t.Context()
	s := newTestStore(t)
	const writers, perWriter = 20, 50

	errs := make(chan error, writers*perWriter+writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				e := spaces.Event{Time: t0, Space: fmt.Sprintf("s%d", w%4), Type: spaces.EventExec, Actor: "a", Meta: map[string]any{"i": i}}
				if err := s.Record(ctx, e); err != nil {
					errs <- err
				}
			}
		})
		wg.Go(func() {
			if _, err := s.Events(ctx, spaces.AuditQuery{Space: fmt.Sprintf("s%d", w%4), Limit: 10}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	evs, err := s.Events(ctx, spaces.AuditQuery{Limit: 2 * writers * perWriter})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != writers*perWriter {
		t.Fatalf("got %d events, want %d", len(evs), writers*perWriter)
	}
	for i, e := range evs {
		if e.ID != int64(i+1) {
			t.Fatalf("event %d has id %d, want %d (ids must be dense and ascending)", i, e.ID, i+1)
		}
	}
}

// TestEventsQueryPlan checks that both listings read an index in id order and
// stop at the limit, rather than scanning the table and sorting it.
func TestEventsQueryPlan(t *testing.T) {
	tests := []struct {
		name string
		q    spaces.AuditQuery
		want []string // the plan must contain one of these
	}{
		{
			name: "all events",
			q:    spaces.AuditQuery{},
			// ORDER BY the rowid walks the table's own b-tree backwards: SQLite
			// prints that as a bare "SCAN audit", but without a temp b-tree it
			// stops after LIMIT rows. Absence of the sort is checked below.
			want: []string{"SCAN audit", "USING INTEGER PRIMARY KEY"},
		},
		{
			name: "one space",
			q:    spaces.AuditQuery{Space: "a"},
			want: []string{"USING INDEX audit_space_id", "USING COVERING INDEX audit_space_id"},
		},
		{
			name: "one space, filtered, a page back",
			q:    spaces.AuditQuery{Space: "a", Type: "space.exec", Actor: "ali", Before: 99},
			want: []string{"USING INDEX audit_space_id", "USING COVERING INDEX audit_space_id"},
		},
		{
			name: "filtered by type",
			q:    spaces.AuditQuery{Type: "auth.denied"},
			want: []string{"SCAN audit", "USING INTEGER PRIMARY KEY"},
		},
	}
	s := newTestStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			query, args := eventsQuery(tt.q, 10)
			plan := queryPlan(t, s, query, args...)
			if strings.Contains(plan, "TEMP B-TREE") {
				t.Errorf("plan sorts the rows:\n%s", plan)
			}
			found := false
			for _, w := range tt.want {
				found = found || strings.Contains(plan, w)
			}
			if !found {
				t.Errorf("plan = %q, want one of %q", plan, tt.want)
			}
		})
	}
}

func queryPlan(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	rows, err := s.ro.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func BenchmarkRecord(b *testing.B) {
	s := newTestStore(b)
	e := spaces.Event{Time: t0, Space: "bench", Type: spaces.EventExec, Actor: "alice", Meta: map[string]any{"cmd": "ls"}}
	for b.Loop() {
		if err := s.Record(b.Context(), e); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEventsFilters(t *testing.T) {
	s := newTestStore(t)
	t0 := time.UnixMilli(1_700_000_000_000)
	add := func(space, typ, actor string) {
		t.Helper()
		if err := s.Record(t.Context(), spaces.Event{Time: t0, Space: space, Type: typ, Actor: actor}); err != nil {
			t.Fatal(err)
		}
	}
	add("a", spaces.EventExec, "alice@example.com")   // 1
	add("b", spaces.EventExec, "bob@example.com")     // 2
	add("a", spaces.EventDenied, "ALICE@example.com") // 3
	add("a", spaces.EventExec, "api-key")             // 4
	add("a", spaces.EventExec, "alice@example.com")   // 5
	ids := func(q spaces.AuditQuery) []int64 {
		t.Helper()
		evs, err := s.Events(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, e := range evs {
			out = append(out, e.ID)
		}
		return out
	}
	tests := []struct {
		name string
		q    spaces.AuditQuery
		want []int64
	}{
		{"type", spaces.AuditQuery{Type: spaces.EventExec, Limit: 10}, []int64{1, 2, 4, 5}},
		{"actor, any case", spaces.AuditQuery{Actor: "alice", Limit: 10}, []int64{1, 3, 5}},
		{"space, type and actor", spaces.AuditQuery{Space: "a", Type: spaces.EventExec, Actor: "ALI", Limit: 10}, []int64{1, 5}},
		{"newest two", spaces.AuditQuery{Type: spaces.EventExec, Limit: 2}, []int64{4, 5}},
		{"the page before", spaces.AuditQuery{Type: spaces.EventExec, Before: 4, Limit: 2}, []int64{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ids(tt.q); !slices.Equal(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIntents(t *testing.T) {
	st := newTestStore(t)
	ctx := t.Context()
	at := time.UnixMilli(1_700_000_000_123).UTC()
	if err := st.BeginIntent(ctx, spaces.Intent{Space: "a", Kind: spaces.IntentCreate, NodeRun: "1.2", Image: "img:1", VolumeExisted: true, Created: at}); err != nil {
		t.Fatal(err)
	}
	if err := st.BeginIntent(ctx, spaces.Intent{Space: "b", Kind: spaces.IntentCreate, NodeRun: "1.2", Created: at.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	// A later operation on the same space replaces its intent.
	if err := st.BeginIntent(ctx, spaces.Intent{Space: "b", Kind: spaces.IntentDestroy, NodeRun: "3.4", RemoveVolume: true, Created: at.Add(2 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Intents(ctx)
	want := []spaces.Intent{
		{Space: "a", Kind: spaces.IntentCreate, NodeRun: "1.2", Image: "img:1", VolumeExisted: true, Created: at},
		{Space: "b", Kind: spaces.IntentDestroy, NodeRun: "3.4", RemoveVolume: true, Created: at.Add(2 * time.Second)},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Intents() = %+v, %v; want %+v", got, err, want)
	}
	if err := st.EndIntent(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := st.EndIntent(ctx, "missing"); err != nil {
		t.Fatalf("ending a missing intent: %v", err)
	}
	if got, err := st.Intents(ctx); err != nil || len(got) != 1 || got[0].Space != "b" {
		t.Fatalf("after EndIntent: %+v, %v", got, err)
	}
}
