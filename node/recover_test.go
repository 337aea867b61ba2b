package node_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// randomNamespace gives a test node an engine namespace of its own, since
// start-up recovery acts on every space of its namespace.
func randomNamespace(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// crashSpec is the spec of a small space made straight on the engine, as a
// create does before its set-up.
func crashSpec(name string) spaces.ContainerSpec {
	return spaces.ContainerSpec{Name: name, Image: nodetest.TestImage, MemoryBytes: 64 << 20, CPUs: 0.5,
		NetworkMode: spaces.NetworkNone, Template: "offline"}
}

// volumeOf reports whether the named space's workspace volume exists in
// the node's namespace.
func volumeOf(t *testing.T, n *nodetest.Node, space string) bool {
	t.Helper()
	_, err := n.Raw().VolumeInspect(t.Context(), n.Engine.VolumeName(space), client.VolumeInspectOptions{})
	return found(t, err)
}

func recoveredEvents(t *testing.T, n *nodetest.Node, space string) []spaces.Event {
	t.Helper()
	ev, err := n.Store.Events(t.Context(), spaces.AuditQuery{Space: space, Type: spaces.EventRecovered})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestRecoverInterruptedOperations leaves what a node killed in the middle
// of creates and destroys leaves (the intent row and the engine state of
// that moment), starts a node on the same data folder, and checks that
// start-up finished or undid each one, logged it in the audit, and that a
// retried create succeeds.
func TestRecoverInterruptedOperations(t *testing.T) {
	dir, ns := t.TempDir(), randomNamespace("rc")
	n1 := nodetest.Start(t, nodetest.Options{DataDir: dir, Namespace: ns})
	ctx := t.Context()
	eng := n1.Engine
	begin := func(in spaces.Intent) {
		t.Helper()
		in.NodeRun = "1.1"
		if in.Kind == spaces.IntentCreate {
			in.Image = nodetest.TestImage
		}
		if in.Created.IsZero() {
			in.Created = time.Now()
		}
		if err := n1.Store.BeginIntent(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	makeSpace := func(name string) {
		t.Helper()
		if _, err := eng.Create(ctx, crashSpec(name)); err != nil {
			t.Fatalf("making %s: %v", name, err)
		}
	}

	// Killed after the container was made, before the env file.
	halfMade := nodetest.Name(t, eng, "half")
	begin(spaces.Intent{Space: halfMade, Kind: spaces.IntentCreate})
	makeSpace(halfMade)

	// The same, on the volume an earlier space of that name left.
	kept := nodetest.Name(t, eng, "kept")
	createSpace(t, n1, kept, map[string]any{"template": "offline"})
	execIn(t, n1, kept, "echo old > /workspace/old.txt")
	if r := n1.Do(t, "DELETE", "/api/spaces/"+kept, nil); r.Status != http.StatusOK {
		t.Fatalf("destroy keeping the volume = %d %s", r.Status, r.Body)
	}
	begin(spaces.Intent{Space: kept, Kind: spaces.IntentCreate, VolumeExisted: true})
	makeSpace(kept)

	// Killed after the intent, before the engine made anything.
	nothing := nodetest.Name(t, eng, "nothing")
	begin(spaces.Intent{Space: nothing, Kind: spaces.IntentCreate})

	// A recovery of such a create, itself killed while it held the name
	// with its placeholder container.
	held := nodetest.Name(t, eng, "held")
	begin(spaces.Intent{Space: held, Kind: spaces.IntentCreate})
	ph, err := n1.Raw().ContainerCreate(ctx, client.ContainerCreateOptions{Name: eng.ContainerName(held), Config: &container.Config{
		Image: nodetest.TestImage, Cmd: []string{"true"}, Labels: map[string]string{spaces.LabelKind: "recovery-placeholder"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = n1.Raw().ContainerRemove(context.Background(), ph.ID, client.ContainerRemoveOptions{Force: true})
	})

	// A create that found the name taken (its 409 never sent): the older
	// space is not the create's and stays.
	older := nodetest.Name(t, eng, "older")
	createSpace(t, n1, older, map[string]any{"template": "offline"})
	begin(spaces.Intent{Space: older, Kind: spaces.IntentCreate, Created: time.Now().Add(time.Minute)})

	// Killed between the container's removal and the volume's.
	destroyed := nodetest.Name(t, eng, "destroyed")
	createSpace(t, n1, destroyed, map[string]any{"template": "offline"})
	begin(spaces.Intent{Space: destroyed, Kind: spaces.IntentDestroy, RemoveVolume: true})
	if _, err := n1.Raw().ContainerRemove(ctx, eng.ContainerName(destroyed), client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}

	// Killed before the destroy touched the engine.
	untouched := nodetest.Name(t, eng, "untouched")
	createSpace(t, n1, untouched, map[string]any{"template": "offline"})
	begin(spaces.Intent{Space: untouched, Kind: spaces.IntentDestroy, RemoveVolume: true})
	n1.Stop()

	n2 := nodetest.Start(t, nodetest.Options{DataDir: dir, Namespace: ns})
	tests := []struct {
		name        string
		space       string
		wantSpace   bool
		wantVolume  bool
		wantAudited string // text of the audit row's "done"; empty: no row
	}{
		{"half-made create", halfMade, false, false, "removed the half-made space and its volume"},
		{"create on a kept volume", kept, false, true, "kept the volume"},
		{"create that made nothing", nothing, false, false, "made nothing"},
		{"create whose recovery was interrupted", held, false, false, "made nothing"},
		{"create that found an older space", older, true, true, "older than the interrupted create"},
		{"destroy between container and volume", destroyed, false, false, "finished the destroy"},
		{"destroy that did nothing yet", untouched, false, false, "finished the destroy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := n2.Do(t, "GET", "/api/spaces/"+tt.space, nil)
			if got := r.Status == http.StatusOK; got != tt.wantSpace {
				t.Errorf("space exists = %v (status %d), want %v", got, r.Status, tt.wantSpace)
			}
			if got := volumeOf(t, n2, tt.space); got != tt.wantVolume {
				t.Errorf("volume exists = %v, want %v", got, tt.wantVolume)
			}
			ev := recoveredEvents(t, n2, tt.space)
			if len(ev) != 1 || ev[0].Actor != spaces.ActorNode || !strings.Contains(ev[0].Meta["done"].(string), tt.wantAudited) {
				t.Errorf("space.recovered rows = %+v, want one by node saying %q", ev, tt.wantAudited)
			}
		})
	}
	if in, err := n2.Store.Intents(ctx); err != nil || len(in) != 0 {
		t.Errorf("intents left after recovery: %+v, %v", in, err)
	}

	// Retried creates succeed, with their env file; the kept volume's
	// content is there again.
	if _, err := n2.Raw().ContainerInspect(ctx, ph.ID, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("the placeholder container is still there: %v", err)
	}
	for _, name := range []string{halfMade, kept, nothing, held} {
		createSpace(t, n2, name, map[string]any{"template": "offline", "envFileText": "A=1\n"})
		if out := execIn(t, n2, name, "cat /workspace/.env"); out.Stdout != "A=1\n" {
			t.Errorf("%s: env file = %q", name, out.Stdout)
		}
	}
	if out := execIn(t, n2, kept, "cat /workspace/old.txt"); out.Stdout != "old\n" {
		t.Errorf("the kept volume lost its content: %q", out.Stdout)
	}
}

// TestDestroyFinishesLeftoverVolume: a space whose container is gone but
// whose volume remains (an older node's crash) is destroyed with
// removeVolume: 200 and the volume removed, not 404 with the volume left.
func TestDestroyFinishesLeftoverVolume(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := nodetest.Name(t, n.Engine, "leftover")
	createSpace(t, n, name, map[string]any{"template": "offline"})
	if _, err := n.Raw().ContainerRemove(t.Context(), n.Engine.ContainerName(name), client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	wantError(t, n.Do(t, "DELETE", "/api/spaces/"+name, nil), http.StatusNotFound, "Space not found")
	if r := n.Do(t, "DELETE", "/api/spaces/"+name+"?removeVolume=true", nil); r.Status != http.StatusOK {
		t.Fatalf("destroy with removeVolume = %d %s", r.Status, r.Body)
	}
	if volumeOf(t, n, name) {
		t.Error("the volume is still there")
	}
	wantError(t, n.Do(t, "DELETE", "/api/spaces/"+name+"?removeVolume=true", nil), http.StatusNotFound, "Space not found")
}

// TestRecoverKillsStrayCommands starts commands in a space as a node run
// that is gone would have (its run marker in their environment), as this
// process's live run, and without a marker; a node starting on the
// namespace kills the first kind only, with what they started, and audits
// it.
func TestRecoverKillsStrayCommands(t *testing.T) {
	ns := randomNamespace("rs")
	n1 := nodetest.Start(t, nodetest.Options{Namespace: ns})
	name := nodetest.Name(t, n1.Engine, "strays")
	createSpace(t, n1, name, map[string]any{"template": "offline"})
	ctx := t.Context()
	id := n1.Engine.ContainerName(name)
	start := func(marker string, cmd ...string) {
		t.Helper()
		var env []string
		if marker != "" {
			env = []string{spaces.NodeRunEnv + "=" + marker}
		}
		cr, err := n1.Raw().ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: cmd, Env: env})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n1.Raw().ExecStart(ctx, cr.ID, client.ExecStartOptions{Detach: true}); err != nil {
			t.Fatal(err)
		}
	}
	// A dead run: a PID above any pid_max.
	start("2147483646.5", "sh", "-c", "sleep 301 & sleep 302")
	start(n1.Engine.Run(), "sleep", "303")
	start("", "sleep", "304")
	ps := func() string {
		out := execIn(t, n1, name, "ps -o args")
		return out.Stdout
	}
	deadline := time.Now().Add(30 * time.Second)
	for !(strings.Contains(ps(), "sleep 302") && strings.Contains(ps(), "sleep 303") && strings.Contains(ps(), "sleep 304")) {
		if time.Now().After(deadline) {
			t.Fatalf("the commands did not start:\n%s", ps())
		}
		time.Sleep(50 * time.Millisecond)
	}

	n2 := nodetest.Start(t, nodetest.Options{Namespace: ns})
	got := ps()
	for _, gone := range []string{"sleep 301", "sleep 302"} {
		if strings.Contains(got, gone) {
			t.Errorf("%s of a dead run still runs:\n%s", gone, got)
		}
	}
	for _, live := range []string{"sleep 303", "sleep 304"} {
		if !strings.Contains(got, live) {
			t.Errorf("%s was killed, but its run is alive or it has no marker:\n%s", live, got)
		}
	}
	ev := recoveredEvents(t, n2, name)
	if len(ev) != 1 || ev[0].Meta["operation"] != "exec" || ev[0].Meta["nodeRun"] != "2147483646.5" {
		t.Errorf("space.recovered rows = %+v, want one for the stray exec", ev)
	}
	// The node's own execs carry its live run.
	if out := execIn(t, n2, name, "echo $"+spaces.NodeRunEnv); strings.TrimSpace(out.Stdout) != n2.Engine.Run() {
		t.Errorf("exec's %s = %q, want %q", spaces.NodeRunEnv, out.Stdout, n2.Engine.Run())
	}
}
