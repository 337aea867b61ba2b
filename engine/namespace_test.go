package engine_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/engine"
	"github.com/adam91holt/clawdspace/nodetest/testimage"
	"github.com/adam91holt/clawdspace/spaces"
)

// newEngine connects an engine of namespace ns to the real Docker engine.
func newEngine(t *testing.T, ns string) *engine.Engine {
	t.Helper()
	eng, err := engine.New(t.Context(), engine.Config{Namespace: ns})
	if err != nil {
		t.Fatalf("no Docker engine (run docker/ensure-engine.sh as root): %v", err)
	}
	t.Cleanup(func() { eng.Close() })
	testimage.Ensure(t, eng.Client())
	return eng
}

// uniqueName returns a space name no other test uses.
func uniqueName(base string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "t-" + base + "-" + hex.EncodeToString(b)
}

// cleanup removes, with the raw client, the container and volume of space
// name in each engine's namespace, so it does not rely on the code under test.
func cleanup(t *testing.T, name string, engines ...*engine.Engine) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, e := range engines {
			c := e.Client()
			if _, err := c.ContainerRemove(ctx, e.ContainerName(name), client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				t.Errorf("removing container %s: %v", e.ContainerName(name), err)
			}
			if _, err := c.VolumeRemove(ctx, e.VolumeName(name), client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				t.Errorf("removing volume %s: %v", e.VolumeName(name), err)
			}
		}
	})
}

func create(t *testing.T, e *engine.Engine, name string) spaces.Space {
	t.Helper()
	sp, err := e.Create(t.Context(), spaces.ContainerSpec{Name: name, Image: testimage.TestImage,
		MemoryBytes: 64 << 20, CPUs: 0.5, NetworkMode: spaces.NetworkNone, Template: "offline"})
	if err != nil {
		t.Fatalf("creating %s in namespace %q: %v", name, e.Namespace(), err)
	}
	return sp
}

func run(t *testing.T, e *engine.Engine, name, script string) string {
	t.Helper()
	var out bytes.Buffer
	code, err := e.Exec(t.Context(), name, spaces.ExecSpec{Cmd: []string{"sh", "-c", script}, Stdout: &out, Stderr: &out})
	if err != nil || code != 0 {
		t.Fatalf("exec %q in %s (namespace %q): code %d, err %v, output %q", script, name, e.Namespace(), code, err, out.String())
	}
	return strings.TrimSpace(out.String())
}

// listed returns how often name appears in e's list, and the ID of the last.
func listed(t *testing.T, e *engine.Engine, name string) (n int, id string) {
	t.Helper()
	all, err := e.List(t.Context())
	if err != nil {
		t.Fatalf("listing namespace %q: %v", e.Namespace(), err)
	}
	for _, sp := range all {
		if sp.Name == name {
			n, id = n+1, sp.ID
		}
	}
	return n, id
}

