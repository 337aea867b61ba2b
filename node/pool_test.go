package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/engine"
	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// poolNode starts a node with a warm pool of size members of the offline
// template (no network: the test spaces reach nothing), in a namespace of
// its own, and waits until the pool is full.
func poolNode(t testing.TB, size int) *nodetest.Node {
	t.Helper()
	n := nodetest.Start(t, nodetest.Options{Namespace: randomNamespace("pl"), WarmPool: map[string]int{"offline": size}})
	t.Cleanup(func() { assertNoPool(t, n) })
	waitPoolFull(t, n)
	return n
}

// waitPoolFull polls until every template's pool is full.
func waitPoolFull(t testing.TB, n *nodetest.Node) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := n.Service.PoolStatus(context.Background(), spaces.CallerAPIKey())
		full := err == nil && len(st) > 0
		for _, s := range st {
			full = full && s.Ready >= s.Size
		}
		if full {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the warm pool did not fill: %+v %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// poolMembers lists the containers of n's namespace named as pool members.
func poolMembers(t testing.TB, n *nodetest.Node) []string {
	t.Helper()
	res, err := n.Raw().ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("name", n.Engine.ContainerName("_pool."))})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range res.Items {
		out = append(out, c.Names...)
	}
	return out
}

// poolVolumes lists the volumes of n's namespace named as pool volumes.
func poolVolumes(t testing.TB, n *nodetest.Node) []string {
	t.Helper()
	res, err := n.Raw().VolumeList(context.Background(), client.VolumeListOptions{
		Filters: make(client.Filters).Add("name", n.Engine.VolumeName("_pool."))})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range res.Items {
		out = append(out, v.Name)
	}
	return out
}

// assertNoPool stops the node (draining its pool) and checks that no
// member or pool volume is left.
func assertNoPool(t testing.TB, n *nodetest.Node) {
	t.Helper()
	n.Stop()
	if m := poolMembers(t, n); len(m) > 0 {
		t.Errorf("pool members left after the node stopped: %v", m)
	}
}

