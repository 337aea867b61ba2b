package cli

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/nodetest"
)

func TestCheckpointRestoreForkCommands(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	name := e.space("ckcli")
	fork, fork2 := nodetest.Name(t, e.node.Engine, "ckcli-fork"), nodetest.Name(t, e.node.Engine, "ckcli-fork2")
	e.ok(nil, "exec", name, "echo v1 > /workspace/a && echo t1 > /home/sandbox/t")

	r := e.ok(nil, "checkpoint", name, "before")
	if !strings.Contains(r.Stdout, "Checkpoint before of "+name+" taken") || !strings.Contains(r.Stdout, "frozen") {
		t.Errorf("checkpoint said %s", r)
	}
	var list struct {
		Checkpoints []struct {
			Name string `json:"name"`
			Size int64  `json:"size"`
		} `json:"checkpoints"`
		Limit int `json:"limit"`
	}
	e.jsonOf(&list, "checkpoint", name, "--list", "--json")
	if len(list.Checkpoints) != 1 || list.Checkpoints[0].Name != "before" || list.Checkpoints[0].Size == 0 || list.Limit != 10 {
		t.Errorf("checkpoint --list --json = %+v", list)
	}
	if r := e.ok(nil, "checkpoint", name, "-l"); !strings.Contains(r.Stdout, "before") || !strings.Contains(r.Stdout, "1 of 10 checkpoints") {
		t.Errorf("checkpoint --list:\n%s", r.Stdout)
	}
	oneLineError(t, e.run(nil, "checkpoint", name, "before"), 1, "checkpoint before already exists")

	e.ok(nil, "exec", name, "echo v2 > /workspace/a && echo t2 > /home/sandbox/t")
	if r := e.ok(nil, "restore", name, "before"); !strings.Contains(r.Stdout, "Restored "+name+" to checkpoint before") || !strings.Contains(r.Stdout, "running") {
		t.Errorf("restore said %s", r)
	}
	if r := e.ok(nil, "exec", name, "cat /workspace/a /home/sandbox/t"); r.Stdout != "v1\nt1\n" {
		t.Errorf("after restore: %q", r.Stdout)
	}
	oneLineError(t, e.run(nil, "restore", name, "nope"), 1, "Checkpoint not found")

	if r := e.ok(nil, "fork", name+"@before", fork); !strings.Contains(r.Stdout, "Forked "+fork) {
		t.Errorf("fork said %s", r)
	}
	e.ok(nil, "exec", name, "echo v3 > /workspace/a")
	if r := e.ok(nil, "create", fork2, "--from", name); !strings.Contains(r.Stdout, "Forked "+fork2) {
		t.Errorf("create --from said %s", r)
	}
	if r := e.ok(nil, "exec", fork, "cat /workspace/a"); r.Stdout != "v1\n" {
		t.Errorf("fork of the checkpoint: %q", r.Stdout)
	}
	if r := e.ok(nil, "exec", fork2, "cat /workspace/a"); r.Stdout != "v3\n" {
		t.Errorf("fork of the space: %q", r.Stdout)
	}
	oneLineError(t, e.run(nil, "create", "x", "--from", name, "--memory", "1g"), 2, "--from takes its settings from its source")

	if r := e.ok(nil, "checkpoint", name, "before", "--delete"); !strings.Contains(r.Stdout, "Deleted checkpoint before") {
		t.Errorf("delete said %s", r)
	}
	if r := e.ok(nil, "checkpoint", name, "--list"); !strings.Contains(r.Stdout, "0 of 10") {
		t.Errorf("list after delete:\n%s", r.Stdout)
	}
}