func TestNamespacesShareOneEngine(t *testing.T) {
	def, t1, t2 := newEngine(t, ""), newEngine(t, "t1"), newEngine(t, "t2")
	ctx := t.Context()
	name := uniqueName("ns")
	cleanup(t, name, def, t1, t2)

	byNS := map[string]*engine.Engine{"": def, "t1": t1, "t2": t2}
	ids := map[string]string{}
	for ns, e := range byNS {
		sp := create(t, e, name)
		if want := e.VolumeName(name); sp.Volume != want || !sp.VolumeCreated {
			t.Errorf("namespace %q: volume %q (created %v), want %q, new", ns, sp.Volume, sp.VolumeCreated, want)
		}
		ids[ns] = sp.ID
		run(t, e, name, "echo ns-"+ns+" > /workspace/who")
	}
	if ids[""] == ids["t1"] || ids["t1"] == ids["t2"] || ids[""] == ids["t2"] {
		t.Fatalf("namespaces share a container: %v", ids)
	}

	// The default namespace keeps the contract's names and no namespace
	// label; a namespaced one is labelled on container and volume.
	raw := def.Client()
	for ns, e := range byNS {
		wantCont, wantVol := "clawdspace-"+name, "clawdspace-vol-"+name
		if ns != "" {
			wantCont, wantVol = "clawdspace-"+ns+"."+name, "clawdspace-vol-"+ns+"."+name
		}
		c, err := raw.ContainerInspect(ctx, wantCont, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatalf("namespace %q: inspecting %s: %v", ns, wantCont, err)
		}
		if got, ok := c.Container.Config.Labels[spaces.LabelNamespace]; got != ns || !ok {
			t.Errorf("container %s: namespace label %q (present %v), want %q", wantCont, got, ok, ns)
		}
		v, err := raw.VolumeInspect(ctx, wantVol, client.VolumeInspectOptions{})
		if err != nil {
			t.Fatalf("namespace %q: inspecting volume %s: %v", ns, wantVol, err)
		}
		if got := v.Volume.Labels[spaces.LabelNamespace]; got != ns {
			t.Errorf("volume %s: namespace label %q, want %q", wantVol, got, ns)
		}
		if e.ContainerName(name) != wantCont || e.VolumeName(name) != wantVol {
			t.Errorf("namespace %q names %s, %s", ns, e.ContainerName(name), e.VolumeName(name))
		}
	}

	// Each sees only its own: list, get, exec (and so its own volume).
	for ns, e := range byNS {
		if n, id := listed(t, e, name); n != 1 || id != ids[ns] {
			t.Errorf("namespace %q lists %s %d times (id %s), want once with id %s", ns, name, n, id, ids[ns])
		}
		sp, err := e.Get(ctx, name)
		if err != nil || sp.ID != ids[ns] || sp.Volume != e.VolumeName(name) {
			t.Errorf("namespace %q: Get = %+v, %v; want id %s", ns, sp, err, ids[ns])
		}
		if got := run(t, e, name, "cat /workspace/who"); got != "ns-"+ns {
			t.Errorf("namespace %q reads %q from its workspace", ns, got)
		}
	}

	// Pausing and removing in one namespace leaves the others alone.
	if err := t1.Pause(ctx, name); err != nil {
		t.Fatalf("pausing in t1: %v", err)
	}
	for _, e := range []*engine.Engine{def, t2} {
		if sp, err := e.Get(ctx, name); err != nil || sp.Status != spaces.StatusRunning {
			t.Errorf("namespace %q after t1's pause: %+v, %v", e.Namespace(), sp.Status, err)
		}
	}
	if err := t1.Remove(ctx, name, true); err != nil {
		t.Fatalf("removing in t1: %v", err)
	}
	if _, err := t1.Get(ctx, name); !errors.Is(err, spaces.ErrNotFound) {
		t.Errorf("t1 Get after remove: %v, want not found", err)
	}
	if _, err := raw.VolumeInspect(ctx, t1.VolumeName(name), client.VolumeInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("t1's volume after remove: %v, want not found", err)
	}
	for _, e := range []*engine.Engine{def, t2} {
		if got := run(t, e, name, "cat /workspace/who"); got != "ns-"+e.Namespace() {
			t.Errorf("namespace %q after t1's remove reads %q", e.Namespace(), got)
		}
	}
	if err := t1.Remove(ctx, name, true); !errors.Is(err, spaces.ErrNotFound) {
		t.Errorf("second remove in t1: %v, want not found", err)
	}
	if n, _ := listed(t, def, name); n != 1 {
		t.Errorf("default lists %s %d times after t1's remove", name, n)
	}
}