// pooled reports whether a space's container was a pool member.
func pooled(t testing.TB, n *nodetest.Node, name string) bool {
	t.Helper()
	res, err := n.Raw().ContainerInspect(context.Background(), n.Engine.ContainerName(name), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Container.Config.Labels["clawdspace.pool"] != ""
}

// TestPoolCreate: a create claims a member and finishes it into the space
// asked for (running, its name and host name, resources, an empty
// workspace of its own, an audit row); members never show as spaces; the
// pool refills; a destroy that keeps the workspace keeps it under the
// space's own volume name, and one that removes it leaves no volume.
func TestPoolCreate(t *testing.T) {
	t.Parallel()
	n := poolNode(t, 2)
	name := nodetest.Name(t, n.Engine, "pool")
	other := nodetest.Name(t, n.Engine, "pool2")
	sp := createSpace(t, n, name, map[string]any{"template": "offline"})
	if sp.Status != "running" || sp.Name != name || sp.Memory != 2<<30 {
		t.Errorf("pooled space %+v", sp)
	}
	if !pooled(t, n, name) {
		t.Fatal("the create did not use the warm pool")
	}
	for cmd, want := range map[string]string{
		"hostname":          name,
		"cat /etc/hostname": name,
		"grep -c " + name + " /etc/hosts || true": "",
		"ls -A /workspace | wc -l":                "0",
		"id -u":                                   "1001",
	} {
		got := strings.TrimSpace(execIn(t, n, name, cmd).Stdout)
		if want != "" && got != want {
			t.Errorf("%s: %q, want %q", cmd, got, want)
		}
	}
	if out := execIn(t, n, name, "cat /etc/hosts").Stdout; strings.Contains(out, "clawdspace-pool") {
		t.Errorf("the pool's host name is left in /etc/hosts: %q", out)
	}
	// A second create gets another member, with its own workspace.
	execIn(t, n, name, "echo mine > /workspace/f")
	createSpace(t, n, other, map[string]any{"template": "offline"})
	if !pooled(t, n, other) {
		t.Error("the second create did not use the warm pool")
	}
	if out := execIn(t, n, other, "ls -A /workspace | wc -l").Stdout; strings.TrimSpace(out) != "0" {
		t.Errorf("the second space sees files: %q", out)
	}
	// Members never show as spaces.
	list := listSpaces(t, n)
	if len(list) != 2 {
		t.Errorf("list: %v", list)
	}
	for k := range list {
		if strings.Contains(k, "pool.") {
			t.Errorf("a pool member is listed: %s", k)
		}
	}
	if res := n.Do(t, http.MethodGet, "/api/spaces/_pool.x", nil); res.Status != http.StatusNotFound {
		t.Errorf("GET of a pool name: %d", res.Status)
	}
	dash := page(t, n, http.MethodGet, "/", nil)
	body, _ := io.ReadAll(dash.Body)
	if dash.StatusCode != http.StatusOK || !strings.Contains(string(body), name) || strings.Contains(string(body), "_pool") {
		t.Errorf("dashboard: %d, shows the space: %t, shows a pool member: %t", dash.StatusCode, strings.Contains(string(body), name), strings.Contains(string(body), "_pool"))
	}
	// The audit row of the create.
	res := n.Do(t, http.MethodGet, "/api/audit?space="+name, nil)
	if !strings.Contains(string(res.Body), `"space.create"`) {
		t.Errorf("no create audit row: %s", res.Body)
	}
	waitPoolFull(t, n) // refilled
	var sys struct {
		WarmPool []map[string]any `json:"warmPool"`
	}
	n.Do(t, http.MethodGet, "/api/system", nil).JSON(t, &sys)
	if len(sys.WarmPool) != 1 || sys.WarmPool[0]["template"] != "offline" || sys.WarmPool[0]["size"] != 2.0 || sys.WarmPool[0]["ready"] != 2.0 {
		t.Errorf("system warmPool: %v", sys.WarmPool)
	}

	// Destroy keeping the workspace, create again: the file is back (a
	// cold create, as the volume exists).
	if res := n.Do(t, http.MethodDelete, "/api/spaces/"+name, nil); res.Status != http.StatusOK {
		t.Fatalf("destroy: %d %s", res.Status, res.Body)
	}
	createSpace(t, n, name, map[string]any{"template": "offline"})
	if pooled(t, n, name) {
		t.Error("a create with a kept workspace used the pool")
	}
	if out := execIn(t, n, name, "cat /workspace/f").Stdout; out != "mine\n" {
		t.Errorf("kept workspace: %q", out)
	}
	// Destroy with the volume: nothing of either space is left.
	for _, s := range []string{name, other} {
		if res := n.Do(t, http.MethodDelete, "/api/spaces/"+s+"?removeVolume=true", nil); res.Status != http.StatusOK {
			t.Fatalf("destroy: %d %s", res.Status, res.Body)
		}
	}
	waitPoolFull(t, n)
	if v := poolVolumes(t, n); len(v) != 2 {
		t.Errorf("pool volumes after the destroys: %v, want the 2 members'", v)
	}
}

// TestPoolFallsBack: a create the pool cannot serve is a cold one, and
// right: other resources, env, another template.
func TestPoolFallsBack(t *testing.T) {
	t.Parallel()
	n := poolNode(t, 1)
	cases := []struct {
		name   string
		fields map[string]any
	}{
		{"memory", map[string]any{"template": "offline", "memory": "256m"}},
		{"env", map[string]any{"template": "offline", "env": map[string]string{"FOO": "bar"}}},
		{"cpus", map[string]any{"template": "offline", "cpus": 0.5}},
	}
	for _, c := range cases {
		name := nodetest.Name(t, n.Engine, "fb-"+c.name)
		createSpace(t, n, name, c.fields)
		if pooled(t, n, name) {
			t.Errorf("%s: used the pool", c.name)
		}
		if got := strings.TrimSpace(execIn(t, n, name, "hostname").Stdout); got != name {
			t.Errorf("%s: hostname %q", c.name, got)
		}
	}
	name := nodetest.Name(t, n.Engine, "fb-env")
	createSpace(t, n, name, map[string]any{"template": "offline", "env": map[string]string{"FOO": "bar"}})
	if out := execIn(t, n, name, "echo $FOO").Stdout; out != "bar\n" {
		t.Errorf("env of a cold create: %q", out)
	}
	if m := poolMembers(t, n); len(m) != 1 {
		t.Errorf("the pool was touched: %v", m)
	}
}

// TestPoolRace: 100 creates at once with a pool of 3: each space is its own
// (name, host name, workspace), each member is claimed once, and nothing
// leaks.
func TestPoolRace(t *testing.T) {
	t.Parallel()
	n := poolNode(t, 3)
	const count = 100
	names := make([]string, count)
	for i := range names {
		names[i] = nodetest.Name(t, n.Engine, fmt.Sprintf("race%d", i))
	}
	var wg sync.WaitGroup
	status := make([]int, count)
	for i, name := range names {
		wg.Go(func() {
			res := n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": name, "template": "offline"})
			status[i] = res.Status
		})
	}
	wg.Wait()
	ids := map[string]bool{}
	fromPool := 0
	for i, name := range names {
		if status[i] != http.StatusCreated {
			t.Errorf("create %s: %d", name, status[i])
			continue
		}
		if pooled(t, n, name) {
			fromPool++
		}
		sp := getSpace(t, n, name)
		if ids[sp.ID] {
			t.Errorf("two spaces share container %s", sp.ID)
		}
		ids[sp.ID] = true
		if got := strings.TrimSpace(execIn(t, n, name, "hostname; echo "+name+" > /workspace/me").Stdout); got != name {
			t.Errorf("%s: hostname %q", name, got)
		}
	}
	if fromPool == 0 {
		t.Error("no create used the pool")
	}
	for _, name := range names[:5] {
		if out := execIn(t, n, name, "cat /workspace/me").Stdout; out != name+"\n" {
			t.Errorf("%s: workspace holds %q", name, out)
		}
	}
	t.Logf("%d of %d creates came from the pool", fromPool, count)
	if len(listSpaces(t, n)) != count {
		t.Errorf("list has %d spaces, want %d", len(listSpaces(t, n)), count)
	}
}

// TestPoolDestroyRightAfter: a pooled space can be paused, resumed and
// destroyed at once, and a stop/start keeps its host name.
func TestPoolDestroyRightAfter(t *testing.T) {
	t.Parallel()
	n := poolNode(t, 2)
	a := nodetest.Name(t, n.Engine, "pd")
	b := nodetest.Name(t, n.Engine, "pd2")
	createSpace(t, n, a, map[string]any{"template": "offline"})
	if res := n.Do(t, http.MethodDelete, "/api/spaces/"+a+"?removeVolume=true", nil); res.Status != http.StatusOK {
		t.Fatalf("destroy: %d %s", res.Status, res.Body)
	}
	createSpace(t, n, b, map[string]any{"template": "offline"})
	if !pooled(t, n, b) {
		t.Fatal("not from the pool")
	}
	for _, p := range []string{"/stop", "/start"} {
		if res := n.Do(t, http.MethodPost, "/api/spaces/"+b+p, nil); res.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", p, res.Status, res.Body)
		}
	}
	// A real stop (as after an engine restart): the start sets the host
	// name again.
	timeout := 0
	if _, err := n.Raw().ContainerStop(context.Background(), n.Engine.ContainerName(b), client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(execIn(t, n, b, "hostname; cat /etc/hostname").Stdout); got != b+"\n"+b {
		t.Errorf("after a stop and start: %q", got)
	}
}

// TestPoolCheckpointForkExport: a pooled space checkpoints, restores
// (keeping its host name), forks and exports like any other.
func TestPoolCheckpointForkExport(t *testing.T) {
	t.Parallel()
	n := poolNode(t, 1)
	name := nodetest.Name(t, n.Engine, "pck")
	fork := nodetest.Name(t, n.Engine, "pck-fork")
	createSpace(t, n, name, map[string]any{"template": "offline"})
	if !pooled(t, n, name) {
		t.Fatal("not from the pool")
	}
	execIn(t, n, name, "echo one > /workspace/f")
	if res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/checkpoints", map[string]any{"name": "c"}); res.Status != http.StatusCreated {
		t.Fatalf("checkpoint: %d %s", res.Status, res.Body)
	}
	execIn(t, n, name, "echo two > /workspace/f")
	if res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/checkpoints/c/restore?force=true", nil); res.Status != http.StatusOK {
		t.Fatalf("restore: %d %s", res.Status, res.Body)
	}
	if got := execIn(t, n, name, "cat /workspace/f; hostname").Stdout; got != "one\n"+name+"\n" {
		t.Errorf("after the restore: %q", got)
	}
	if res := n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": fork, "from": name + "@c"}); res.Status != http.StatusCreated {
		t.Fatalf("fork: %d %s", res.Status, res.Body)
	}
	if got := execIn(t, n, fork, "cat /workspace/f; hostname").Stdout; got != "one\n"+fork+"\n" {
		t.Errorf("fork: %q", got)
	}
	if res := n.Do(t, http.MethodGet, "/api/spaces/"+name+"/export", nil); res.Status != http.StatusOK || len(res.Body) == 0 {
		t.Fatalf("export: %d", res.Status)
	}
	if res := n.Do(t, http.MethodDelete, "/api/spaces/"+name+"?removeVolume=true", nil); res.Status != http.StatusOK {
		t.Fatalf("destroy: %d %s", res.Status, res.Body)
	}
	waitPoolFull(t, n)
	if v := poolVolumes(t, n); len(v) != 1 {
		t.Errorf("pool volumes: %v, want the member's only", v)
	}
}

