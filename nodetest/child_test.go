package nodetest_test

import (
	"net/http"
	"testing"

	"github.com/adam91holt/clawdspace/nodetest"
)

// TestChildNodeKillRestart proves the child-node harness: a space made
// before a kill -9 is still served after the restart, on the same address.
func TestChildNodeKillRestart(t *testing.T) {
	n := nodetest.StartChildNode(t, nodetest.ChildConfig{})
	name := nodetest.Name(t, n.Engine, "child")
	if r := n.Do(t, "POST", "/api/spaces", map[string]any{"name": name, "template": "offline"}); r.Status != http.StatusCreated {
		t.Fatalf("create = %d %s", r.Status, r.Body)
	}
	pid := n.Pid()
	n.Kill()
	if n.Pid() != 0 {
		t.Fatal("Pid() after Kill is not 0")
	}
	n.Restart()
	if n.Pid() == pid || n.Pid() == 0 {
		t.Fatalf("restart kept pid %d", pid)
	}
	r := n.Do(t, "POST", "/api/spaces/"+name+"/exec", map[string]any{"command": "echo hi"})
	if r.Status != http.StatusOK || r.Map(t)["stdout"] != "hi\n" {
		t.Fatalf("exec after restart = %d %s", r.Status, r.Body)
	}
}
