package node_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/adam91holt/clawdspace/nodetest"
)

// TestDiskFull: with the node's data folder (database and upload spool)
// full, create, exec and a spooled upload answer 507 "The node's disk is
// full" without a server path, and work again once space is freed.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	dir := nodetest.SmallDisk(t, "4m")
	n := nodetest.Start(t, nodetest.Options{DataDir: dir})
	name := newSpace(t, n, "full")
	free := nodetest.FillDisk(t, dir)
	// The command goes into the audit row (2048 characters at most): the
	// database must grow for it.
	command := "true " + strings.Repeat("x", 2048)
	var res nodetest.Response
	for range 50 {
		if res = n.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", map[string]any{"command": command}); res.Status != http.StatusOK {
			break
		}
	}
	wantError(t, res, http.StatusInsufficientStorage, "The node's disk is full")

	other := nodetest.Name(t, n.Engine, "full2")
	res = n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": other})
	wantError(t, res, http.StatusInsufficientStorage, "The node's disk is full")

	upload := bytes.Repeat([]byte("u"), 3<<20)
	res = n.Do(t, http.MethodPut, "/api/spaces/"+name+"/file?path=/big", upload, "Content-Type", "application/octet-stream")
	wantError(t, res, http.StatusInsufficientStorage, "The node's disk is full")
	if bytes.Contains(res.Body, []byte(dir)) {
		t.Errorf("the answer names a server path: %s", res.Body)
	}

	free()
	if out := execIn(t, n, name, "echo ok"); out.Stdout != "ok\n" {
		t.Fatalf("exec once space is free = %+v", out)
	}
	res = n.Do(t, http.MethodPut, "/api/spaces/"+name+"/file?path=/big", upload, "Content-Type", "application/octet-stream")
	if res.Status != http.StatusOK {
		t.Fatalf("upload once space is free: %d %s", res.Status, res.Body)
	}
}