func TestExportImportCommands(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	name := e.space("excli")
	copyName := nodetest.Name(t, e.node.Engine, "excli-copy")
	fileCopy := nodetest.Name(t, e.node.Engine, "excli-file")
	e.ok(nil, "exec", name, "echo data > /workspace/a && echo tool > /home/sandbox/t")

	r := e.ok(nil, "export", name)
	if !strings.Contains(r.Stderr, "Exported "+name) || len(r.Stdout) < 1024 {
		t.Fatalf("export said %q and wrote %d bytes", r.Stderr, len(r.Stdout))
	}
	if r := e.ok(strings.NewReader(r.Stdout), "import", copyName); !strings.Contains(r.Stdout, "Imported "+copyName) {
		t.Errorf("import said %s", r)
	}
	if r := e.ok(nil, "exec", copyName, "cat /workspace/a /home/sandbox/t"); r.Stdout != "data\ntool\n" {
		t.Errorf("imported space holds %q", r.Stdout)
	}

	// Through files, of a checkpoint.
	e.ok(nil, "checkpoint", name, "c1")
	e.ok(nil, "exec", name, "echo later > /workspace/a")
	e.ok(nil, "export", name, "--checkpoint", "c1", "-o", "c1.tar")
	e.ok(nil, "import", fileCopy, "-i", "c1.tar")
	if r := e.ok(nil, "exec", fileCopy, "cat /workspace/a"); r.Stdout != "data\n" {
		t.Errorf("space imported from the checkpoint's file holds %q", r.Stdout)
	}
	oneLineError(t, e.run(strings.NewReader("not an archive"), "import", "x-bad"), 1, "not a space archive")
}

// TestMoveCommand moves a space between two nodes: it runs on the second
// with its files, and is gone from the first.
func TestMoveCommand(t *testing.T) {
	t.Parallel()
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	a := nodetest.Start(t, nodetest.Options{Hostname: "mv-a", Namespace: "mva" + suffix})
	b := nodetest.Start(t, nodetest.Options{Hostname: "mv-b", Namespace: "mvb" + suffix})
	e := newBareEnv(t)
	e.node = a
	e.env["CLAWDSPACE_HOSTS"] = a.URL + " " + b.URL
	e.env["CLAWDSPACE_KEY"] = nodetest.Key
	name := nodetest.Name(t, a.Engine, "mv")
	t.Cleanup(func() { _ = b.Engine.Remove(context.Background(), name, true) })
	if r := a.Do(t, "POST", "/api/spaces", map[string]any{"name": name, "memory": "128m", "cpus": 0.5}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	e.ok(nil, "exec", name, "echo moving > /workspace/a")
	oneLineError(t, e.run(nil, "move", name, "--to", "mv-a"), 2, "already on mv-a")
	// A fork onto the other node first: independent of its source.
	forked := nodetest.Name(t, b.Engine, "mv-fork")
	if r := e.ok(nil, "fork", name, forked, "--to", "mv-b"); !strings.Contains(r.Stdout, "Forked "+forked+" from "+name+" on mv-a to mv-b") {
		t.Errorf("fork --to said %s", r)
	}
	if r := b.Do(t, "POST", "/api/spaces/"+forked+"/exec", map[string]any{"command": "cat /workspace/a"}); r.Status != 200 || !strings.Contains(string(r.Body), `moving\n`) {
		t.Errorf("the fork on mv-b: %d %s", r.Status, r.Body)
	}
	if r := e.ok(nil, "move", name, "--to", "mv-b"); !strings.Contains(r.Stdout, "Moved "+name+" from mv-a to mv-b") {
		t.Errorf("move said %s", r)
	}
	if r := a.Do(t, "GET", "/api/spaces/"+name, nil); r.Status != 404 {
		t.Errorf("the source is still on mv-a: %d", r.Status)
	}
	if r := b.Do(t, "POST", "/api/spaces/"+name+"/exec", map[string]any{"command": "cat /workspace/a"}); r.Status != 200 || !strings.Contains(string(r.Body), `moving\n`) {
		t.Errorf("the copy on mv-b: %d %s", r.Status, r.Body)
	}
}
