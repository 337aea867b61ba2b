package node_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/adam91holt/clawdspace/nodetest"
)

// TestDashboardCheckpoints takes a checkpoint from the space page, sees it
// listed with its buttons, restores it, forks from it and deletes it.
func TestDashboardCheckpoints(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{Namespace: randomNamespace("dck")})
	name := newSpace(t, n, "dck")
	fork := nodetest.Name(t, n.Engine, "dck-fork")
	execIn(t, n, name, "echo before > /workspace/f")
	space := "/spaces/" + name

	body := bodyOf(t, page(t, n, "GET", space, nil))
	if len(byTestID(t, body, "checkpoints-empty")) != 1 || len(byTestID(t, body, "checkpoint-take")) != 1 {
		t.Fatalf("the space page has no empty checkpoints panel with a take button")
	}
	res := page(t, n, "POST", space+"/checkpoints", url.Values{"name": {"safe"}})
	if res.StatusCode != http.StatusSeeOther || !strings.Contains(res.Header.Get("Location"), "done=checkpoint") {
		t.Fatalf("take: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	body = bodyOf(t, page(t, n, "GET", space, nil))
	rows := byTestID(t, body, "checkpoint-row")
	if len(rows) != 1 || attrOf(rows[0], "data-checkpoint") != "safe" {
		t.Fatalf("checkpoint rows: %d", len(rows))
	}
	for _, id := range []string{"checkpoint-restore", "checkpoint-fork", "checkpoint-delete"} {
		if len(byTestID(t, body, id)) != 1 {
			t.Errorf("no %s button", id)
		}
	}

	execIn(t, n, name, "echo after > /workspace/f")
	res = page(t, n, "POST", space+"/checkpoints/safe/restore", url.Values{})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("restore: %d %s", res.StatusCode, bodyOf(t, res))
	}
	if out := execIn(t, n, name, "cat /workspace/f"); out.Stdout != "before\n" {
		t.Errorf("after restore: %q", out.Stdout)
	}
	res = page(t, n, "POST", space+"/fork", url.Values{"checkpoint": {"safe"}, "name": {fork}})
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/spaces/"+fork) {
		t.Fatalf("fork: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if out := execIn(t, n, fork, "cat /workspace/f"); out.Stdout != "before\n" {
		t.Errorf("fork: %q", out.Stdout)
	}
	if res := page(t, n, "POST", space+"/fork", url.Values{"checkpoint": {"safe"}, "name": {fork}}); res.StatusCode != http.StatusConflict {
		t.Errorf("fork to a taken name: %d", res.StatusCode)
	}
	if res := page(t, n, "POST", space+"/checkpoints/safe/delete", url.Values{}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d", res.StatusCode)
	}
	body = bodyOf(t, page(t, n, "GET", space, nil))
	if len(byTestID(t, body, "checkpoint-row")) != 0 {
		t.Errorf("the deleted checkpoint is still listed")
	}
}
