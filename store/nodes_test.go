package store

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

func TestNodesSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.sqlite")
	s := openAt(t, path)
	t0 := time.UnixMilli(1_700_000_000_000)
	n := 3
	in := []spaces.NodeHealth{
		{Name: "b", URL: "http://100.64.0.2:7777", Status: spaces.NodeOnline, LatencyMs: 4, Version: "v1",
			Capabilities: &spaces.NodeCapabilities{GPU: true, Arch: "x64", CPUs: 8, Memory: 1 << 30, Spaces: &n},
			LastSeen:     t0, CheckedAt: t0},
		{Name: "a", URL: "http://100.64.0.3:7777", Status: spaces.NodeOffline, CheckedAt: t0, Problem: "no answer"},
	}
	if err := s.PutNodes(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	// An update replaces the row.
	in[1].Status, in[1].Problem = spaces.NodeOnline, ""
	if err := s.PutNodes(t.Context(), in[1:]); err != nil {
		t.Fatal(err)
	}
	s.Close()
	got, err := openAt(t, path).Nodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" {
		t.Fatalf("nodes = %+v, want a then b", got)
	}
	if got[0].Status != spaces.NodeOnline || got[0].Capabilities != nil || !got[0].LastSeen.IsZero() {
		t.Errorf("a = %+v, want online, no capabilities, never seen", got[0])
	}
	b := got[1]
	if b.Capabilities == nil || !b.Capabilities.GPU || b.Capabilities.CPUs != 8 || b.Capabilities.Spaces == nil || *b.Capabilities.Spaces != 3 ||
		!b.LastSeen.Equal(t0) || b.LatencyMs != 4 || b.URL != in[0].URL {
		t.Errorf("b = %+v, caps %+v: not what was stored", b, b.Capabilities)
	}
}
