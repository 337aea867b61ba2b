package node_test

import (
	"testing"

	"github.com/adam91holt/clawdspace/nodetest"
)

func TestAgentSmoke(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := nodetest.Name(t, n.Engine, "agsmoke")
	r := n.Do(t, "POST", "/api/spaces", map[string]any{"name": name})
	if r.Status != 201 && r.Status != 200 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	r = n.Do(t, "POST", "/api/spaces/"+name+"/exec", map[string]any{"command": []string{"sh", "-c", "echo hi; echo err >&2; env | grep CLAWDSPACE; id; pwd; exit 3"}})
	t.Logf("%d %s", r.Status, r.Body)
	r = n.Do(t, "GET", "/api/spaces/"+name, nil)
	t.Logf("%d %s", r.Status, r.Body)
}
