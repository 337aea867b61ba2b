package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest/testimage"
	"github.com/adam91holt/clawdspace/spaces"
)

// TestAttachErr: a refused exec attach is explained by the container's
// state: running, the error as it was; stopped meanwhile, ErrNotRunning
// (the service resumes and retries); removed meanwhile, not found (the
// fuzz test met the SDK's bare "unable to upgrade to tcp, received 500"
// as a 500 when an exec raced a destroy).
func TestAttachErr(t *testing.T) {
	ctx := t.Context()
	e, err := New(ctx, Config{Namespace: "attach"})
	if err != nil {
		t.Fatalf("no Docker engine: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	testimage.Ensure(t, e.Client())
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "t-attach-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = e.c.ContainerRemove(ctx, e.ContainerName(name), client.ContainerRemoveOptions{Force: true})
		_, _ = e.c.VolumeRemove(ctx, e.VolumeName(name), client.VolumeRemoveOptions{Force: true})
	})
	sp, err := e.Create(ctx, spaces.ContainerSpec{Name: name, Image: testimage.TestImage,
		MemoryBytes: 64 << 20, CPUs: 0.5, NetworkMode: spaces.NetworkNone, Template: "offline"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.c.ContainerInspect(ctx, e.ContainerName(sp.Name), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id := c.Container.ID
	refused := errors.New("unable to upgrade to tcp, received 500")

	if got := e.attachErr(ctx, id, refused); got != refused {
		t.Errorf("running: %v, want the error as it was", got)
	}
	if _, err := e.c.ContainerStop(ctx, id, client.ContainerStopOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := e.attachErr(ctx, id, refused); !errors.Is(got, spaces.ErrNotRunning) {
		t.Errorf("stopped: %v, want ErrNotRunning", got)
	}
	if _, err := e.c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	got := e.attachErr(ctx, id, refused)
	if !cerrdefs.IsNotFound(got) {
		t.Errorf("removed: %v, want not found", got)
	}
	if mapped := mapErr(got, "running exec"); !errors.Is(mapped, spaces.ErrNotFound) {
		t.Errorf("removed, mapped: %v, want a missing space", mapped)
	}
}
