package engine

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/spaces"
)

// A space's archive is one tar stream, written and read in one pass:
//
//   - manifest.json: spaces.ArchiveManifest, the settings;
//   - image/...: the checkpoint image as `docker save` writes it, less the
//     layers of the image the space was made with (the importing node must
//     have that image; the engine reads a layer it already has from its
//     own store and never opens the file);
//   - workspace/...: the checkpoint's /workspace, as the engine's archive
//     endpoint writes it (owners, modes, times and symlinks kept).
//
// Import streams image/ into the engine's image load (renamed to the new
// space's base tag) and workspace/ into the new container through the
// archive endpoint, which the engine extracts confined to the container.

const (
	archiveManifest = "manifest.json"
	archiveImage    = "image/"
	archiveWork     = "workspace"
	// maxManifest bounds manifest.json and the image's own manifest.
	maxManifest = 1 << 20
)

// Export writes the archive of a checkpoint (see spaces.ArchiveEngine).
func (e *Engine) Export(ctx context.Context, space, name string, w io.Writer) error {
	ref, vname := e.checkpointRef(space, name), e.checkpointVolume(space, name)
	img, err := e.c.ImageInspect(ctx, ref)
	if err != nil || img.Config == nil || !e.ownsCheckpoint(img.Config.Labels) {
		return spaces.CheckpointNotFound(space, name)
	}
	cp := checkpointFrom(img.Config.Labels)
	sp, err := e.inspectSpace(ctx, space)
	if err != nil {
		return err
	}
	m := spaces.ArchiveManifest{Version: spaces.ArchiveVersion, Space: space, Checkpoint: name, Created: cp.Created,
		Image: cp.Image, Template: cp.Template, NetworkMode: sp.Config.Labels[spaces.LabelNetworkMode]}
	if h := sp.HostConfig; h != nil {
		m.Memory, m.CPUs, m.GPU = h.Memory, float64(h.NanoCPUs)/1e9, len(h.DeviceRequests) > 0
	}
	base, err := e.baseLayers(ctx, cp.Image)
	if err != nil {
		return err
	}
	skip, err := e.savedLayers(ctx, ref, base)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	mb, _ := json.MarshalIndent(m, "", "  ")
	if err := tw.WriteHeader(&tar.Header{Name: archiveManifest, Mode: 0o644, Size: int64(len(mb)), ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(mb); err != nil {
		return err
	}
	if err := e.exportImage(ctx, ref, skip, tw); err != nil {
		return err
	}
	if err := e.exportWorkspace(ctx, ref, vname, tw); err != nil {
		return err
	}
	return tw.Close()
}

// baseLayers returns the layer digests of the image a space was made with.
func (e *Engine) baseLayers(ctx context.Context, image string) (map[string]bool, error) {
	out := map[string]bool{}
	img, err := e.c.ImageInspect(ctx, image)
	if cerrdefs.IsNotFound(err) {
		return out, nil // gone: every layer goes in the archive
	}
	if err != nil {
		return nil, mapErr(err, "inspecting the space's image")
	}
	for _, l := range img.RootFS.Layers {
		out[l] = true
	}
	return out, nil
}

// savedLayers reads `docker save` of ref once and returns the names of
// its layer files whose digest is one of base's: those the archive leaves
// out.
func (e *Engine) savedLayers(ctx context.Context, ref string, base map[string]bool) (map[string]bool, error) {
	res, err := e.c.ImageSave(ctx, []string{ref})
	if err != nil {
		return nil, mapErr(err, "saving the checkpoint's image")
	}
	defer res.Close()
	skip := map[string]bool{}
	tr := tar.NewReader(res)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return skip, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the saved image: %w", err)
		}
		if h.Typeflag != tar.TypeReg || !isLayerFile(h.Name) {
			continue
		}
		d := sha256.New()
		if _, err := io.Copy(d, tr); err != nil {
			return nil, fmt.Errorf("reading the saved image: %w", err)
		}
		if base["sha256:"+hex.EncodeToString(d.Sum(nil))] {
			skip[h.Name] = true
		}
	}
}

// isLayerFile reports whether a path of a saved image may be a layer: a
// legacy ID/layer.tar, or an OCI blob.
func isLayerFile(name string) bool {
	return strings.HasSuffix(name, "/layer.tar") || strings.HasPrefix(name, "blobs/sha256/")
}

