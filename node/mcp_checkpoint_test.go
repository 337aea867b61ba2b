package node_test

import (
	"testing"

	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// TestMCPCheckpointTools takes a checkpoint, restores it and forks through
// the MCP tools, as an agent guarding a risky step would.
func TestMCPCheckpointTools(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{Namespace: randomNamespace("mcpc")})
	cs := mcpConnect(t, n.URL, n.HTTP, nodetest.Key, nil)
	name := nodetest.Name(t, n.Engine, "mcpck")
	fork := nodetest.Name(t, n.Engine, "mcpck-fork")
	createSpace(t, n, name, map[string]any{"template": "offline"})
	execIn(t, n, name, "echo before > /workspace/f")

	var taken struct {
		Checkpoint struct{ Name string }
		FrozenMs   float64
	}
	toolOK(t, cs, "checkpoint", map[string]any{"name": name, "checkpoint": "safe"}, &taken)
	if taken.Checkpoint.Name != "safe" || taken.FrozenMs <= 0 {
		t.Errorf("checkpoint = %+v", taken)
	}
	var list struct {
		Checkpoints []struct{ Name string }
		Limit       int
	}
	toolOK(t, cs, "list_checkpoints", map[string]any{"name": name}, &list)
	if len(list.Checkpoints) != 1 || list.Checkpoints[0].Name != "safe" || list.Limit != spaces.DefaultMaxCheckpoints {
		t.Errorf("list_checkpoints = %+v", list)
	}
	execIn(t, n, name, "echo broken > /workspace/f")
	var restored struct{ Space struct{ Name, Status string } }
	toolOK(t, cs, "restore", map[string]any{"name": name, "checkpoint": "safe"}, &restored)
	if restored.Space.Status != "running" {
		t.Errorf("restore = %+v", restored)
	}
	if out := execIn(t, n, name, "cat /workspace/f"); out.Stdout != "before\n" {
		t.Errorf("after restore: %q", out.Stdout)
	}
	wantToolError(t, cs, "restore", map[string]any{"name": name, "checkpoint": "nope"}, "Checkpoint not found")
	toolOK(t, cs, "fork", map[string]any{"from": name + "@safe", "name": fork}, nil)
	if out := execIn(t, n, fork, "cat /workspace/f"); out.Stdout != "before\n" {
		t.Errorf("fork: %q", out.Stdout)
	}
	if ev := lastEvent(t, n, fork, spaces.EventFork); ev.Meta["door"] != "mcp" {
		t.Errorf("fork audit = %+v, want door mcp", ev)
	}
}
