package main

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
)

// ckptState writes a state of a space (in /workspace, 8 MiB of it so that
// copies take a moment, and in the root filesystem) tagged v.
func ckptState(v string) string {
	return `echo ` + v + ` > /workspace/a && echo ` + v + ` > /home/sandbox/t && dd if=/dev/zero of=/workspace/big bs=1M count=8 2>/dev/null && echo ` + v + ` >> /workspace/big`
}

// readState returns the state tags of a space's files, which must agree.
func readState(t *testing.T, n *nodetest.ChildNode, name string) string {
	t.Helper()
	r := n.Do(t, "POST", "/api/spaces/"+name+"/exec", map[string]any{"command": "cat /workspace/a /home/sandbox/t; tail -c4 /workspace/big"})
	if r.Status != http.StatusOK {
		t.Fatalf("exec in %s = %d %s", name, r.Status, r.Body)
	}
	parts := strings.Fields(r.Map(t)["stdout"].(string))
	if len(parts) != 3 || parts[0] != parts[1] || parts[1] != parts[2] {
		t.Fatalf("%s holds a mixed state %.200q: half restored", name, parts)
	}
	return parts[0]
}

// wantOneRunning checks that the space is listed once, runs, and that no
// container a restore set aside is left.
func wantOneRunning(t *testing.T, n *nodetest.ChildNode, name string) {
	t.Helper()
	r := n.Do(t, "GET", "/api/spaces", nil)
	var doc struct {
		Spaces []struct{ Name, Status string } `json:"spaces"`
	}
	r.JSON(t, &doc)
	count := 0
	for _, s := range doc.Spaces {
		if s.Name == name {
			count++
			if s.Status != "running" {
				t.Fatalf("%s is %s after the restart, want running (a checkpoint must not leave it frozen)", name, s.Status)
			}
		}
	}
	if count != 1 {
		t.Fatalf("%s listed %d times", name, count)
	}
	if _, err := n.Engine.Client().ContainerInspect(t.Context(), n.Engine.ContainerName(name)+"..restore", client.ContainerInspectOptions{}); err == nil {
		t.Fatalf("%s: the container a restore set aside is still there", name)
	}
}

// TestChaosRestore kills the node at random points of a restore: after the
// restart the space runs once, in the old state or the checkpoint's
// (never a mix), and a retried restore brings the checkpoint's.
func TestChaosRestore(t *testing.T) {
	n := nodetest.StartChildNode(t, nodetest.ChildConfig{})
	name := nodetest.Name(t, n.Engine, "cr")
	if r := n.Do(t, "POST", "/api/spaces", createBody(name)); r.Status != http.StatusCreated {
		t.Fatalf("create = %d %s", r.Status, r.Body)
	}
	exec := func(cmd string) {
		t.Helper()
		if r := n.Do(t, "POST", "/api/spaces/"+name+"/exec", map[string]any{"command": cmd}); r.Status != http.StatusOK || r.Map(t)["exitCode"].(float64) != 0 {
			t.Fatalf("exec %q = %d %s", cmd, r.Status, r.Body)
		}
	}
	exec(ckptState("old"))
	if r := n.Do(t, "POST", "/api/spaces/"+name+"/checkpoints", map[string]any{"name": "c"}); r.Status != http.StatusCreated {
		t.Fatalf("checkpoint = %d %s", r.Status, r.Body)
	}
	restore := "/api/spaces/" + name + "/checkpoints/c/restore"
	exec(ckptState("new"))
	d := timeIt(func() {
		if r := n.Do(t, "POST", restore, nil); r.Status != http.StatusOK {
			t.Fatalf("restore = %d %s", r.Status, r.Body)
		}
	})
	t.Logf("a restore takes %v; killing within [0, %v]", d, d*5/4)
	states := map[string]int{}
	for round := range chaosRounds(t) {
		exec(ckptState("new"))
		wait := inFlight(n, "POST", restore, "")
		time.Sleep(randomDelay(d * 5 / 4))
		n.Kill()
		wait()
		n.Restart()
		wantOneRunning(t, n, name)
		states[readState(t, n, name)]++
		if r := n.Do(t, "POST", restore, nil); r.Status != http.StatusOK {
			t.Fatalf("round %d: retried restore = %d %s", round, r.Status, r.Body)
		}
		if got := readState(t, n, name); got != "old" {
			t.Fatalf("round %d: after the retried restore the state is %q", round, got)
		}
	}
	t.Logf("after the kill: %v (old: restored, new: not begun)", states)
}