func (e *Engine) exportImage(ctx context.Context, ref string, skip map[string]bool, tw *tar.Writer) error {
	res, err := e.c.ImageSave(ctx, []string{ref})
	if err != nil {
		return mapErr(err, "saving the checkpoint's image")
	}
	defer res.Close()
	tr := tar.NewReader(res)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the saved image: %w", err)
		}
		if skip[h.Name] {
			continue
		}
		h.Name = archiveImage + h.Name
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// exportWorkspace writes the checkpoint's workspace through the archive
// endpoint of a container that is never started, made only to mount it.
func (e *Engine) exportWorkspace(ctx context.Context, ref, vname string, tw *tar.Writer) error {
	id, err := e.holder(ctx, ref, vname)
	if err != nil {
		return err
	}
	defer e.removeHolder(id)
	res, err := e.c.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: spaces.WorkspacePath})
	if err != nil {
		return mapErr(err, "reading the checkpoint's workspace")
	}
	defer res.Content.Close()
	tr := tar.NewReader(res.Content)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the checkpoint's workspace: %w", err)
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// holder makes a container that is never started, of image, with volume
// vname at /workspace: the archive endpoint's way to a volume.
func (e *Engine) holder(ctx context.Context, image, vname string) (string, error) {
	created, err := e.c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: image, Cmd: []string{"true"}, Labels: map[string]string{spaces.LabelKind: labelKindPlaceholder}},
		HostConfig: &container.HostConfig{NetworkMode: "none",
			Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vname, Target: spaces.WorkspacePath, ReadOnly: true}}},
	})
	if err != nil {
		return "", mapErr(err, "mounting the checkpoint's workspace")
	}
	return created.ID, nil
}

func (e *Engine) removeHolder(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		e.log.Error("removing a helper container", "id", shortID(id), "err", err)
	}
}

// Import makes a space from an archive (see spaces.ArchiveEngine).
func (e *Engine) Import(ctx context.Context, r io.Reader, resolve func(spaces.ArchiveManifest) (spaces.ContainerSpec, error)) (sp spaces.Space, err error) {
	tr := tar.NewReader(bufio.NewReaderSize(r, 1<<20))
	h, err := tr.Next()
	if err != nil || h.Name != archiveManifest || h.Size > maxManifest {
		return sp, spaces.Errorf(spaces.ErrInvalid, "not a space archive: it must start with %s", archiveManifest)
	}
	var m spaces.ArchiveManifest
	if err := json.NewDecoder(io.LimitReader(tr, maxManifest)).Decode(&m); err != nil {
		return sp, spaces.Errorf(spaces.ErrInvalid, "not a space archive: its manifest: %v", err)
	}
	spec, err := resolve(m)
	if err != nil {
		return sp, err
	}
	if crossesNamespace(spec.Name) {
		return sp, spaces.Errorf(spaces.ErrInvalid, "space name %q must not contain %q", spec.Name, nsSep)
	}
	cname, vname, base := e.ContainerName(spec.Name), e.VolumeName(spec.Name), e.baseRef(spec.Name)
	if _, err := e.c.ContainerInspect(ctx, cname, client.ContainerInspectOptions{}); err == nil {
		return sp, spaces.SpaceExists()
	}
	if _, err := e.c.VolumeInspect(ctx, vname, client.VolumeInspectOptions{}); err == nil {
		return sp, spaces.Errorf(spaces.ErrExists, "the workspace volume of an earlier space %s is kept: remove it first (DELETE /api/spaces/%s?removeVolume=true)", spec.Name, spec.Name)
	}
	var id string
	defer func() {
		if err == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if id != "" {
			if _, rerr := e.c.ContainerRemove(cctx, id, client.ContainerRemoveOptions{Force: true}); rerr != nil && !cerrdefs.IsNotFound(rerr) {
				e.log.Error("cleaning up a failed import", "space", spec.Name, "err", rerr)
			}
			e.ids.Delete(spec.Name)
		}
		e.removeCheckpointVolume(vname)
		_ = e.untag(cctx, base)
		err = diskFull(err)
	}()

	next, err := e.importImage(ctx, tr, base)
	if err != nil {
		return sp, err
	}
	cfg, host := e.ContainerConfig(spec)
	cfg.Image = base
	cfg.Labels[LabelImage] = spec.Image
	created, err := e.c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: cname, Config: cfg, HostConfig: host})
	if err != nil {
		if cerrdefs.IsConflict(err) {
			return sp, spaces.SpaceExists()
		}
		return sp, mapErr(err, "creating the imported space")
	}
	id = created.ID
	if err := e.importWorkspace(ctx, tr, next, id); err != nil {
		return sp, err
	}
	e.forgetTarget(spec.Name)
	if err := e.startAs(ctx, spec.Name, id, spaces.StatusRunning); err != nil {
		return sp, err
	}
	res, err := e.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return sp, mapErr(err, "inspecting the imported space")
	}
	sp = e.fromInspect(spec.Name, res.Container)
	sp.VolumeCreated = true
	return sp, nil
}

