package main

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// poolState lists the node's unclaimed pool members (by state) and its
// pool volumes.
func poolState(t *testing.T, n *nodetest.ChildNode) (members []container.ContainerState, volumes []string) {
	t.Helper()
	cs, err := n.Engine.Client().ContainerList(t.Context(), client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("name", n.Engine.ContainerName("_pool."))})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs.Items {
		members = append(members, c.State)
	}
	vs, err := n.Engine.Client().VolumeList(t.Context(), client.VolumeListOptions{
		Filters: make(client.Filters).Add("name", n.Engine.VolumeName("_pool."))})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs.Items {
		volumes = append(volumes, v.Name)
	}
	return members, volumes
}

// waitPoolReady waits until the node has want paused members and nothing
// else in its pool.
func waitPoolReady(t *testing.T, n *nodetest.ChildNode, want int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		m, _ := poolState(t, n)
		paused := 0
		for _, s := range m {
			if s == container.StatePaused {
				paused++
			}
		}
		if paused == want && len(m) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pool did not fill: %v", m)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantCompletePooled is wantComplete for a space whose volume may be a
// pool volume (its label names it).
func wantCompletePooled(t *testing.T, n *nodetest.ChildNode, name string) {
	t.Helper()
	r := n.Do(t, "POST", "/api/spaces/"+name+"/exec", map[string]any{"command": "wc -c < /workspace/.env"})
	if r.Status != http.StatusOK {
		t.Fatalf("%s exists but exec = %d %s", name, r.Status, r.Body)
	}
	if got := strings.TrimSpace(r.Map(t)["stdout"].(string)); got != strconv.Itoa(len(envFile)) {
		t.Fatalf("%s exists but its env file has %q bytes, want %d", name, got, len(envFile))
	}
	res, err := n.Engine.Client().ContainerInspect(t.Context(), n.Engine.ContainerName(name), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Engine.Client().VolumeInspect(t.Context(), res.Container.Config.Labels[spaces.LabelVolume], client.VolumeInspectOptions{}); err != nil {
		t.Fatalf("%s exists without its volume: %v", name, err)
	}
}

func poolCreateBody(name string) string {
	return `{"name":"` + name + `","template":"offline","envFileText":` + strconv.Quote(envFile) + `}`
}

// TestChaosPoolClaim kills the node at random points of a create from the
// warm pool: after the restart the space exists complete (with its host
// name) or not at all, each pool volume belongs to a member or a space,
// and the pool is full again. A graceful stop drains the pool.
func TestChaosPoolClaim(t *testing.T) {
	n := nodetest.StartChildNode(t, nodetest.ChildConfig{Args: []string{"--warm-pool", "offline=1"}})
	t.Cleanup(func() {
		// A test that fails leaves the node killed, its pool undrained.
		n.Kill()
		if _, err := n.Engine.PoolSweep(context.Background()); err != nil {
			t.Errorf("removing the pool: %v", err)
		}
	})
	waitPoolReady(t, n, 1)
	warm := nodetest.Name(t, n.Engine, "warm")
	d := timeIt(func() {
		if r := n.Do(t, "POST", "/api/spaces", poolCreateBody(warm)); r.Status != http.StatusCreated {
			t.Fatalf("create = %d %s", r.Status, r.Body)
		}
	})
	t.Logf("a pooled create takes %v; killing within [0, %v]", d, d*5/4)
	var spacesNow []string
	spacesNow = append(spacesNow, warm)
	var complete, absent int
	for round := range chaosRounds(t) {
		waitPoolReady(t, n, 1)
		name := nodetest.Name(t, n.Engine, "cp"+strconv.Itoa(round))
		wait := inFlight(n, "POST", "/api/spaces", poolCreateBody(name))
		time.Sleep(randomDelay(d * 5 / 4))
		n.Kill()
		wait()
		n.Restart()
		if r := n.Do(t, "GET", "/api/spaces/"+name, nil); r.Status == http.StatusOK {
			complete++
			wantCompletePooled(t, n, name)
			r := n.Do(t, "POST", "/api/spaces/"+name+"/exec", map[string]any{"command": "hostname"})
			if got := strings.TrimSpace(r.Map(t)["stdout"].(string)); got != name {
				t.Fatalf("round %d: host name %q", round, got)
			}
			spacesNow = append(spacesNow, name)
		} else {
			absent++
			wantAbsent(t, n, name)
		}
		waitPoolReady(t, n, 1)
		// Every pool volume is the member's or a space's.
		_, vols := poolState(t, n)
		used := 1
		for _, s := range spacesNow {
			res, err := n.Engine.Client().ContainerInspect(t.Context(), n.Engine.ContainerName(s), client.ContainerInspectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(res.Container.Config.Labels[spaces.LabelVolume], "_pool.") {
				used++
			}
		}
		if len(vols) != used {
			t.Fatalf("round %d: %d pool volumes, %d in use: %v", round, len(vols), used, vols)
		}
	}
	t.Logf("after the kill: %d complete, %d absent", complete, absent)
	n.Stop()
	if m, _ := poolState(t, n); len(m) != 0 {
		t.Fatalf("a graceful stop left pool members: %v", m)
	}
}