// TestChaosCheckpoint kills the node at random points of a checkpoint:
// after the restart the space runs (not frozen), the checkpoint is listed
// whole or not at all, a listed one restores, and nothing half-made is
// left on the engine.
func TestChaosCheckpoint(t *testing.T) {
	n := nodetest.StartChildNode(t, nodetest.ChildConfig{Args: []string{"--max-checkpoints", "100"}})
	name := nodetest.Name(t, n.Engine, "ck")
	if r := n.Do(t, "POST", "/api/spaces", createBody(name)); r.Status != http.StatusCreated {
		t.Fatalf("create = %d %s", r.Status, r.Body)
	}
	if r := n.Do(t, "POST", "/api/spaces/"+name+"/exec", map[string]any{"command": ckptState("old")}); r.Status != http.StatusOK {
		t.Fatalf("exec = %d %s", r.Status, r.Body)
	}
	base := "/api/spaces/" + name + "/checkpoints"
	d := timeIt(func() {
		if r := n.Do(t, "POST", base, map[string]any{"name": "warm"}); r.Status != http.StatusCreated {
			t.Fatalf("checkpoint = %d %s", r.Status, r.Body)
		}
	})
	t.Logf("a checkpoint takes %v; killing within [0, %v]", d, d*5/4)
	var listed, absent int
	for round := range chaosRounds(t) {
		cp := "k" + strconv.Itoa(round)
		wait := inFlight(n, "POST", base, `{"name":"`+cp+`"}`)
		time.Sleep(randomDelay(d * 5 / 4))
		n.Kill()
		wait()
		n.Restart()
		wantOneRunning(t, n, name)
		var list struct {
			Checkpoints []struct{ Name string } `json:"checkpoints"`
		}
		n.Do(t, "GET", base, nil).JSON(t, &list)
		found := false
		for _, c := range list.Checkpoints {
			found = found || c.Name == cp
		}
		vols, err := n.Engine.Client().VolumeList(t.Context(), client.VolumeListOptions{Filters: make(client.Filters).Add("label", "clawdspace.kind=checkpoint").Add("label", "clawdspace.space="+name)})
		if err != nil {
			t.Fatal(err)
		}
		if len(vols.Items) != len(list.Checkpoints) {
			t.Fatalf("round %d: %d checkpoint volumes for %d checkpoints: a half-made one was left", round, len(vols.Items), len(list.Checkpoints))
		}
		if !found {
			absent++
			continue
		}
		listed++
		if r := n.Do(t, "POST", base+"/"+cp+"/restore", nil); r.Status != http.StatusOK {
			t.Fatalf("round %d: restore of %s = %d %s", round, cp, r.Status, r.Body)
		}
		if got := readState(t, n, name); got != "old" {
			t.Fatalf("round %d: restored state %q", round, got)
		}
	}
	t.Logf("after the kill: %d listed, %d absent", listed, absent)
}

// TestChaosImport kills the node at random points of an import: after the
// restart the space exists complete (its files there, exec works) or not
// at all (no container, no volume), and a retried import succeeds.
func TestChaosImport(t *testing.T) {
	n := nodetest.StartChildNode(t, nodetest.ChildConfig{})
	src := nodetest.Name(t, n.Engine, "ci")
	if r := n.Do(t, "POST", "/api/spaces", createBody(src)); r.Status != http.StatusCreated {
		t.Fatalf("create = %d %s", r.Status, r.Body)
	}
	if r := n.Do(t, "POST", "/api/spaces/"+src+"/exec", map[string]any{"command": ckptState("old")}); r.Status != http.StatusOK {
		t.Fatalf("exec = %d %s", r.Status, r.Body)
	}
	archive := n.Do(t, "GET", "/api/spaces/"+src+"/export", nil)
	if archive.Status != http.StatusOK {
		t.Fatalf("export = %d", archive.Status)
	}
	importAs := func(name string) nodetest.Response {
		return n.Do(t, "POST", "/api/spaces/import?name="+name, archive.Body, "Content-Type", "application/x-tar")
	}
	warm := nodetest.Name(t, n.Engine, "ciw")
	d := timeIt(func() {
		if r := importAs(warm); r.Status != http.StatusCreated {
			t.Fatalf("import = %d %s", r.Status, r.Body)
		}
	})
	t.Logf("an import of %d bytes takes %v; killing within [0, %v]", len(archive.Body), d, d*5/4)
	var complete, absent int
	for round := range chaosRounds(t) {
		name := nodetest.Name(t, n.Engine, "ci"+strconv.Itoa(round))
		wait := inFlightBytes(n, "/api/spaces/import?name="+name, archive.Body)
		time.Sleep(randomDelay(d * 5 / 4))
		n.Kill()
		wait()
		n.Restart()
		if r := n.Do(t, "GET", "/api/spaces/"+name, nil); r.Status == http.StatusOK {
			complete++
			if got := readState(t, n, name); got != "old" {
				t.Fatalf("round %d: imported state %q", round, got)
			}
			continue
		}
		absent++
		if containerExists(t, n, name) || volumeExists(t, n, name) {
			t.Fatalf("round %d: %s is not listed but its container or volume is left", round, name)
		}
		if r := importAs(name); r.Status != http.StatusCreated {
			t.Fatalf("round %d: retried import = %d %s", round, r.Status, r.Body)
		}
		if got := readState(t, n, name); got != "old" {
			t.Fatalf("round %d: retried import's state %q", round, got)
		}
	}
	t.Logf("after the kill: %d complete, %d absent", complete, absent)
}

// inFlightBytes posts body in the background and ignores the outcome.
func inFlightBytes(n *nodetest.ChildNode, path string, body []byte) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		req, err := http.NewRequest("POST", n.URL+path, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+nodetest.Key)
		req.Header.Set("Content-Type", "application/x-tar")
		if resp, err := n.HTTP.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	return wg.Wait
}