// TestPoolHostnameNotSettable: a node that cannot set a claimed member's
// host name keeps no pool, and its creates are cold ones.
func TestPoolHostnameNotSettable(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{Namespace: randomNamespace("pl"), WarmPool: map[string]int{"offline": 1}, NoHostnameSet: true})
	name := nodetest.Name(t, n.Engine, "nohost")
	createSpace(t, n, name, map[string]any{"template": "offline"})
	if pooled(t, n, name) {
		t.Error("used the pool")
	}
	if got := strings.TrimSpace(execIn(t, n, name, "hostname").Stdout); got != name {
		t.Errorf("hostname %q", got)
	}
	if m := poolMembers(t, n); len(m) != 0 {
		t.Errorf("pool members made: %v", m)
	}
}

// TestPoolEngineGone: with the engine gone, a create on a node with a
// warm pool answers 503 (no 500, no hang), and the node still stops.
func TestPoolEngineGone(t *testing.T) {
	t.Parallel()
	proxy := nodetest.StartEngineProxy(t)
	ns := randomNamespace("pl")
	n := nodetest.Start(t, nodetest.Options{Namespace: ns, DockerHost: proxy.Host, CallTimeout: 2 * time.Second,
		WarmPool: map[string]int{"offline": 1}})
	// Cleaned up with an engine of its own: the node's is cut.
	t.Cleanup(func() {
		eng, err := engine.New(context.Background(), engine.Config{Namespace: ns})
		if err != nil {
			t.Error(err)
			return
		}
		defer eng.Close()
		if _, err := eng.PoolSweep(context.Background()); err != nil {
			t.Errorf("removing the pool: %v", err)
		}
	})
	waitPoolFull(t, n)
	proxy.Stop()
	name := "t-gone-" + ns // nothing to clean up: the create cannot make anything
	wantError(t, n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": name, "template": "offline"}),
		http.StatusServiceUnavailable, "Docker engine unavailable")
	n.Stop()
}

