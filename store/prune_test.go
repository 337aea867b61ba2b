package store

import (
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

func TestPruneAudit(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		before  time.Time
		maxRows int64
		want    int // rows left, the newest
	}{
		{name: "nothing asked", want: 12000},
		{name: "by age", before: t0.Add(11000 * time.Second), want: 1000},
		{name: "by count", maxRows: 2500, want: 2500},
		{name: "both, count stricter", before: t0.Add(2000 * time.Second), maxRows: 7, want: 7},
		{name: "both, age stricter", before: t0.Add(11990 * time.Second), maxRows: 100, want: 10},
		{name: "count above rows", maxRows: 20000, want: 12000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t)
			// 12000 rows a second apart, in batches as history is saved.
			for i := 0; i < 12000; i += spaces.MaxHistoryBatch {
				var evs []spaces.Event
				for j := i; j < i+spaces.MaxHistoryBatch; j++ {
					evs = append(evs, spaces.Event{Type: spaces.EventShell, Space: "a", Time: t0.Add(time.Duration(j) * time.Second), Source: spaces.SourceSpace})
				}
				if err := s.SaveHistory(ctx, "a", spaces.HistoryCursor{}, evs); err != nil {
					t.Fatal(err)
				}
			}
			n, err := s.PruneAudit(ctx, tt.before, tt.maxRows)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(12000-tt.want) {
				t.Errorf("deleted %d, want %d", n, 12000-tt.want)
			}
			var left, oldest int64
			if err := s.ro.QueryRowContext(ctx, `SELECT count(*), coalesce(min(ts), 0) FROM audit`).Scan(&left, &oldest); err != nil {
				t.Fatal(err)
			}
			if left != int64(tt.want) || oldest != t0.Add(time.Duration(12000-tt.want)*time.Second).UnixMilli() {
				t.Errorf("left %d rows from %d, want the newest %d", left, oldest, tt.want)
			}
			evs, err := s.Events(ctx, spaces.AuditQuery{Limit: 1})
			if err != nil || len(evs) != 1 || evs[0].Source != spaces.SourceSpace {
				t.Errorf("Events = %+v, %v: want source space kept", evs, err)
			}
		})
	}
}
