package node_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
)

// TestEngineFrozenOrGone: a node whose engine stops answering answers 503
// "did not answer in time" once its call timeout passes, and one whose
// engine is gone answers 503 "unavailable", on every route, instead of
// hanging or answering 500.
func TestEngineFrozenOrGone(t *testing.T) {
	proxy := nodetest.StartEngineProxy(t)
	// The Engine API path: an exec through the in-space agent needs no
	// engine call and keeps working while the engine is frozen.
	n := nodetest.Start(t, nodetest.Options{Namespace: "tfault", DockerHost: proxy.Host, CallTimeout: 2 * time.Second, NoAgent: true})
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "t-fault-" + hex.EncodeToString(b)
	// Cleaned up with a client of the real engine: the node's is cut.
	t.Cleanup(func() {
		c, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.ContainerRemove(ctx, n.Engine.ContainerName(name), client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("removing the space: %v", err)
		}
		if _, err := c.VolumeRemove(ctx, n.Engine.VolumeName(name), client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("removing the volume: %v", err)
		}
	})
	if res := n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": name, "template": "offline"}); res.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.Status, res.Body)
	}
	if got := execIn(t, n, name, "echo ok"); got.Stdout != "ok\n" {
		t.Fatalf("exec before the fault: %+v", got)
	}

	routes := []struct{ method, path string }{
		{http.MethodGet, "/api/spaces"},
		{http.MethodGet, "/api/spaces/" + name},
		{http.MethodPost, "/api/spaces/" + name + "/exec"},
		{http.MethodPost, "/api/spaces/" + name + "/stop"},
	}
	check := func(want string) {
		t.Helper()
		for _, r := range routes {
			var body any
			if r.method == http.MethodPost {
				body = map[string]any{"command": "true"}
			}
			res := n.Do(t, r.method, r.path, body)
			wantError(t, res, http.StatusServiceUnavailable, want)
		}
	}
	proxy.Freeze()
	check("Docker engine did not answer in time")
	proxy.Stop()
	check("Docker engine unavailable")
}
