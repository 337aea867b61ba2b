package engine_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/spaces"
)

// state of the files a checkpoint test changes: one in /workspace, one in
// the root filesystem, a symlink and a folder's mode.
const (
	writeState = `echo v1 > /workspace/a.txt && mkdir -p /workspace/d && chmod 700 /workspace/d && echo in > /workspace/d/f &&
ln -s ../a.txt /workspace/d/link && echo tool-v1 > /home/sandbox/tool`
	changeState = `echo v2 > /workspace/a.txt && rm -r /workspace/d && echo extra > /workspace/new && echo tool-v2 > /home/sandbox/tool`
	readState   = `cat /workspace/a.txt /workspace/d/f /workspace/d/link /home/sandbox/tool; stat -c %a /workspace/d; ls /workspace`
	wantState   = "v1\nin\nv1\ntool-v1\n700\na.txt\nd"
)

func TestCheckpointRestoreFork(t *testing.T) {
	e := newEngine(t, "ckpt")
	ctx := t.Context()
	name, fork := uniqueName("ck"), uniqueName("fk")
	cleanup(t, name, e)
	cleanup(t, fork, e)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, n := range []string{name, fork} {
			if err := e.Remove(cctx, n, true); err != nil && !errors.Is(err, spaces.ErrNotFound) {
				t.Errorf("removing %s with its checkpoints: %v", n, err)
			}
		}
	})
	create(t, e, name)
	run(t, e, name, writeState)

	taken, err := e.Checkpoint(ctx, name, "one")
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if taken.Frozen <= 0 || taken.WorkspaceBytes == 0 || taken.RootfsBytes == 0 || taken.Image == "" || taken.Template != "offline" {
		t.Errorf("checkpoint %+v: want a frozen time, sizes, the image and template", taken)
	}
	if sp, _ := e.Get(ctx, name); sp.Status != spaces.StatusRunning {
		t.Errorf("space after checkpoint is %s, want running", sp.Status)
	}
	if _, err := e.Checkpoint(ctx, name, "one"); !errors.Is(err, spaces.ErrExists) {
		t.Errorf("second checkpoint of the same name: %v, want ErrExists", err)
	}
	list, err := e.Checkpoints(ctx, name)
	if err != nil || len(list) != 1 || list[0].Name != "one" || list[0].WorkspaceBytes != taken.WorkspaceBytes {
		t.Fatalf("checkpoints = %+v, %v; want one", list, err)
	}

	run(t, e, name, changeState)
	if err := e.Restore(ctx, name, "one", spaces.StatusRunning); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := run(t, e, name, readState); got != wantState {
		t.Errorf("after restore:\n%s\nwant\n%s", got, wantState)
	}
	sp, err := e.Get(ctx, name)
	if err != nil || sp.Status != spaces.StatusRunning || sp.Image == "" || sp.Template != "offline" || sp.Volume != e.VolumeName(name) {
		t.Errorf("restored space %+v, %v: want running, same image, template and volume", sp, err)
	}
	if n, _ := listed(t, e, name); n != 1 {
		t.Errorf("restored space listed %d times", n)
	}

	// A fork from the checkpoint is independent of its source.
	if _, err := e.Fork(ctx, name, "one", fork, nil); err != nil {
		t.Fatalf("fork: %v", err)
	}
	if got := run(t, e, fork, readState); got != wantState {
		t.Errorf("fork:\n%s\nwant\n%s", got, wantState)
	}
	run(t, e, fork, changeState)
	if got := run(t, e, name, readState); got != wantState {
		t.Errorf("source after the fork changed:\n%s", got)
	}
	if got := run(t, e, fork, "hostname"); got != fork {
		t.Errorf("fork's hostname %q", got)
	}

	// A checkpoint used by a restored space and a fork can be deleted.
	if err := e.DeleteCheckpoint(ctx, name, "one"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if list, _ := e.Checkpoints(ctx, name); len(list) != 0 {
		t.Errorf("checkpoints after delete: %+v", list)
	}
	if err := e.DeleteCheckpoint(ctx, name, "one"); !errors.Is(err, spaces.ErrNotFound) {
		t.Errorf("deleting it again: %v, want ErrNotFound", err)
	}
	if got := run(t, e, fork, "cat /home/sandbox/tool"); got != "tool-v2" {
		t.Errorf("fork after the checkpoint's delete: %q", got)
	}
}