// TestPoolEgress: a space made from the pool of a template with a block
// list is held by it (the rules written when the member started), and a
// lan space beside it reaches the target.
func TestPoolEgress(t *testing.T) {
	t.Parallel()
	dir, ns := t.TempDir(), randomNamespace("pl")
	first := nodetest.Start(t, nodetest.Options{DataDir: dir, Namespace: ns})
	ip := startTarget(t, first)
	tpl := "name: poolblock\nnetwork:\n  mode: internet\n  blockCidrs: [\"" + ip + "/32\"]\n"
	if r := first.Do(t, "PUT", "/api/templates", map[string]string{"yaml": tpl}); r.Status != http.StatusOK {
		t.Fatalf("template = %d %s", r.Status, r.Body)
	}
	first.Stop()
	n := nodetest.Start(t, nodetest.Options{DataDir: dir, Namespace: ns, WarmPool: map[string]int{"poolblock": 1}})
	t.Cleanup(func() { assertNoPool(t, n) })
	waitPoolFull(t, n)
	blocked := nodetest.Name(t, n.Engine, "pblk")
	createSpace(t, n, blocked, map[string]any{"template": "poolblock"})
	if !pooled(t, n, blocked) {
		t.Fatal("not from the pool")
	}
	open := nodetest.Name(t, n.Engine, "popen")
	createSpace(t, n, open, map[string]any{"template": "lan", "memory": "128m"})
	if !reach(t, n, open, ip) {
		t.Fatal("a lan space cannot reach the target: the test itself is broken")
	}
	if reach(t, n, blocked, ip) {
		t.Fatal("the pooled space reached a blocked address")
	}
}
