package node_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/adam91holt/clawdspace/nodetest"
)

func TestObservability(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "observe")
	if _, code := sh(t, n, name, "head -c 300000 /dev/zero > /workspace/blob; printf '#1700000000\\necho hello\\n#1700000001\\nls -la\\n' > /workspace/.bash_history; sleep 300 >/dev/null 2>&1 &"); code != 0 {
		t.Fatal("setup failed")
	}
	r := n.Do(t, "GET", "/api/spaces/"+name+"/observability", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("observability = %d %s", r.Status, r.Body)
	}
	var got struct {
		Observability struct {
			Stats         map[string]any
			WorkspaceDisk *struct {
				Path                              string
				TotalBytes, UsedBytes, AvailBytes int64
				UsedPercent                       float64
			}
			WorkspaceSizeBytes *int64
			Top                []struct {
				PID     int
				Command string
			}
			BashHistoryTail *string
		}
	}
	r.JSON(t, &got)
	o := got.Observability
	if o.Stats["memoryLimitBytes"] != float64(128<<20) {
		t.Errorf("stats = %v", o.Stats)
	}
	if d := o.WorkspaceDisk; d == nil || d.Path != "/workspace" || d.TotalBytes <= 0 || d.UsedBytes+d.AvailBytes > d.TotalBytes+d.TotalBytes/10 {
		t.Errorf("workspaceDisk = %+v", d)
	}
	if o.WorkspaceSizeBytes == nil || *o.WorkspaceSizeBytes < 300000 {
		t.Errorf("workspaceSizeBytes = %v", o.WorkspaceSizeBytes)
	}
	found, init := false, false
	for _, p := range o.Top {
		found = found || (p.PID > 0 && strings.Contains(p.Command, "sleep 300"))
		init = init || p.PID == 1
	}
	if !found || !init {
		t.Errorf("top lacks the background sleep or the space's PID 1 (PIDs as the space sees them): %+v", o.Top)
	}
	if o.BashHistoryTail == nil || *o.BashHistoryTail != "echo hello\nls -la" {
		t.Errorf("bashHistoryTail = %v", o.BashHistoryTail)
	}

	// Paused: stats, top and history still come; nothing runs, so the tool
	// fields are missing rather than errors, and the space stays paused.
	if r := n.Do(t, "POST", "/api/spaces/"+name+"/stop", nil); r.Status != 200 {
		t.Fatal(r.Status)
	}
	r = n.Do(t, "GET", "/api/spaces/"+name+"/observability", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("paused observability = %d %s", r.Status, r.Body)
	}
	m := r.Map(t)["observability"].(map[string]any)
	if _, ok := m["workspaceDisk"]; ok {
		t.Errorf("paused space has workspaceDisk: %v", m)
	}
	if _, ok := m["stats"]; !ok {
		t.Errorf("paused space lacks stats: %v", m)
	}
	if st := n.Do(t, "GET", "/api/spaces/"+name, nil).Map(t)["space"].(map[string]any)["status"]; st != "paused" {
		t.Errorf("observability woke the space: %v", st)
	}
	if r := n.Do(t, "GET", "/api/spaces/nope-"+name+"/observability", nil); r.Status != 404 {
		t.Errorf("missing space = %d", r.Status)
	}
}