// importImage streams the image/ entries into the engine's image load,
// naming the image base, and returns the first entry after them.
func (e *Engine) importImage(ctx context.Context, tr *tar.Reader, base string) (*tar.Header, error) {
	pr, pw := io.Pipe()
	loaded := make(chan error, 1)
	go func() {
		res, err := e.c.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
		if err == nil {
			err = loadError(res)
			res.Close()
		}
		pr.CloseWithError(errors.New("the engine stopped reading the image"))
		loaded <- err
	}()
	next, err := copyImageEntries(tr, pw, base)
	pw.CloseWithError(err)
	if lerr := <-loaded; lerr != nil && err == nil {
		err = lerr
	}
	if err != nil {
		return nil, err
	}
	if _, ierr := e.c.ImageInspect(ctx, base); ierr != nil {
		return nil, spaces.Errorf(spaces.ErrInvalid, "the archive's image could not be loaded (is the image it was made with, on this node?)")
	}
	return next, nil
}

// copyImageEntries writes the image/ entries of tr as a tar to w, with the
// image's manifest naming base, and returns the first other entry (nil at
// the end).
func copyImageEntries(tr *tar.Reader, w io.Writer, base string) (*tar.Header, error) {
	tw := tar.NewWriter(w)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, tw.Close()
		}
		if err != nil {
			return nil, spaces.Errorf(spaces.ErrInvalid, "reading the archive: %v", err)
		}
		if !strings.HasPrefix(h.Name, archiveImage) {
			return h, tw.Close()
		}
		h.Name = strings.TrimPrefix(h.Name, archiveImage)
		switch h.Name {
		case "repositories":
			continue // the legacy name list: manifest.json names the image
		case "manifest.json":
			if h.Size > maxManifest {
				return nil, spaces.Errorf(spaces.ErrInvalid, "the archive's image manifest is too large")
			}
			b, err := renameImage(io.LimitReader(tr, maxManifest), base)
			if err != nil {
				return nil, err
			}
			h.Size = int64(len(b))
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
			if _, err := tw.Write(b); err != nil {
				return nil, err
			}
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return nil, err
		}
	}
}

// renameImage rewrites `docker save`'s manifest.json so the one image it
// holds is tagged base.
func renameImage(r io.Reader, base string) ([]byte, error) {
	var m []map[string]any
	if err := json.NewDecoder(r).Decode(&m); err != nil || len(m) != 1 {
		return nil, spaces.Errorf(spaces.ErrInvalid, "the archive's image manifest must name one image")
	}
	m[0]["RepoTags"] = []string{base}
	return json.Marshal(m)
}

// loadError reads the engine's answer to an image load and returns the
// error it reports, if any.
func loadError(r io.Reader) error {
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err != nil {
			return nil
		}
		if msg.Error != "" {
			return diskFull(spaces.Errorf(spaces.ErrInvalid, "loading the archive's image: %s", msg.Error))
		}
	}
}

// importWorkspace streams the workspace/ entries, from first on, into the
// new container's /workspace through the engine's archive endpoint, which
// extracts them confined to the container. Names outside workspace/ are
// refused.
func (e *Engine) importWorkspace(ctx context.Context, tr *tar.Reader, first *tar.Header, id string) error {
	if first == nil {
		return nil
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := e.c.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: "/", Content: pr})
		pr.CloseWithError(errors.New("the engine stopped reading the workspace"))
		done <- err
	}()
	err := copyWorkspaceEntries(tr, first, pw)
	pw.CloseWithError(err)
	if cerr := <-done; cerr != nil && err == nil {
		err = mapErr(cerr, "writing the workspace")
	}
	return err
}

func copyWorkspaceEntries(tr *tar.Reader, h *tar.Header, w io.Writer) error {
	tw := tar.NewWriter(w)
	for h != nil {
		if err := checkWorkspaceName(h); err != nil {
			return err
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return spaces.Errorf(spaces.ErrInvalid, "reading the archive: %v", err)
		}
		next, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return spaces.Errorf(spaces.ErrInvalid, "reading the archive: %v", err)
		}
		h = next
	}
	return tw.Close()
}

// checkWorkspaceName refuses an entry that would land outside /workspace
// (a name, or a hard link's target), or that is not a file, folder or
// link.
func checkWorkspaceName(h *tar.Header) error {
	inside := func(p string) bool {
		c := path.Clean(p)
		return c == archiveWork || strings.HasPrefix(c, archiveWork+"/")
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeFifo:
	case tar.TypeLink:
		if !inside(h.Linkname) || strings.Contains(h.Linkname, "..") {
			return spaces.Errorf(spaces.ErrInvalid, "the archive's entry %s links outside the workspace", strconv.Quote(h.Name))
		}
	default:
		return spaces.Errorf(spaces.ErrInvalid, "the archive's entry %s is not a file, folder or link", strconv.Quote(h.Name))
	}
	if !inside(h.Name) || strings.Contains(h.Name, "..") {
		return spaces.Errorf(spaces.ErrInvalid, "the archive's entry %s is outside the workspace", strconv.Quote(h.Name))
	}
	return nil
}

// diskFull turns an engine's "no space left on device" into ErrDiskFull.
func diskFull(err error) error {
	if err != nil && strings.Contains(err.Error(), "no space left on device") {
		return spaces.Errorf(spaces.ErrDiskFull, "the engine's disk is full: the import was removed")
	}
	return err
}
