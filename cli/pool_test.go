package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// TestListHidesPool: `clawdspace list` on a node with a warm pool shows a
// space made from it and no member.
func TestListHidesPool(t *testing.T) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	n := nodetest.Start(t, nodetest.Options{Namespace: "clipool" + hex.EncodeToString(b), WarmPool: map[string]int{"offline": 2}})
	e := newBareEnv(t)
	e.node = n
	e.env["CLAWDSPACE_HOSTS"] = n.URL
	e.env["CLAWDSPACE_KEY"] = nodetest.Key
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := n.Service.PoolStatus(context.Background(), spaces.CallerAPIKey())
		if err == nil && len(st) == 1 && st[0].Ready == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the warm pool did not fill: %+v %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	name := nodetest.Name(t, n.Engine, "clipool")
	if r := n.Do(t, "POST", "/api/spaces", map[string]any{"name": name, "template": "offline"}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	r := e.ok(nil, "list")
	if !strings.Contains(r.Stdout, name) || strings.Contains(r.Stdout, "_pool") || strings.Contains(r.Stdout, "pool.") {
		t.Errorf("list:\n%s", r.Stdout)
	}
}
