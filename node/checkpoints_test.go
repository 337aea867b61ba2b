package node_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/adam91holt/clawdspace/fleet"
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

// TestExportImportThroughTheAPI exports a space (an implicit checkpoint)
// from one node and imports it on another: the same files, the settings
// of the manifest, audit rows on both; a node whose file limit is smaller
// than the archive answers 413 and keeps nothing.
func TestExportImportThroughTheAPI(t *testing.T) {
	t.Parallel()
	a := nodetest.Start(t, nodetest.Options{Namespace: randomNamespace("exa")})
	b := nodetest.Start(t, nodetest.Options{Namespace: randomNamespace("exb")})
	small := nodetest.Start(t, nodetest.Options{Namespace: randomNamespace("exs"), MaxFileBytes: 64 << 10})
	name := nodetest.Name(t, a.Engine, "exp")
	copyName := nodetest.Name(t, b.Engine, "exp-copy")
	tooBig := nodetest.Name(t, small.Engine, "exp-big")
	createSpace(t, a, name, map[string]any{"template": "offline", "memory": "96m"})
	const sums = "cd /workspace && sha256sum big notes /home/sandbox/tool && stat -c '%a %u' notes"
	execIn(t, a, name, "head -c 200000 /dev/urandom > /workspace/big && echo hi > /workspace/notes && chmod 640 /workspace/notes && echo t > /home/sandbox/tool")
	want := execIn(t, a, name, sums).Stdout

	res := a.Do(t, http.MethodGet, "/api/spaces/"+name+"/export", nil)
	if res.Status != http.StatusOK || res.Header.Get("Content-Type") != "application/x-tar" {
		t.Fatalf("export: %d %s", res.Status, res.Header.Get("Content-Type"))
	}
	if list := a.Do(t, http.MethodGet, "/api/spaces/"+name+"/checkpoints", nil); strings.Contains(string(list.Body), "_export") {
		t.Errorf("the export's implicit checkpoint is left: %s", list.Body)
	}
	imp := b.Do(t, http.MethodPost, "/api/spaces/import?name="+copyName, res.Body, "Content-Type", "application/x-tar")
	if imp.Status != http.StatusCreated {
		t.Fatalf("import: %d %s", imp.Status, imp.Body)
	}
	sp := getSpace(t, b, copyName)
	if sp.Memory != 96<<20 || sp.Status != "running" {
		t.Errorf("imported space %+v: want the source's memory, running", sp)
	}
	if got := execIn(t, b, copyName, sums).Stdout; got != want {
		t.Errorf("imported files:\n%s\nwant\n%s", got, want)
	}
	if ev := lastEvent(t, a, name, spaces.EventExport); ev.Type == "" {
		t.Error("no space.export row")
	}
	if ev := lastEvent(t, b, copyName, spaces.EventImport); ev.Meta["from"] != name {
		t.Errorf("space.import row %+v", ev)
	}

	wantError(t, small.Do(t, http.MethodPost, "/api/spaces/import?name="+tooBig, res.Body, "Content-Type", "application/x-tar"),
		http.StatusRequestEntityTooLarge, "")
	if r := small.Do(t, http.MethodGet, "/api/spaces/"+tooBig, nil); r.Status != http.StatusNotFound {
		t.Errorf("a refused import left a space: %d", r.Status)
	}
}

// TestForkToAnotherNode: a create with "from" and "node" naming another
// node of the fleet streams the source's archive from this node into that
// node's import, as the caller; the fork there has the source's files and
// is independent of it. A source the caller may not read, or that does
// not exist, is refused by this node.
func TestForkToAnotherNode(t *testing.T) {
	t.Parallel()
	b := nodetest.Start(t, nodetest.Options{Hostname: "fork-b", Namespace: randomNamespace("fkb")})
	a := nodetest.Start(t, nodetest.Options{Hostname: "fork-a", Namespace: randomNamespace("fka"),
		Nodes: []fleet.StaticNode{{Name: "fork-a", URL: "http://127.0.0.1:1"}, {Name: "fork-b", URL: b.URL}}})
	if err := a.Fleet.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	name := nodetest.Name(t, a.Engine, "fksrc")
	copyName := nodetest.Name(t, b.Engine, "fkcopy")
	createSpace(t, a, name, map[string]any{"template": "offline", "memory": "96m"})
	execIn(t, a, name, "head -c 100000 /dev/urandom > /workspace/data && echo t > /home/sandbox/tool")
	const sums = "sha256sum /workspace/data /home/sandbox/tool"
	want := execIn(t, a, name, sums).Stdout

	res := a.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": copyName, "from": name, "node": "fork-b"})
	if res.Status != http.StatusCreated || res.Header.Get("Clawdspace-Node") != "fork-b" {
		t.Fatalf("fork to fork-b: %d %s (node %q)", res.Status, res.Body, res.Header.Get("Clawdspace-Node"))
	}
	if got := execIn(t, b, copyName, sums).Stdout; got != want {
		t.Errorf("the fork's files on fork-b:\n%s\nwant\n%s", got, want)
	}
	execIn(t, b, copyName, "echo changed > /workspace/data")
	if got := execIn(t, a, name, sums).Stdout; got != want {
		t.Errorf("changing the fork changed its source:\n%s", got)
	}
	if ev := lastEvent(t, b, copyName, spaces.EventImport); ev.Meta["from"] != name {
		t.Errorf("space.import row on fork-b: %+v", ev)
	}
	if r := a.Do(t, http.MethodGet, "/api/spaces/"+copyName, nil); r.Status != http.StatusNotFound {
		t.Errorf("the fork is on fork-a too: %d", r.Status)
	}

	missing := nodetest.Name(t, b.Engine, "fkmissing")
	wantError(t, a.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": missing, "from": "t-no-such-space", "node": "fork-b"}),
		http.StatusNotFound, "")
	if r := b.Do(t, http.MethodGet, "/api/spaces/"+missing, nil); r.Status != http.StatusNotFound {
		t.Errorf("a refused fork left a space on fork-b: %d", r.Status)
	}
	// The name is taken on fork-b: its refusal is the answer.
	wantError(t, a.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": copyName, "from": name, "node": "fork-b"}),
		http.StatusConflict, "")
}
