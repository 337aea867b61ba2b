package spaces_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/store"
)

func TestAuditRetention(t *testing.T) {
	ctx := t.Context()
	st, err := store.New(ctx, store.Config{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	svc, err := spaces.New(ctx, spaces.Config{Engine: newHistoryEngine(), Store: st, Clock: fixedClock{now}})
	if err != nil {
		t.Fatal(err)
	}
	// 100 days of rows, one a day, and 20 of today.
	for d := 100; d > 0; d-- {
		if err := st.Record(ctx, spaces.Event{Type: spaces.EventExec, Space: "a", Time: now.Add(-time.Duration(d) * 24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		if err := st.Record(ctx, spaces.Event{Type: spaces.EventExec, Space: "a", Time: now}); err != nil {
			t.Fatal(err)
		}
	}
	byAge := spaces.NewAuditRetention(spaces.AuditRetentionConfig{Service: svc, MaxAge: 90 * 24 * time.Hour})
	defer byAge.Close()
	if n, err := byAge.PruneOnce(ctx); err != nil || n != 10 {
		t.Errorf("by age: deleted %d, %v; want the 10 rows older than 90 days", n, err)
	}
	byRows := spaces.NewAuditRetention(spaces.AuditRetentionConfig{Service: svc, MaxRows: 30})
	defer byRows.Close()
	// 110 rows and the first pass's audit.prune row.
	if n, err := byRows.PruneOnce(ctx); err != nil || n != 81 {
		t.Errorf("by rows: deleted %d, %v; want 81", n, err)
	}
	evs, err := st.Events(ctx, spaces.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if len(evs) != 31 || last.Type != spaces.EventAuditPruned || last.Meta["deleted"] != float64(81) {
		t.Errorf("after pruning: %d rows, last %+v; want 30 and an audit.prune row saying 81", len(evs), last)
	}
	if n, err := byRows.PruneOnce(ctx); err != nil || n != 1 {
		t.Errorf("again: deleted %d, %v; want 1 (the audit.prune row over the bound)", n, err)
	}
}
