package node_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
)

func TestConcurrentCreatesOfOneName(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	tests := []struct {
		name    string
		callers int
	}{
		{name: "two", callers: 2},
		{name: "five", callers: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := nodetest.Name(t, n.Engine, "race")
			statuses := make([]int, tt.callers)
			bodies := make([]string, tt.callers)
			var wg sync.WaitGroup
			for i := range tt.callers {
				wg.Go(func() {
					res := n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": name, "memory": "64m"})
					statuses[i], bodies[i] = res.Status, string(res.Body)
				})
			}
			wg.Wait()
			created, conflicts := 0, 0
			for i, s := range statuses {
				switch s {
				case http.StatusCreated:
					created++
				case http.StatusConflict:
					conflicts++
					if bodies[i] != "{\"error\":\"Space already exists\"}\n" {
						t.Errorf("409 body = %q", bodies[i])
					}
				default:
					t.Errorf("status %d, body %s", s, bodies[i])
				}
			}
			if created != 1 || conflicts != tt.callers-1 {
				t.Errorf("got %d created and %d conflicts, want 1 and %d (statuses %v)", created, conflicts, tt.callers-1, statuses)
			}
			res, err := n.Raw().ContainerList(t.Context(), client.ContainerListOptions{
				All:     true,
				Filters: make(client.Filters).Add("label", "clawdspace.space="+name),
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Items) != 1 {
				t.Errorf("%d containers for %s, want 1", len(res.Items), name)
			}
			if out := execIn(t, n, name, "echo one"); out.Stdout != "one\n" {
				t.Errorf("exec in the winner = %+v", out)
			}
		})
	}
}

func TestConcurrentExec(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "cexec")
	const callers = 10
	outs := make([]nodetest.Response, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			cmd := fmt.Sprintf("echo %d > /workspace/f%d && cat /workspace/f%d", i, i, i)
			outs[i] = n.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", map[string]any{"command": cmd})
		})
	}
	wg.Wait()
	for i, res := range outs {
		if res.Status != http.StatusOK {
			t.Errorf("exec %d: status %d, body %s", i, res.Status, res.Body)
			continue
		}
		var out execDoc
		res.JSON(t, &out)
		if want := fmt.Sprintf("%d\n", i); out.Stdout != want || out.ExitCode != 0 {
			t.Errorf("exec %d = %+v, want stdout %q", i, out, want)
		}
	}
}

// TestConcurrentExecOnPausedSpace checks that many callers resuming one
// paused space at once all get their output.
func TestConcurrentExecOnPausedSpace(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "cpause")
	if res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/stop", nil); res.Status != http.StatusOK {
		t.Fatalf("stop: %d %s", res.Status, res.Body)
	}
	const callers = 10
	outs := make([]nodetest.Response, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			outs[i] = n.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", map[string]any{"command": []string{"echo", fmt.Sprint(i)}})
		})
	}
	wg.Wait()
	for i, res := range outs {
		if res.Status != http.StatusOK {
			t.Errorf("exec %d: status %d, body %s", i, res.Status, res.Body)
		}
	}
	if got := getSpace(t, n, name).Status; got != "running" {
		t.Errorf("status = %q, want running", got)
	}
}

func TestCreateRacingDestroy(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	for round := range 3 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			name := nodetest.Name(t, n.Engine, "cd")
			var create, destroy nodetest.Response
			var wg sync.WaitGroup
			wg.Go(func() {
				create = n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": name, "memory": "64m"})
			})
			wg.Go(func() {
				destroy = n.Do(t, http.MethodDelete, "/api/spaces/"+name+"?removeVolume=true", nil)
			})
			wg.Wait()
			if create.Status != http.StatusCreated {
				t.Fatalf("create: status %d, body %s", create.Status, create.Body)
			}
			if destroy.Status != http.StatusOK && destroy.Status != http.StatusNotFound {
				t.Fatalf("destroy: status %d, body %s (want 200 or 404, never 5xx)", destroy.Status, destroy.Body)
			}
			wantConsistent(t, n, name)
		})
	}

	// Destroy racing a create of an existing space.
	name := newSpace(t, n, "cd2")
	var create, destroy nodetest.Response
	var wg sync.WaitGroup
	wg.Go(func() {
		destroy = n.Do(t, http.MethodDelete, "/api/spaces/"+name, nil)
	})
	wg.Go(func() {
		create = n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": name, "memory": "64m"})
	})
	wg.Wait()
	if destroy.Status != http.StatusOK {
		t.Errorf("destroy: status %d, body %s", destroy.Status, destroy.Body)
	}
	if create.Status != http.StatusCreated && create.Status != http.StatusConflict {
		t.Errorf("create: status %d, body %s (want 201 or 409)", create.Status, create.Body)
	}
	wantConsistent(t, n, name)
}

// wantConsistent checks that a space either exists and works, with its
// volume, or does not exist at all.
func wantConsistent(t *testing.T, n *nodetest.Node, name string) {
	t.Helper()
	res := n.Do(t, http.MethodGet, "/api/spaces/"+name, nil)
	switch res.Status {
	case http.StatusOK:
		if !containerExists(t, n, name) || !volumeExists(t, n, name) {
			t.Errorf("space %s is listed but its container or volume is missing", name)
		}
		if out := execIn(t, n, name, "echo alive && touch /workspace/x"); out.Stdout != "alive\n" || out.ExitCode != 0 {
			t.Errorf("the surviving space does not work: %+v", out)
		}
	case http.StatusNotFound:
		if containerExists(t, n, name) {
			t.Errorf("GET says 404 but container clawdspace-%s exists", name)
		}
	default:
		t.Errorf("GET: status %d, body %s", res.Status, res.Body)
	}
}
