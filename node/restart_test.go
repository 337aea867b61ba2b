package node_test

import (
	"net/http"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
)

func TestRestartKeepsSpacesAndActivity(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := nodetest.Start(t, nodetest.Options{DataDir: dir})
	a := newSpace(t, old, "rsa")
	b := newSpace(t, old, "rsb")
	execIn(t, old, a, "echo work > /workspace/w")
	if res := old.Do(t, http.MethodPost, "/api/spaces/"+b+"/stop", nil); res.Status != http.StatusOK {
		t.Fatalf("stop: %d %s", res.Status, res.Body)
	}
	before := listSpaces(t, old)
	old.Stop()

	// A space of the older TypeScript node: only the contract's labels, no
	// resource labels of this node.
	legacy := nodetest.Name(t, old.Engine, "legacy")
	createLegacySpace(t, old, legacy)

	n := nodetest.Start(t, nodetest.Options{DataDir: dir})
	after := listSpaces(t, n)
	for _, name := range []string{a, b} {
		was, now := before[name], after[name]
		if now.Name == "" {
			t.Errorf("%s is not listed after the restart", name)
			continue
		}
		if now.ID != was.ID {
			t.Errorf("%s: id %s, was %s", name, now.ID, was.ID)
		}
		if now.Status != was.Status {
			t.Errorf("%s: status %s, was %s", name, now.Status, was.Status)
		}
		if now.Memory != was.Memory || now.CPUs != was.CPUs {
			t.Errorf("%s: memory/cpus %d/%v, was %d/%v", name, now.Memory, now.CPUs, was.Memory, was.CPUs)
		}
		wasAct, nowAct := parseISO(t, "lastActivity", was.LastActivity), parseISO(t, "lastActivity", now.LastActivity)
		if nowAct.After(wasAct) {
			t.Errorf("%s: lastActivity %s after the restart, later than %s before: it was reset", name, now.LastActivity, was.LastActivity)
		}
		if got := getSpace(t, n, name).LastActivity; got != was.LastActivity {
			t.Errorf("%s: GET lastActivity %s, was %s", name, got, was.LastActivity)
		}
	}
	if out := execIn(t, n, a, "cat /workspace/w"); out.Stdout != "work\n" {
		t.Errorf("exec after restart = %+v", out)
	}

	sp, ok := after[legacy]
	if !ok {
		t.Fatalf("the legacy space %s is not listed: %v", legacy, after)
	}
	if sp.Memory != 314572800 {
		t.Errorf("legacy memory = %d, want 314572800", sp.Memory)
	}
	if sp.Status != "running" || !hex12.MatchString(sp.ID) {
		t.Errorf("legacy space = %+v, want running with an id", sp)
	}
	if sp.Volume.Name != "clawdspace-vol-"+legacy || sp.Volume.Mountpoint != "/workspace" {
		t.Errorf("legacy volume = %+v", sp.Volume)
	}
	if got := getSpace(t, n, legacy); got.Memory != 314572800 || got.ID != sp.ID {
		t.Errorf("GET legacy = %+v", got)
	}
	if out := execIn(t, n, legacy, "id -u; pwd"); out.Stdout != "1001\n/workspace\n" || out.ExitCode != 0 {
		t.Errorf("exec in the legacy space = %+v", out)
	}
	if res := n.Do(t, http.MethodPost, "/api/spaces/"+legacy+"/stop", nil); res.Status != http.StatusOK {
		t.Errorf("stop legacy: %d %s", res.Status, res.Body)
	}
	if res := n.Do(t, http.MethodPost, "/api/spaces/"+legacy+"/start", nil); res.Status != http.StatusOK {
		t.Errorf("start legacy: %d %s", res.Status, res.Body)
	}
}

// createLegacySpace makes a space as the older node did, through the raw client.
func createLegacySpace(t *testing.T, n *nodetest.Node, name string) {
	t.Helper()
	cname, vname := "clawdspace-"+name, "clawdspace-vol-"+name
	rawCleanup(t, n, cname, vname)
	ctx := t.Context()
	created, err := n.Raw().ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: cname,
		Config: &container.Config{
			Image:      nodetest.TestImage,
			User:       "1001:1001",
			WorkingDir: "/workspace",
			Cmd:        []string{"sleep", "infinity"},
			Hostname:   name,
			Labels: map[string]string{
				"clawdspace.kind":         "space",
				"clawdspace.space":        name,
				"clawdspace.volume":       vname,
				"clawdspace.template":     "default",
				"clawdspace.network.mode": "internet",
			},
		},
		HostConfig: &container.HostConfig{
			Mounts:    []mount.Mount{{Type: mount.TypeVolume, Source: vname, Target: "/workspace"}},
			Resources: container.Resources{Memory: 300 << 20, NanoCPUs: 1e9},
		},
	})
	if err != nil {
		t.Fatalf("creating the legacy container: %v", err)
	}
	if _, err := n.Raw().ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("starting the legacy container: %v", err)
	}
}
