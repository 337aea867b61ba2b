package node_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// TestCheckpointsThroughTheAPI takes checkpoints up to the node's limit,
// restores one, forks, deletes, and checks the audit rows of each.
func TestCheckpointsThroughTheAPI(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{MaxCheckpoints: 2, Namespace: randomNamespace("ck")})
	name := nodetest.Name(t, n.Engine, "ckapi")
	fork := nodetest.Name(t, n.Engine, "ckapi-fork")
	createSpace(t, n, name, map[string]any{"template": "offline"})
	execIn(t, n, name, "echo one > /workspace/f && echo tool > /home/sandbox/tool")
	base := "/api/spaces/" + name + "/checkpoints"

	var taken struct {
		Checkpoint struct {
			Name           string `json:"name"`
			Size           int64  `json:"size"`
			WorkspaceBytes int64  `json:"workspaceBytes"`
			Template       string `json:"template"`
		} `json:"checkpoint"`
		FrozenMs float64 `json:"frozenMs"`
	}
	res := n.Do(t, http.MethodPost, base, nil)
	if res.Status != http.StatusCreated {
		t.Fatalf("checkpoint: %d %s", res.Status, res.Body)
	}
	res.JSON(t, &taken)
	if taken.Checkpoint.Name != "1" || taken.Checkpoint.WorkspaceBytes == 0 || taken.FrozenMs <= 0 || taken.Checkpoint.Template != "offline" {
		t.Errorf("first checkpoint %+v: want numbered 1, a size, a frozen time and the template", taken)
	}
	if res := n.Do(t, http.MethodPost, base, map[string]any{"name": "two"}); res.Status != http.StatusCreated {
		t.Fatalf("second checkpoint: %d %s", res.Status, res.Body)
	}
	wantError(t, n.Do(t, http.MethodPost, base, map[string]any{"name": "three"}), http.StatusConflict, "")
	wantError(t, n.Do(t, http.MethodPost, base, map[string]any{"name": "a.b"}), http.StatusBadRequest, "")

	execIn(t, n, name, "echo changed > /workspace/f && rm /home/sandbox/tool")
	if res := n.Do(t, http.MethodPost, base+"/1/restore", nil); res.Status != http.StatusOK {
		t.Fatalf("restore: %d %s", res.Status, res.Body)
	}
	if out := execIn(t, n, name, "cat /workspace/f /home/sandbox/tool"); out.Stdout != "one\ntool\n" {
		t.Errorf("after restore: %q", out.Stdout)
	}

	res = n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": fork, "from": name + "@two"})
	if res.Status != http.StatusCreated {
		t.Fatalf("fork: %d %s", res.Status, res.Body)
	}
	if out := execIn(t, n, fork, "cat /workspace/f"); out.Stdout != "one\n" {
		t.Errorf("fork: %q", out.Stdout)
	}
	wantError(t, n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": fork, "from": name}), http.StatusConflict, "Space already exists")
	wantError(t, n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": "x", "from": "nope-not-here"}), http.StatusNotFound, "")
	wantError(t, n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": "x", "from": name + "@nope"}), http.StatusNotFound, "Checkpoint not found: "+name+"@nope")

	if res := n.Do(t, http.MethodDelete, base+"/two", nil); res.Status != http.StatusOK {
		t.Fatalf("delete: %d %s", res.Status, res.Body)
	}
	// The fork runs on without the checkpoint it came from.
	if out := execIn(t, n, fork, "cat /workspace/f"); out.Stdout != "one\n" {
		t.Errorf("fork after the delete: %q", out.Stdout)
	}

	for space, types := range map[string][]string{
		name: {spaces.EventCheckpointCreate, spaces.EventCheckpointRestore, spaces.EventCheckpointDelete},
		fork: {spaces.EventFork},
	} {
		events, err := n.Store.Events(t.Context(), spaces.AuditQuery{Space: space, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range types {
			found := false
			for _, ev := range events {
				found = found || ev.Type == typ
			}
			if !found {
				t.Errorf("no %s row for %s in %+v", typ, space, events)
			}
		}
	}
}

// TestRestoreSaysWhatDiffers restores a checkpoint that an earlier space
// of the name left (destroyed keeping its volume, so its checkpoints too)
// into a space of another template: 409 naming the template, then force.
func TestRestoreSaysWhatDiffers(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{Namespace: randomNamespace("ck")})
	name := nodetest.Name(t, n.Engine, "ckdiff")
	tmpl := "t-ckdiff-" + strings.ToLower(randomNamespace(""))
	yaml := "name: " + tmpl + "\nresources:\n  memory: 128m\n  cpus: 0.5\nnetwork:\n  mode: none\n"
	if res := n.Do(t, http.MethodPut, "/api/templates", map[string]any{"yaml": yaml}); res.Status >= 300 {
		t.Fatalf("template: %d %s", res.Status, res.Body)
	}
	createSpace(t, n, name, map[string]any{"template": "offline"})
	execIn(t, n, name, "echo old > /workspace/f")
	if res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/checkpoints", map[string]any{"name": "c"}); res.Status != http.StatusCreated {
		t.Fatalf("checkpoint: %d %s", res.Status, res.Body)
	}
	if res := n.Do(t, http.MethodDelete, "/api/spaces/"+name, nil); res.Status != http.StatusOK {
		t.Fatalf("destroy: %d %s", res.Status, res.Body)
	}
	createSpace(t, n, name, map[string]any{"template": tmpl})
	res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/checkpoints/c/restore", nil)
	wantError(t, res, http.StatusConflict, "")
	if !strings.Contains(string(res.Body), `template (\"offline\", the space has \"`+tmpl+`\")`) {
		t.Errorf("the refusal does not say what differs: %s", res.Body)
	}
	if res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/checkpoints/c/restore?force=true", nil); res.Status != http.StatusOK {
		t.Fatalf("forced restore: %d %s", res.Status, res.Body)
	}
	if out := execIn(t, n, name, "cat /workspace/f"); out.Stdout != "old\n" {
		t.Errorf("after the forced restore: %q", out.Stdout)
	}
}
