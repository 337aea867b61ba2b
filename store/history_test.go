package store

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

func shellEvent(space, cmd string, at time.Time) spaces.Event {
	return spaces.Event{Time: at, Space: space, Type: spaces.EventShell, Actor: "shell", Meta: map[string]any{"command": cmd}}
}

func TestHistoryCursorRoundTrip(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openAt(t, path)

	got, err := s.HistoryCursor(ctx, "a")
	if err != nil || !reflect.DeepEqual(got, spaces.HistoryCursor{}) {
		t.Fatalf("cursor of an unknown space = %+v, %v; want the zero cursor", got, err)
	}

	tests := []struct {
		name string
		cur  spaces.HistoryCursor
	}{
		{name: "read to the end", cur: spaces.HistoryCursor{Offset: 42, Size: 50, MTime: t0, HeadHash: []byte{1, 2, 3}}},
		{name: "read stopped early", cur: spaces.HistoryCursor{Offset: 1 << 40, Size: -1, HeadHash: make([]byte, 32)}},
		{name: "nothing read", cur: spaces.HistoryCursor{Size: 0, MTime: t0.Add(time.Nanosecond), HeadHash: []byte{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.SaveHistory(ctx, "a", tt.cur, nil); err != nil {
				t.Fatal(err)
			}
			got, err := s.HistoryCursor(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			if got.Offset != tt.cur.Offset || got.Size != tt.cur.Size || !got.MTime.Equal(tt.cur.MTime) ||
				string(got.HeadHash) != string(tt.cur.HeadHash) {
				t.Errorf("cursor = %+v, want %+v", got, tt.cur)
			}
		})
	}

	want := spaces.HistoryCursor{Offset: 7, Size: 9, MTime: t0, HeadHash: []byte("hash")}
	if err := s.SaveHistory(ctx, "a", want, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	again := openAt(t, path)
	got, err = again.HistoryCursor(ctx, "a")
	if err != nil || got.Offset != 7 || got.Size != 9 || !got.MTime.Equal(t0) || string(got.HeadHash) != "hash" {
		t.Errorf("cursor after reopening = %+v, %v; want %+v", got, err, want)
	}
	if other, err := again.HistoryCursor(ctx, "b"); err != nil || other.Offset != 0 {
		t.Errorf("cursor of another space = %+v, %v", other, err)
	}
}

func TestSaveHistoryRecordsEventsWithCursor(t *testing.T) {
	ctx := t.Context()
	s := newTestStore(t)
	events := []spaces.Event{shellEvent("a", "echo one", t0), shellEvent("a", "echo two", t0.Add(time.Second))}
	if err := s.SaveHistory(ctx, "a", spaces.HistoryCursor{Offset: 40, Size: 40, MTime: t0}, events); err != nil {
		t.Fatal(err)
	}
	got, err := s.Events(ctx, spaces.AuditQuery{Space: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d events, want 2", len(got))
	}
	for i, e := range got {
		w := events[i]
		if e.Type != w.Type || e.Actor != w.Actor || e.Space != "a" || !e.Time.Equal(w.Time.Truncate(time.Millisecond)) ||
			e.Meta["command"] != w.Meta["command"] {
			t.Errorf("event %d = %+v, want %+v", i, e, w)
		}
	}
}

// TestSaveHistoryIsAtomic checks that a failure part way leaves neither
// events nor the new cursor behind.
func TestSaveHistoryIsAtomic(t *testing.T) {
	ctx := t.Context()
	before := spaces.HistoryCursor{Offset: 10, Size: 10, MTime: t0, HeadHash: []byte("before")}
	tests := []struct {
		name    string
		events  []spaces.Event
		wantErr error // nil: any error
	}{
		{
			name:   "second event cannot be encoded",
			events: []spaces.Event{shellEvent("a", "echo ok", t0), {Space: "a", Type: spaces.EventShell, Meta: map[string]any{"bad": func() {}}}},
		},
		{
			name:    "event without a type",
			events:  []spaces.Event{shellEvent("a", "echo ok", t0), {Space: "a"}},
			wantErr: spaces.ErrInvalid,
		},
		{
			name:    "event of another space",
			events:  []spaces.Event{shellEvent("a", "echo ok", t0), shellEvent("b", "echo b", t0)},
			wantErr: spaces.ErrInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t)
			if err := s.SaveHistory(ctx, "a", before, []spaces.Event{shellEvent("a", "first", t0)}); err != nil {
				t.Fatal(err)
			}
			next := spaces.HistoryCursor{Offset: 99, Size: 99, MTime: t0.Add(time.Hour), HeadHash: []byte("after")}
			err := s.SaveHistory(ctx, "a", next, tt.events)
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("SaveHistory = %v, want an error (%v)", err, tt.wantErr)
			}
			cur, err := s.HistoryCursor(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			if cur.Offset != before.Offset || string(cur.HeadHash) != "before" {
				t.Errorf("cursor = %+v after a failed save, want %+v", cur, before)
			}
			for _, space := range []string{"a", "b"} {
				evs, err := s.Events(ctx, spaces.AuditQuery{Space: space})
				if err != nil {
					t.Fatal(err)
				}
				want := map[string]int{"a": 1, "b": 0}[space]
				if len(evs) != want {
					t.Errorf("space %s: %d events after a failed save, want %d", space, len(evs), want)
				}
			}
		})
	}
}

func TestSaveHistoryRejectsBadInput(t *testing.T) {
	s := newTestStore(t)
	for _, tc := range []struct {
		space string
		cur   spaces.HistoryCursor
	}{
		{space: "", cur: spaces.HistoryCursor{}},
		{space: "a", cur: spaces.HistoryCursor{Offset: -1}},
	} {
		if err := s.SaveHistory(t.Context(), tc.space, tc.cur, nil); !errors.Is(err, spaces.ErrInvalid) {
			t.Errorf("SaveHistory(%q, %+v) = %v, want ErrInvalid", tc.space, tc.cur, err)
		}
	}
}

// TestForgetKeepsHistoryCursor: a space destroyed without its volume and
// made again finds its old history file, which must not be recorded twice.
func TestForgetKeepsHistoryCursor(t *testing.T) {
	ctx := t.Context()
	s := newTestStore(t)
	if err := s.SaveHistory(ctx, "a", spaces.HistoryCursor{Offset: 5, Size: 5, MTime: t0}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Forget(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if cur, err := s.HistoryCursor(ctx, "a"); err != nil || cur.Offset != 5 {
		t.Errorf("cursor after Forget = %+v, %v; want it kept", cur, err)
	}
}

// TestSaveHistoryBoundsABatch: one save records at most
// spaces.MaxHistoryBatch events, so it holds the write connection briefly.
func TestSaveHistoryBoundsABatch(t *testing.T) {
	ctx := t.Context()
	s := newTestStore(t)
	batch := func(n int) []spaces.Event {
		events := make([]spaces.Event, n)
		for i := range events {
			events[i] = shellEvent("a", "echo", t0)
		}
		return events
	}
	full := spaces.HistoryCursor{Offset: 10, Size: 10, MTime: t0}
	if err := s.SaveHistory(ctx, "a", full, batch(spaces.MaxHistoryBatch)); err != nil {
		t.Fatalf("SaveHistory of %d events: %v", spaces.MaxHistoryBatch, err)
	}
	over := spaces.HistoryCursor{Offset: 20, Size: 20, MTime: t0}
	if err := s.SaveHistory(ctx, "a", over, batch(spaces.MaxHistoryBatch+1)); !errors.Is(err, spaces.ErrInvalid) {
		t.Errorf("SaveHistory of %d events = %v, want ErrInvalid", spaces.MaxHistoryBatch+1, err)
	}
	if cur, err := s.HistoryCursor(ctx, "a"); err != nil || cur.Offset != 10 {
		t.Errorf("cursor = %+v, %v after a refused save; want offset 10", cur, err)
	}
	evs, err := s.Events(ctx, spaces.AuditQuery{Space: "a", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != spaces.MaxHistoryBatch {
		t.Errorf("%d events, want %d", len(evs), spaces.MaxHistoryBatch)
	}
}