func TestCheckpointOfPausedSpaceKeepsItPaused(t *testing.T) {
	e := newEngine(t, "ckpt")
	ctx := t.Context()
	name := uniqueName("ckp")
	cleanup(t, name, e)
	t.Cleanup(func() { _ = e.Remove(context.Background(), name, true) })
	create(t, e, name)
	run(t, e, name, writeState)
	if err := e.Pause(ctx, name); err != nil {
		t.Fatal(err)
	}
	taken, err := e.Checkpoint(ctx, name, "p")
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if taken.Frozen != 0 {
		t.Errorf("frozen %v for a space that was paused already", taken.Frozen)
	}
	if sp, _ := e.Get(ctx, name); sp.Status != spaces.StatusPaused {
		t.Errorf("status %s after checkpoint, want paused", sp.Status)
	}
	if err := e.Restore(ctx, name, "p", spaces.StatusPaused); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if sp, _ := e.Get(ctx, name); sp.Status != spaces.StatusPaused {
		t.Errorf("status %s after restore, want paused", sp.Status)
	}
	if err := e.Resume(ctx, name); err != nil {
		t.Fatal(err)
	}
	if got := run(t, e, name, readState); got != wantState {
		t.Errorf("after restore:\n%s", got)
	}
	// Removing the space with its volume removes its checkpoints.
	if err := e.Remove(ctx, name, true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client().ImageInspect(ctx, "clawdspace-checkpoint-ckpt:"+name+".p"); !cerrdefs.IsNotFound(err) {
		t.Errorf("checkpoint image after the space's removal: %v", err)
	}
}

// TestRestoreFinishesAfterCrash stops a restore after it set the old
// container aside (as a node killed there would) and checks that calling
// Restore again finishes it, and that the set-aside container is never
// listed.
func TestRestoreFinishesAfterCrash(t *testing.T) {
	e := newEngine(t, "ckpt")
	ctx := t.Context()
	name := uniqueName("ckr")
	cleanup(t, name, e)
	t.Cleanup(func() {
		_, _ = e.Client().ContainerRemove(context.Background(), e.ContainerName(name)+"..restore", client.ContainerRemoveOptions{Force: true})
		_ = e.Remove(context.Background(), name, true)
	})
	create(t, e, name)
	run(t, e, name, writeState)
	if _, err := e.Checkpoint(ctx, name, "c"); err != nil {
		t.Fatal(err)
	}
	run(t, e, name, changeState)
	// What a restore does first, then the node dies.
	c := e.Client()
	if _, err := c.ContainerKill(ctx, e.ContainerName(name), client.ContainerKillOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ContainerRename(ctx, e.ContainerName(name), client.ContainerRenameOptions{NewName: e.ContainerName(name) + "..restore"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := listed(t, e, name); n != 0 {
		t.Errorf("a set-aside container is listed %d times", n)
	}
	if err := e.Restore(ctx, name, "c", spaces.StatusRunning); err != nil {
		t.Fatalf("restore after the crash: %v", err)
	}
	// Again, as a second crash right after the new container started.
	if err := e.Restore(ctx, name, "c", spaces.StatusRunning); err != nil {
		t.Fatalf("restore again: %v", err)
	}
	if got := run(t, e, name, readState); got != wantState {
		t.Errorf("after the finished restore:\n%s", got)
	}
	if n, _ := listed(t, e, name); n != 1 {
		t.Errorf("space listed %d times", n)
	}
}

// TestSweepRemovesUnfinishedCheckpoint makes what a node killed between
// the copy of the workspace and the commit leaves: a labelled volume
// without its image.
func TestSweepRemovesUnfinishedCheckpoint(t *testing.T) {
	e := newEngine(t, "ckpt")
	ctx := t.Context()
	name := uniqueName("cks")
	vname := "clawdspace-ckpt-ckpt." + name + ".half"
	_, err := e.Client().VolumeCreate(ctx, client.VolumeCreateOptions{Name: vname, Labels: map[string]string{
		spaces.LabelKind: "checkpoint", spaces.LabelSpace: name, "clawdspace.checkpoint": "half", spaces.LabelNamespace: "ckpt",
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = e.Client().VolumeRemove(context.Background(), vname, client.VolumeRemoveOptions{Force: true})
	})
	removed, err := e.SweepCheckpoints(ctx)
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if _, err := e.Client().VolumeInspect(ctx, vname, client.VolumeInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("half-made checkpoint volume still there after the sweep (removed %v): %v", removed, err)
	}
}

// TestFailedCheckpointLeavesNothing makes a checkpoint fail midway (a
// workspace nested deeper than the copy follows) and checks that the
// error is clear, no half-made checkpoint is left and the space runs.
func TestFailedCheckpointLeavesNothing(t *testing.T) {
	e := newEngine(t, "ckpt")
	ctx := t.Context()
	name := uniqueName("ckf")
	cleanup(t, name, e)
	t.Cleanup(func() { _ = e.Remove(context.Background(), name, true) })
	create(t, e, name)
	vol, err := e.Client().VolumeInspect(ctx, e.VolumeName(name), client.VolumeInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(vol.Volume.Mountpoint, strings.Repeat("a/", 1030)), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = e.Checkpoint(ctx, name, "deep")
	if !errors.Is(err, spaces.ErrConflict) || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("checkpoint of a too deep workspace: %v, want a conflict saying so", err)
	}
	if _, err := e.Client().VolumeInspect(ctx, "clawdspace-ckpt-ckpt."+name+".deep", client.VolumeInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("the failed checkpoint's volume is left: %v", err)
	}
	if list, _ := e.Checkpoints(ctx, name); len(list) != 0 {
		t.Errorf("checkpoints after the failure: %+v", list)
	}
	if sp, _ := e.Get(ctx, name); sp.Status != spaces.StatusRunning {
		t.Errorf("space is %s after the failed checkpoint, want running", sp.Status)
	}
}

// TestExportImportIsByteIdentical exports a checkpoint and imports it
// into another namespace (as a fresh node would): the workspace and the
// changed root filesystem file have the same checksums, owners and modes.
func TestExportImportIsByteIdentical(t *testing.T) {
	src, dst := newEngine(t, "ckpt"), newEngine(t, "ckimp")
	ctx := t.Context()
	name, copyName := uniqueName("ckx"), uniqueName("ckx-imp")
	cleanup(t, name, src)
	cleanup(t, copyName, dst)
	t.Cleanup(func() {
		_ = src.Remove(context.Background(), name, true)
		_ = dst.Remove(context.Background(), copyName, true)
	})
	create(t, src, name)
	run(t, src, name, writeState+` && dd if=/dev/urandom of=/workspace/d/bin bs=1k count=300 2>/dev/null && mkdir -p /workspace/e`)
	const sums = `cd /workspace && find . | sort | while read f; do stat -c '%n %a %u %F' "$f"; done; sha256sum a.txt d/f d/bin /home/sandbox/tool; readlink d/link`
	want := run(t, src, name, sums)
	if _, err := src.Checkpoint(ctx, name, "x"); err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := src.Export(ctx, name, "x", &archive); err != nil {
		t.Fatalf("export: %v", err)
	}
	t.Logf("archive of a 300 KiB workspace: %d bytes", archive.Len())
	var manifest spaces.ArchiveManifest
	sp, err := dst.Import(ctx, &archive, 0, func(m spaces.ArchiveManifest) (spaces.ContainerSpec, error) {
		manifest = m
		return spaces.ContainerSpec{Name: copyName, Image: m.Image, MemoryBytes: m.Memory, CPUs: m.CPUs,
			NetworkMode: m.NetworkMode, Template: m.Template}, nil
	})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if manifest.Space != name || manifest.Checkpoint != "x" || manifest.Template != "offline" || manifest.Memory != 64<<20 {
		t.Errorf("manifest %+v", manifest)
	}
	if sp.Status != spaces.StatusRunning || sp.Image != manifest.Image {
		t.Errorf("imported space %+v", sp)
	}
	if got := run(t, dst, copyName, sums); got != want {
		t.Errorf("imported space differs:\n%s\nwant\n%s", got, want)
	}
	// An archive that tries to write outside the workspace is refused
	// and leaves nothing.
	var good, bad bytes.Buffer
	if err := src.Export(ctx, name, "x", &good); err != nil {
		t.Fatal(err)
	}
	tr, tw := tar.NewReader(&good), tar.NewWriter(&bad)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		_ = tw.WriteHeader(h)
		_, _ = io.Copy(tw, tr)
	}
	_ = tw.WriteHeader(&tar.Header{Name: "workspace/../etc/evil", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte("x"))
	_ = tw.Close()
	evil := uniqueName("ckx-evil")
	cleanup(t, evil, dst)
	_, err = dst.Import(ctx, &bad, 0, func(m spaces.ArchiveManifest) (spaces.ContainerSpec, error) {
		return spaces.ContainerSpec{Name: evil, Image: m.Image, MemoryBytes: m.Memory, CPUs: m.CPUs, NetworkMode: m.NetworkMode}, nil
	})
	if !errors.Is(err, spaces.ErrInvalid) || !strings.Contains(err.Error(), "outside the workspace") {
		t.Errorf("import of an archive with an entry outside the workspace: %v, want ErrInvalid saying so", err)
	}
	if _, err := dst.Get(ctx, evil); !errors.Is(err, spaces.ErrNotFound) {
		t.Errorf("a refused import left a space: %v", err)
	}
}
