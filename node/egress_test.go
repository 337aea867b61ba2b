package node_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/engine"
	"github.com/adam91holt/clawdspace/nodetest"
)

// startTarget runs a small web server in a container the test makes itself
// and returns its address: the only kind of address a test may aim at.
func startTarget(t *testing.T, n *nodetest.Node) string {
	t.Helper()
	ctx, raw := context.Background(), n.Raw()
	cr, err := raw.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: nodetest.TestImage, User: "1001:1001",
			Cmd: []string{"sh", "-c", "echo reachable > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = raw.ContainerRemove(context.Background(), cr.ID, client.ContainerRemoveOptions{Force: true})
	})
	if _, err := raw.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	ins, err := raw.ContainerInspect(ctx, cr.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, nw := range ins.Container.NetworkSettings.Networks {
		if nw.IPAddress.IsValid() {
			return nw.IPAddress.String()
		}
	}
	t.Fatal("target has no address")
	return ""
}

func reach(t *testing.T, n *nodetest.Node, name, ip string) bool {
	t.Helper()
	// busybox nc: its static wget crashes in a scratch image.
	out, code := sh(t, n, name, "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 "+ip+" 8080")
	return code == 0 && strings.Contains(out, "reachable")
}

// TestEgressBlockList: a template's block list is enforced for its spaces
// alone, survives a restart by the node or by the engine, and lan or no
// list blocks nothing.
func TestEgressBlockList(t *testing.T) {
	if err := engine.EgressSupported(); err != nil {
		t.Fatalf("egress rules cannot be enforced here (%v): the tests run as root, as the node does", err)
	}
	n := nodetest.Start(t, nodetest.Options{})
	ip := startTarget(t, n)
	tpl := "name: blocktarget\nnetwork:\n  mode: internet\n  blockCidrs: [\"" + ip + "/32\", \"fd00::/8\"]\n"
	if r := n.Do(t, "PUT", "/api/templates", map[string]string{"yaml": tpl}); r.Status != http.StatusOK {
		t.Fatalf("template = %d %s", r.Status, r.Body)
	}
	blocked := nodetest.Name(t, n.Engine, "blk")
	if r := n.Do(t, "POST", "/api/spaces", map[string]any{"name": blocked, "template": "blocktarget", "memory": "128m"}); r.Status != http.StatusCreated {
		t.Fatalf("create = %d %s", r.Status, r.Body)
	}
	open := nodetest.Name(t, n.Engine, "open")
	if r := n.Do(t, "POST", "/api/spaces", map[string]any{"name": open, "template": "lan", "memory": "128m"}); r.Status != http.StatusCreated {
		t.Fatalf("create = %d %s", r.Status, r.Body)
	}
	if !reach(t, n, open, ip) {
		t.Fatal("a lan space cannot reach the target: the test itself is broken")
	}
	if reach(t, n, blocked, ip) {
		t.Fatal("the blocked space reached a blocked address")
	}
	// Replies to connections made to the blocked space still flow.
	if _, code := sh(t, n, blocked, "echo reachable > /tmp/index.html && httpd -p 8080 -h /tmp"); code != 0 {
		t.Fatal("could not start a server in the blocked space")
	}
	ins, err := n.Raw().ContainerInspect(context.Background(), "clawdspace-"+blocked, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var blockedIP string
	for _, nw := range ins.Container.NetworkSettings.Networks {
		blockedIP = nw.IPAddress.String()
	}
	// The host (the test, as the node would) reaches it: the answers pass.
	if !hostReaches(t, blockedIP, 8080) {
		t.Fatal("a server in the blocked space cannot answer: replies are blocked")
	}
	// The default template blocks private ranges, the bridge included.
	if reach(t, n, newSpace(t, n, "default"), ip) {
		t.Fatal("a default-template space reached a private address")
	}

	// Stopped outside the node, started through it: rules come back.
	if _, err := n.Raw().ContainerStop(context.Background(), "clawdspace-"+blocked, client.ContainerStopOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := n.Do(t, "POST", "/api/spaces/"+blocked+"/start", nil); r.Status != http.StatusOK {
		t.Fatalf("start = %d %s", r.Status, r.Body)
	}
	if reach(t, n, blocked, ip) {
		t.Fatal("blocked space reached the target after a start")
	}
	// Restarted by the engine alone: the node sees the start event.
	if _, err := n.Raw().ContainerRestart(context.Background(), "clawdspace-"+blocked, client.ContainerRestartOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rules back after an engine restart", 20*time.Second, func() bool { return !reach(t, n, blocked, ip) })
	if !reach(t, n, open, ip) {
		t.Fatal("the open space lost its access")
	}
}

// TestEgressFailsClosed: a node that cannot enforce network rules refuses
// every space with a network (a block list, or just the isolation from
// other spaces that lan has too), and makes offline ones.
func TestEgressFailsClosed(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{NoEgress: true})
	name := nodetest.Name(t, n.Engine, "closed")
	for _, tpl := range []string{"default", "lan"} {
		r := n.Do(t, "POST", "/api/spaces", map[string]any{"name": name, "template": tpl})
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Map(t)["error"].(string), "cannot enforce") {
			t.Fatalf("%s template without enforcement = %d %s", tpl, r.Status, r.Body)
		}
		wantNothingLeft(t, n, name)
	}
	if r := n.Do(t, "POST", "/api/spaces", map[string]any{"name": name, "template": "offline"}); r.Status != http.StatusCreated {
		t.Fatalf("offline template = %d %s", r.Status, r.Body)
	}
}
