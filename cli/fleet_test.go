package cli

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/nodetest"
)

// TestDiscoveryCache checks that a discovery is reused for 60 seconds by
// later invocations (a new Fleet reads the cache file), and redone after.
func TestDiscoveryCache(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg := &Config{Hosts: []string{"cached=" + n.URL}, Key: nodetest.Key, CacheFile: filepath.Join(t.TempDir(), "nodes.json")}
	fleet := func() *Fleet {
		t.Helper()
		f, err := newFleet(&Deps{Config: func() (*Config, error) { return cfg, nil }, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	nodes, err := fleet().Nodes(t.Context(), false)
	if err != nil || len(nodes) != 1 || !nodes[0].Online || nodes[0].Name != "cached" || nodes[0].URL != n.URL {
		t.Fatalf("first discovery = %+v, %v", nodes, err)
	}
	n.Stop()

	steps := []struct {
		name       string
		advance    time.Duration
		refresh    bool
		wantOnline bool
	}{
		{"within a minute the cache answers", 59 * time.Second, false, true},
		{"--refresh asks again", 0, true, false},
		{"after a minute the node is asked again", 61 * time.Second, false, false},
	}
	for _, st := range steps {
		now = now.Add(st.advance)
		nodes, err := fleet().Nodes(t.Context(), st.refresh)
		if err != nil || len(nodes) != 1 || nodes[0].Online != st.wantOnline {
			t.Errorf("%s: %+v, %v", st.name, nodes, err)
		}
	}
	// With no node answering, a space cannot be found.
	if _, err := fleet().FindSpace(t.Context(), "", "x"); err == nil {
		t.Error("FindSpace found a node that is down")
	}
}
