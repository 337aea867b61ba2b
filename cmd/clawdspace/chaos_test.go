package main

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// The chaos tests kill a real node (a child process) with SIGKILL at random
// points of an operation, start it again on the same data folder and check
// the invariants of docs/ARCHITECTURE.md#crash-safety.
// CLAWDSPACE_CHAOS_ROUNDS sets the rounds per test (default 10).

func chaosRounds(t *testing.T) int {
	if v, err := strconv.Atoi(os.Getenv("CLAWDSPACE_CHAOS_ROUNDS")); err == nil && v > 0 {
		return v
	}
	return 10
}

// envFile is big enough that writing it takes a moment of the create.
var envFile = strings.Repeat("KEY=0123456789abcdef0123456789abcdef\n", 20000)

// inFlight sends a request (body a JSON string, or empty) in the
// background and ignores its outcome: a request the kill cuts off fails,
// and only the state afterwards counts. wait returns once it ended.
func inFlight(n *nodetest.ChildNode, method, path, body string) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, n.URL+path, rd)
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+nodetest.Key)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := n.HTTP.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	return wg.Wait
}

// timeIt returns how long f takes.
func timeIt(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// randomDelay is uniform in [0, max].
func randomDelay(max time.Duration) time.Duration {
	return time.Duration(rand.Int64N(int64(max) + 1))
}

func containerExists(t *testing.T, n *nodetest.ChildNode, space string) bool {
	t.Helper()
	_, err := n.Engine.Client().ContainerInspect(t.Context(), n.Engine.ContainerName(space), client.ContainerInspectOptions{})
	if err != nil && !cerrdefs.IsNotFound(err) {
		t.Fatalf("inspecting container of %s: %v", space, err)
	}
	return err == nil
}

func volumeExists(t *testing.T, n *nodetest.ChildNode, space string) bool {
	t.Helper()
	_, err := n.Engine.Client().VolumeInspect(t.Context(), n.Engine.VolumeName(space), client.VolumeInspectOptions{})
	if err != nil && !cerrdefs.IsNotFound(err) {
		t.Fatalf("inspecting volume of %s: %v", space, err)
	}
	return err == nil
}

func createBody(name string) string {
	return `{"name":"` + name + `","template":"offline","memory":"64m","cpus":0.5,"envFileText":` + strconv.Quote(envFile) + `}`
}

// wantComplete checks that a space exists whole: its env file is there in
// full and exec works.
func wantComplete(t *testing.T, n *nodetest.ChildNode, name string) {
	t.Helper()
	r := n.Do(t, "POST", "/api/spaces/"+name+"/exec", map[string]any{"command": "wc -c < /workspace/.env"})
	if r.Status != http.StatusOK {
		t.Fatalf("%s exists but exec = %d %s", name, r.Status, r.Body)
	}
	if got := strings.TrimSpace(r.Map(t)["stdout"].(string)); got != strconv.Itoa(len(envFile)) {
		t.Fatalf("%s exists but its env file has %q bytes, want %d", name, got, len(envFile))
	}
	if !volumeExists(t, n, name) {
		t.Fatalf("%s exists without its volume", name)
	}
}

// wantAbsent checks that nothing of a space is left.
func wantAbsent(t *testing.T, n *nodetest.ChildNode, name string) {
	t.Helper()
	if r := n.Do(t, "GET", "/api/spaces/"+name, nil); r.Status != http.StatusNotFound {
		t.Fatalf("GET %s = %d %s, want 404", name, r.Status, r.Body)
	}
	if containerExists(t, n, name) {
		t.Fatalf("%s: the API says it does not exist, but its container does", name)
	}
	if volumeExists(t, n, name) {
		t.Fatalf("%s: the API says it does not exist, but its volume does", name)
	}
}

func recoveredCount(t *testing.T, n *nodetest.ChildNode, name string) int {
	t.Helper()
	r := n.Do(t, "GET", "/api/audit?type="+spaces.EventRecovered+"&space="+name, nil)
	var doc struct {
		Events []map[string]any `json:"events"`
	}
	r.JSON(t, &doc)
	return len(doc.Events)
}

// TestChaosCreate kills the node at random points of a create that writes
// an env file: after the restart the space exists complete or not at all,
// and a retried create succeeds.
func TestChaosCreate(t *testing.T) {
	n := nodetest.StartChildNode(t, nodetest.ChildConfig{})
	// How long a create takes here, right after a start as in the rounds.
	warm := nodetest.Name(t, n.Engine, "warm")
	d := timeIt(func() {
		if r := n.Do(t, "POST", "/api/spaces", createBody(warm)); r.Status != http.StatusCreated {
			t.Fatalf("create = %d %s", r.Status, r.Body)
		}
	})
	t.Logf("a create takes %v; killing within [0, %v]", d, d*5/4)
	var complete, absent, recovered int
	for round := range chaosRounds(t) {
		name := nodetest.Name(t, n.Engine, "cc"+strconv.Itoa(round))
		wait := inFlight(n, "POST", "/api/spaces", createBody(name))
		time.Sleep(randomDelay(d * 5 / 4))
		n.Kill()
		wait()
		n.Restart()
		recovered += recoveredCount(t, n, name)
		if r := n.Do(t, "GET", "/api/spaces/"+name, nil); r.Status == http.StatusOK {
			complete++
			wantComplete(t, n, name)
			continue
		}
		absent++
		wantAbsent(t, n, name)
		if r := n.Do(t, "POST", "/api/spaces", createBody(name)); r.Status != http.StatusCreated {
			t.Fatalf("round %d: retried create = %d %s", round, r.Status, r.Body)
		}
		wantComplete(t, n, name)
	}
	t.Logf("after the kill: %d complete, %d absent (%d undone by start-up recovery)", complete, absent, recovered)
}

// TestChaosDestroy kills the node at random points of a destroy with
// removeVolume: after the restart the space is whole or gone with its
// volume, and a retried destroy finishes it.
func TestChaosDestroy(t *testing.T) {
	n := nodetest.StartChildNode(t, nodetest.ChildConfig{})
	warm := nodetest.Name(t, n.Engine, "warm")
	if r := n.Do(t, "POST", "/api/spaces", createBody(warm)); r.Status != http.StatusCreated {
		t.Fatalf("create = %d %s", r.Status, r.Body)
	}
	d := timeIt(func() {
		if r := n.Do(t, "DELETE", "/api/spaces/"+warm+"?removeVolume=true", nil); r.Status != http.StatusOK {
			t.Fatalf("destroy = %d %s", r.Status, r.Body)
		}
	})
	t.Logf("a destroy takes %v; killing within [0, %v]", d, d*5/4)
	var whole, gone, recovered int
	for round := range chaosRounds(t) {
		name := nodetest.Name(t, n.Engine, "cd"+strconv.Itoa(round))
		if r := n.Do(t, "POST", "/api/spaces", createBody(name)); r.Status != http.StatusCreated {
			t.Fatalf("create = %d %s", r.Status, r.Body)
		}
		wait := inFlight(n, "DELETE", "/api/spaces/"+name+"?removeVolume=true", "")
		time.Sleep(randomDelay(d * 5 / 4))
		n.Kill()
		wait()
		n.Restart()
		recovered += recoveredCount(t, n, name)
		if r := n.Do(t, "GET", "/api/spaces/"+name, nil); r.Status == http.StatusOK {
			whole++
			wantComplete(t, n, name)
			if r := n.Do(t, "DELETE", "/api/spaces/"+name+"?removeVolume=true", nil); r.Status != http.StatusOK {
				t.Fatalf("round %d: retried destroy = %d %s", round, r.Status, r.Body)
			}
		} else {
			gone++
		}
		wantAbsent(t, n, name)
	}
	t.Logf("after the kill: %d whole, %d gone (%d finished by start-up recovery)", whole, gone, recovered)
}

// TestChaosExec kills the node while commands it started run (a plain
// one, a streamed one that left a background child, and one typed in a
// terminal): after the restart none of them runs any more.
func TestChaosExec(t *testing.T) {
	n := nodetest.StartChildNode(t, nodetest.ChildConfig{})
	name := nodetest.Name(t, n.Engine, "ce")
	if r := n.Do(t, "POST", "/api/spaces", map[string]any{"name": name, "template": "offline", "memory": "64m"}); r.Status != http.StatusCreated {
		t.Fatalf("create = %d %s", r.Status, r.Body)
	}
	// sleeps returns which of the test's sleeps run, sorted.
	want := []string{"sleep 300", "sleep 301", "sleep 302", "sleep 305"}
	sleeps := func() []string {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		ps, err := n.Engine.Top(ctx, name)
		if err != nil {
			t.Fatalf("listing processes: %v", err)
		}
		var out []string
		for _, p := range ps {
			if slices.Contains(want, strings.TrimSpace(p.Command)) {
				out = append(out, p.Command)
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	waits := []func(){
		inFlight(n, "POST", "/api/spaces/"+name+"/exec", `{"command":["sleep","300"]}`),
		inFlight(n, "POST", "/api/spaces/"+name+"/exec", `{"command":"sleep 301 & sleep 302","stream":true}`),
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.URL, "http")+"/api/spaces/"+name+"/terminal",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + nodetest.Key}}})
	if err != nil {
		t.Fatalf("opening a terminal: %v", err)
	}
	defer ws.CloseNow()
	go func() {
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"input","data":"sleep 305\n"}`)); err != nil {
		t.Fatalf("typing in the terminal: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !slices.Equal(sleeps(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the commands did not start: %q", sleeps())
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.Kill()
	for _, w := range waits {
		w()
	}
	if got := sleeps(); !slices.Equal(got, want) {
		t.Fatalf("after the kill, before the restart: %q, want %q still running", got, want)
	}
	n.Restart()
	if got := sleeps(); len(got) != 0 {
		t.Fatalf("after the restart still running: %q", got)
	}
	if got := recoveredCount(t, n, name); got != 1 {
		t.Errorf("space.recovered rows = %d, want 1", got)
	}
	// The space itself is fine.
	if r := n.Do(t, "POST", "/api/spaces/"+name+"/exec", map[string]any{"command": "echo ok"}); r.Status != http.StatusOK {
		t.Fatalf("exec after recovery = %d %s", r.Status, r.Body)
	}
}