func TestDefaultNamespaceIgnoresNamespaced(t *testing.T) {
	def, t2 := newEngine(t, ""), newEngine(t, "t2")
	ctx := t.Context()
	name := uniqueName("only-t2")
	cleanup(t, name, def, t2)
	sp := create(t, t2, name)

	if n, _ := listed(t, def, name); n != 0 {
		t.Errorf("default lists t2's space %s", name)
	}
	// By its name, and by a name that reaches t2's container exactly: the
	// label check refuses it either way.
	for _, n := range []string{name, "t2." + name} {
		if _, err := def.Get(ctx, n); !errors.Is(err, spaces.ErrNotFound) {
			t.Errorf("default Get(%q) = %v, want not found", n, err)
		}
		if _, err := def.Exec(ctx, n, spaces.ExecSpec{Cmd: []string{"true"}}); !errors.Is(err, spaces.ErrNotFound) {
			t.Errorf("default Exec(%q) = %v, want not found", n, err)
		}
		if err := def.Pause(ctx, n); !errors.Is(err, spaces.ErrNotFound) {
			t.Errorf("default Pause(%q) = %v, want not found", n, err)
		}
		if err := def.Remove(ctx, n, true); !errors.Is(err, spaces.ErrNotFound) {
			t.Errorf("default Remove(%q) = %v, want not found", n, err)
		}
	}
	got, err := t2.Get(ctx, name)
	if err != nil || got.ID != sp.ID || got.Status != spaces.StatusRunning {
		t.Fatalf("t2's space after the default's attempts: %+v, %v", got, err)
	}

	// With t2's container gone and its volume kept, the default can neither
	// remove that volume nor mount it into a space of its own.
	if err := t2.Remove(ctx, name, false); err != nil {
		t.Fatalf("removing t2's space, keeping its volume: %v", err)
	}
	if err := def.Remove(ctx, "t2."+name, true); !errors.Is(err, spaces.ErrNotFound) {
		t.Errorf("default Remove of t2's kept volume = %v, want not found", err)
	}
	if _, err := def.Create(ctx, spaces.ContainerSpec{Name: "t2." + name, Image: testimage.TestImage, MemoryBytes: 64 << 20, CPUs: 0.5,
		NetworkMode: spaces.NetworkNone}); !errors.Is(err, spaces.ErrInvalid) {
		t.Errorf("default Create on t2's volume = %v, want invalid", err)
	}
	if _, err := def.Client().VolumeInspect(ctx, t2.VolumeName(name), client.VolumeInspectOptions{}); err != nil {
		t.Errorf("t2's volume after the default's attempts: %v", err)
	}
}

// TestOlderNodeSpaceStaysDefault: a space made by the older node (no
// namespace label, no resource labels) is adopted by the default namespace
// and by no other.
func TestOlderNodeSpaceStaysDefault(t *testing.T) {
	def, t1 := newEngine(t, ""), newEngine(t, "t1")
	ctx := t.Context()
	name := uniqueName("old")
	cleanup(t, name, def, t1)
	raw := def.Client()
	cr, err := raw.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: spaces.ContainerPrefix + name,
		Config: &container.Config{Image: testimage.TestImage, Cmd: []string{"sleep", "infinity"},
			Labels: map[string]string{spaces.LabelKind: spaces.LabelKindSpace, spaces.LabelSpace: name}},
	})
	if err != nil {
		t.Fatalf("creating an older node's space: %v", err)
	}
	if _, err := raw.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("starting it: %v", err)
	}
	if n, _ := listed(t, def, name); n != 1 {
		t.Errorf("default lists the older node's space %d times, want once", n)
	}
	if sp, err := def.Get(ctx, name); err != nil || sp.Volume != spaces.VolumePrefix+name {
		t.Errorf("default Get = %+v, %v", sp, err)
	}
	if n, _ := listed(t, t1, name); n != 0 {
		t.Errorf("t1 lists the older node's space")
	}
	if _, err := t1.Get(ctx, name); !errors.Is(err, spaces.ErrNotFound) {
		t.Errorf("t1 Get = %v, want not found", err)
	}
}

func TestInvalidNamespaceRefused(t *testing.T) {
	for _, ns := range []string{"T1", "1a", "-a", "a_b", "a.b", "a b", strings.Repeat("a", 21)} {
		e, err := engine.New(t.Context(), engine.Config{Namespace: ns})
		if err == nil {
			e.Close()
			t.Errorf("engine.New accepted namespace %q", ns)
		} else if !strings.Contains(err.Error(), "namespace") {
			t.Errorf("engine.New(%q) error %q does not name the namespace", ns, err)
		}
	}
}
