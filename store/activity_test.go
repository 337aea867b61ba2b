package store

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

func TestActivity(t *testing.T) {
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	ms := func(sec int) time.Time { return at(sec).Truncate(time.Millisecond) }

	type op struct {
		kind  string // touch, start, forget
		space string
		at    time.Time
	}
	tests := []struct {
		name string
		ops  []op
		want map[string]spaces.SpaceActivity
	}{
		{
			name: "nothing known",
			want: map[string]spaces.SpaceActivity{},
		},
		{
			name: "touch only leaves start zero",
			ops:  []op{{"touch", "a", at(5)}},
			want: map[string]spaces.SpaceActivity{"a": {LastActivity: ms(5)}},
		},
		{
			name: "touch keeps the latest",
			ops:  []op{{"touch", "a", at(10)}, {"touch", "a", at(3)}, {"touch", "a", at(7)}},
			want: map[string]spaces.SpaceActivity{"a": {LastActivity: ms(10)}},
		},
		{
			name: "start sets both",
			ops:  []op{{"start", "a", at(4)}},
			want: map[string]spaces.SpaceActivity{"a": {LastActivity: ms(4), StartedAt: ms(4)}},
		},
		{
			name: "restart moves start back but not activity",
			ops:  []op{{"start", "a", at(4)}, {"touch", "a", at(20)}, {"start", "a", at(2)}},
			want: map[string]spaces.SpaceActivity{"a": {LastActivity: ms(20), StartedAt: ms(2)}},
		},
		{
			name: "start after touch moves activity up",
			ops:  []op{{"touch", "a", at(1)}, {"start", "a", at(9)}},
			want: map[string]spaces.SpaceActivity{"a": {LastActivity: ms(9), StartedAt: ms(9)}},
		},
		{
			name: "spaces are separate, forget drops one",
			ops:  []op{{"touch", "a", at(1)}, {"start", "b", at(2)}, {"touch", "c", at(3)}, {"forget", "b", time.Time{}}},
			want: map[string]spaces.SpaceActivity{"a": {LastActivity: ms(1)}, "c": {LastActivity: ms(3)}},
		},
		{
			name: "forget unknown is fine, touch after forget starts over",
			ops:  []op{{"forget", "x", time.Time{}}, {"touch", "a", at(9)}, {"forget", "a", time.Time{}}, {"touch", "a", at(1)}},
			want: map[string]spaces.SpaceActivity{"a": {LastActivity: ms(1)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := newTestStore(t)
			for _, o := range tt.ops {
				var err error
				switch o.kind {
				case "touch":
					err = s.Touch(ctx, o.space, o.at)
				case "start":
					err = s.MarkStarted(ctx, o.space, o.at)
				case "forget":
					err = s.Forget(ctx, o.space)
				default:
					t.Fatalf("unknown op %q", o.kind)
				}
				if err != nil {
					t.Fatalf("%s %s: %v", o.kind, o.space, err)
				}
			}
			got, err := s.Activity(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Activity = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestActivityRequiresSpace(t *testing.T) {
	s := newTestStore(t)
	if err := s.Touch(t.Context(), "", t0); !errors.Is(err, spaces.ErrInvalid) {
		t.Errorf("Touch(\"\") = %v, want ErrInvalid", err)
	}
	if err := s.MarkStarted(t.Context(), "", t0); !errors.Is(err, spaces.ErrInvalid) {
		t.Errorf("MarkStarted(\"\") = %v, want ErrInvalid", err)
	}
}

func TestSpaceActivityMatchesActivity(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	at := time.UnixMilli(1_700_000_000_123).UTC()
	if err := s.MarkStarted(ctx, "one", at); err != nil {
		t.Fatal(err)
	}
	got, err := s.SpaceActivity(ctx, "one")
	all, err2 := s.Activity(ctx)
	if err != nil || err2 != nil || got != all["one"] || !got.StartedAt.Equal(at) {
		t.Fatalf("SpaceActivity = %+v, %v; Activity = %+v, %v", got, err, all["one"], err2)
	}
	if none, err := s.SpaceActivity(ctx, "none"); err != nil || !none.LastActivity.IsZero() {
		t.Fatalf("unknown space = %+v, %v", none, err)
	}
}
