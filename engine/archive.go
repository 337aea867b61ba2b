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
	"maps"
	"path"
	"slices"
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
	base, baseEnv, err := e.baseLayers(ctx, cp.Image)
	if err != nil {
		return err
	}
	saved, err := e.savedImage(ctx, ref, strings.TrimPrefix(img.ID, "sha256:"), base)
	if err != nil {
		return err
	}
	if err := saved.dropEnv(baseEnv); err != nil {
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
	if err := e.exportImage(ctx, ref, saved, tw); err != nil {
		return err
	}
	if err := e.exportWorkspace(ctx, ref, vname, tw); err != nil {
		return err
	}
	return tw.Close()
}

// baseLayers returns the layer digests and the Env of the image a space
// was made with.
func (e *Engine) baseLayers(ctx context.Context, image string) (map[string]bool, []string, error) {
	out := map[string]bool{}
	img, err := e.c.ImageInspect(ctx, image)
	if cerrdefs.IsNotFound(err) {
		return out, nil, nil // gone: every layer goes in the archive
	}
	if err != nil {
		return nil, nil, mapErr(err, "inspecting the space's image")
	}
	for _, l := range img.RootFS.Layers {
		out[l] = true
	}
	var env []string
	if img.Config != nil {
		env = img.Config.Env
	}
	return out, env, nil
}

// savedImage is what an export learns from a first read of `docker save`
// of a checkpoint's image.
type savedImage struct {
	skip       map[string]bool // layer files of the base image: left out
	manifest   []byte          // manifest.json
	configName string          // the config's file, named by its digest
	config     []byte
	oldConfig  string // the config's file as saved: never exported
}

// savedImage reads `docker save` of ref once and returns the names of its
// layer files whose digest is one of base's (those the archive leaves
// out), its manifest and its config (the file of the image's ID).
func (e *Engine) savedImage(ctx context.Context, ref, id string, base map[string]bool) (*savedImage, error) {
	res, err := e.c.ImageSave(ctx, []string{ref})
	if err != nil {
		return nil, mapErr(err, "saving the checkpoint's image")
	}
	defer res.Close()
	out := &savedImage{skip: map[string]bool{}}
	tr := tar.NewReader(res)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the saved image: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		switch h.Name {
		case "manifest.json", id + ".json", "blobs/sha256/" + id:
			b, err := io.ReadAll(io.LimitReader(tr, maxManifest))
			if err != nil {
				return nil, fmt.Errorf("reading the saved image: %w", err)
			}
			if h.Name == "manifest.json" {
				out.manifest = b
			} else {
				out.configName, out.config = h.Name, b
			}
			continue
		}
		if !isLayerFile(h.Name) {
			continue
		}
		d := sha256.New()
		if _, err := io.Copy(d, tr); err != nil {
			return nil, fmt.Errorf("reading the saved image: %w", err)
		}
		if base["sha256:"+hex.EncodeToString(d.Sum(nil))] {
			out.skip[h.Name] = true
		}
	}
	if out.manifest == nil {
		return nil, fmt.Errorf("reading the saved image: no manifest")
	}
	var m []struct{ Config string }
	if err := json.Unmarshal(out.manifest, &m); err != nil || len(m) != 1 || m[0].Config == "" {
		return nil, fmt.Errorf("reading the saved image's manifest: %v", err)
	}
	if out.configName != m[0].Config {
		// An image store (containerd's) whose IDs are not the config's
		// digest: read the file the manifest names.
		if err := e.savedConfig(ctx, ref, m[0].Config, out); err != nil {
			return nil, err
		}
	}
	out.oldConfig = out.configName
	return out, nil
}

// savedConfig reads the config the saved image's manifest names.
func (e *Engine) savedConfig(ctx context.Context, ref, name string, out *savedImage) error {
	res, err := e.c.ImageSave(ctx, []string{ref})
	if err != nil {
		return mapErr(err, "saving the checkpoint's image")
	}
	defer res.Close()
	tr := tar.NewReader(res)
	for {
		h, err := tr.Next()
		if err != nil {
			return fmt.Errorf("reading the saved image: no config %s: %v", name, err)
		}
		if h.Name == name && h.Typeflag == tar.TypeReg {
			out.configName = h.Name
			out.config, err = io.ReadAll(io.LimitReader(tr, maxManifest))
			return err
		}
	}
}

// dropEnv rewrites the image's config without the container's Env (which
// may hold secrets): only the variables of the base image stay. The config
// gets the name of its new digest, and the manifest names it.
func (s *savedImage) dropEnv(baseEnv []string) error {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(s.config, &cfg); err != nil {
		return fmt.Errorf("reading the saved image's config: %w", err)
	}
	delete(cfg, "container_config") // older engines: the container's config again
	if raw, ok := cfg["config"]; ok {
		var c map[string]json.RawMessage
		if err := json.Unmarshal(raw, &c); err != nil {
			return fmt.Errorf("reading the saved image's config: %w", err)
		}
		var env []string
		_ = json.Unmarshal(c["Env"], &env)
		env = slices.DeleteFunc(env, func(v string) bool { return !slices.Contains(baseEnv, v) })
		c["Env"], _ = json.Marshal(env)
		cfg["config"], _ = json.Marshal(c)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	name := hex.EncodeToString(sum[:]) + ".json"
	if strings.HasPrefix(s.configName, "blobs/") {
		name = "blobs/sha256/" + hex.EncodeToString(sum[:])
	}
	var m []map[string]any
	if err := json.Unmarshal(s.manifest, &m); err != nil || len(m) != 1 {
		return fmt.Errorf("reading the saved image's manifest: %v", err)
	}
	m[0]["Config"] = name
	delete(m[0], "LayerSources")
	if s.manifest, err = json.Marshal(m); err != nil {
		return err
	}
	s.configName, s.config = name, b
	return nil
}

// isLayerFile reports whether a path of a saved image may be a layer: a
// legacy ID/layer.tar, or an OCI blob.
func isLayerFile(name string) bool {
	return strings.HasSuffix(name, "/layer.tar") || strings.HasPrefix(name, "blobs/sha256/")
}

// exportImage writes the saved image under image/: its manifest and its
// config (as dropEnv made them) first, so an import knows at once which
// files it needs, then its layer files and folders less saved.skip. The
// old config, index.json, oci-layout and repositories stay out.
func (e *Engine) exportImage(ctx context.Context, ref string, saved *savedImage, tw *tar.Writer) error {
	for _, f := range []struct {
		name string
		b    []byte
	}{{"manifest.json", saved.manifest}, {saved.configName, saved.config}} {
		if err := tw.WriteHeader(&tar.Header{Name: archiveImage + f.name, Mode: 0o644, Size: int64(len(f.b)), ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(f.b); err != nil {
			return err
		}
	}
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
		if saved.skip[h.Name] || h.Name == saved.oldConfig || !imageFileShape(strings.TrimSuffix(h.Name, "/")) || strings.HasSuffix(h.Name, ".json") {
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
func (e *Engine) Import(ctx context.Context, r io.Reader, maxBytes int64, resolve func(spaces.ArchiveManifest) (spaces.ContainerSpec, error)) (sp spaces.Space, err error) {
	tr := tar.NewReader(bufio.NewReaderSize(r, 1<<20))
	h, err := tr.Next()
	if err != nil || h.Name != archiveManifest || h.Size > maxManifest {
		return sp, spaces.Errorf(spaces.ErrInvalid, "not a space archive: it must start with %s", archiveManifest)
	}
	ec := &entryCheck{max: maxBytes}
	if err := ec.check(h); err != nil {
		return sp, err
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
	if err := e.confinable(spec.NetworkMode, spec.WorkspaceMaxBytes); err != nil {
		return sp, err
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
		e.removeVolume(false, vname)
		_ = e.untag(cctx, base)
		err = diskFull(err)
	}()

	next, err := e.importImage(ctx, tr, ec, base)
	if err != nil {
		return sp, err
	}
	cfg, host := e.ContainerConfig(spec)
	cfg.Image = base
	cfg.Labels[LabelImage] = spec.Image
	if err := e.prepareWorkspace(ctx, host, spec, false); err != nil {
		return sp, err
	}
	created, err := e.c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: cname, Config: cfg, HostConfig: host})
	if err != nil {
		if cerrdefs.IsConflict(err) {
			return sp, spaces.SpaceExists()
		}
		return sp, mapErr(err, "creating the imported space")
	}
	id = created.ID
	if err := e.importWorkspace(ctx, tr, ec, next, id); err != nil {
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
// naming the image base, and returns the first entry after them. Tags the
// archive's manifest named must be as they were after the load.
func (e *Engine) importImage(ctx context.Context, tr *tar.Reader, ec *entryCheck, base string) (*tar.Header, error) {
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
	var before map[string]string
	next, err := copyImageEntries(tr, pw, ec, base, func(tags []string) {
		tags = slices.DeleteFunc(tags, func(t string) bool { return t == base })
		before = e.tagIDs(ctx, tags)
	})
	pw.CloseWithError(err)
	if lerr := <-loaded; lerr != nil && err == nil {
		err = lerr
	}
	if err != nil {
		return nil, err
	}
	if after := e.tagIDs(ctx, slices.Collect(maps.Keys(before))); !maps.Equal(before, after) {
		e.log.Error("an imported archive's image changed other tags", "tags", slices.Collect(maps.Keys(before)))
		return nil, spaces.Errorf(spaces.ErrInvalid, "the archive's image changed other images' tags: refused")
	}
	img, ierr := e.c.ImageInspect(ctx, base)
	if ierr != nil {
		return nil, spaces.Errorf(spaces.ErrInvalid, "the archive's image could not be loaded (is the image it was made with, on this node?)")
	}
	// A volume of the image would be made by the engine for the space,
	// outside its workspace and its limits.
	if img.Config != nil && len(img.Config.Volumes) > 0 {
		return nil, spaces.Errorf(spaces.ErrInvalid, "the archive's image declares volumes: refused")
	}
	return next, nil
}

// tagIDs returns the image ID of each tag ("" for a missing one).
func (e *Engine) tagIDs(ctx context.Context, tags []string) map[string]string {
	out := make(map[string]string, len(tags))
	for _, t := range tags {
		img, err := e.c.ImageInspect(ctx, t)
		if err != nil {
			out[t] = ""
			continue
		}
		out[t] = img.ID
	}
	return out
}

// maxImageTags bounds the tags an archive's image manifest may name.
const maxImageTags = 16

// copyImageEntries writes the image/ entries of tr as a tar to w, with the
// image's manifest naming base, and returns the first other entry (nil at
// the end). Only what the legacy `docker save` format needs goes through:
// manifest.json (rewritten: its config, its layers, base), the config and
// layer files, and their folders. Before the manifest only names of that
// shape pass; after it only the files it names. index.json, oci-layout
// and repositories are dropped: their names and annotations could tag
// other images. tags gets the tags the archive's manifest named, before
// the manifest is passed on.
func copyImageEntries(tr *tar.Reader, w io.Writer, ec *entryCheck, base string, tags func([]string)) (*tar.Header, error) {
	tw := tar.NewWriter(w)
	var named map[string]bool // the manifest's files and folders, once read
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
		if err := ec.check(h); err != nil {
			return nil, err
		}
		h.Name = strings.TrimPrefix(h.Name, archiveImage)
		if h.Name == "manifest.json" {
			if named != nil || h.Size > maxManifest || h.Typeflag != tar.TypeReg {
				return nil, spaces.Errorf(spaces.ErrInvalid, "the archive's image manifest is too large or not one file")
			}
			b, files, orig, err := renameImage(io.LimitReader(tr, maxManifest), base)
			if err != nil {
				return nil, err
			}
			named = files
			tags(orig)
			h.Size = int64(len(b))
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
			if _, err := tw.Write(b); err != nil {
				return nil, err
			}
			continue
		}
		clean := strings.TrimSuffix(h.Name, "/")
		pass := imageFileShape(clean) && (h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeDir)
		if named != nil {
			pass = pass && named[clean]
		}
		if !pass {
			continue // not needed by the load: dropped
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return nil, err
		}
	}
}

// imageFileShape reports whether name (no trailing slash) has the shape of
// a config or layer file of a saved image, or of their folders: HEX.json,
// HEX/, HEX/layer.tar, blobs/, blobs/sha256/, blobs/sha256/HEX.
func imageFileShape(name string) bool {
	switch name {
	case "blobs", "blobs/sha256":
		return true
	}
	if h, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
		return isHex64(h)
	}
	if h, ok := strings.CutSuffix(name, ".json"); ok {
		return isHex64(h)
	}
	if h, ok := strings.CutSuffix(name, "/layer.tar"); ok {
		return isHex64(h)
	}
	return isHex64(name)
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// renameImage rewrites `docker save`'s manifest.json so the one image it
// holds is tagged base and names only its config and layers. It returns
// the new manifest, the files it names with their folders, and the tags
// the archive named.
func renameImage(r io.Reader, base string) ([]byte, map[string]bool, []string, error) {
	var m []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.NewDecoder(r).Decode(&m); err != nil || len(m) != 1 {
		return nil, nil, nil, spaces.Errorf(spaces.ErrInvalid, "the archive's image manifest must name one image")
	}
	img := m[0]
	if len(img.RepoTags) > maxImageTags {
		return nil, nil, nil, spaces.Errorf(spaces.ErrInvalid, "the archive's image manifest names too many tags")
	}
	named := map[string]bool{}
	for _, f := range append([]string{img.Config}, img.Layers...) {
		if !imageFileShape(f) || strings.HasSuffix(f, "/") {
			return nil, nil, nil, spaces.Errorf(spaces.ErrInvalid, "the archive's image manifest names %s: not a config or layer file", strconv.Quote(f))
		}
		for p := f; p != "."; p = path.Dir(p) {
			named[p] = true
		}
	}
	out := []map[string]any{{"Config": img.Config, "RepoTags": []string{base}, "Layers": img.Layers}}
	b, err := json.Marshal(out)
	return b, named, img.RepoTags, err
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
func (e *Engine) importWorkspace(ctx context.Context, tr *tar.Reader, ec *entryCheck, first *tar.Header, id string) error {
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
	err := copyWorkspaceEntries(tr, ec, first, pw)
	pw.CloseWithError(err)
	if cerr := <-done; cerr != nil && err == nil {
		err = mapErr(cerr, "writing the workspace")
	}
	return err
}

func copyWorkspaceEntries(tr *tar.Reader, ec *entryCheck, h *tar.Header, w io.Writer) error {
	tw := tar.NewWriter(w)
	for h != nil {
		if err := ec.check(h); err != nil {
			return err
		}
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

// entryCheck refuses the entries of an archive that the reader would
// expand beyond what the stream holds (GNU sparse files: archive/tar fills
// their holes with zeros) and counts the sizes of all entries against max
// (none when 0).
type entryCheck struct {
	max, total int64
}

func (c *entryCheck) check(h *tar.Header) error {
	if h.Typeflag == tar.TypeGNUSparse {
		return spaces.Errorf(spaces.ErrInvalid, "the archive's entry %s is a sparse file: refused", strconv.Quote(h.Name))
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return spaces.Errorf(spaces.ErrInvalid, "the archive's entry %s is a sparse file: refused", strconv.Quote(h.Name))
		}
	}
	if h.Size < 0 {
		return spaces.Errorf(spaces.ErrInvalid, "the archive's entry %s has a negative size", strconv.Quote(h.Name))
	}
	c.total += h.Size
	if c.max > 0 && (c.total > c.max || c.total < 0) {
		return spaces.Errorf(spaces.ErrTooLarge, "the archive's entries are larger than this node's limit of %d bytes", c.max)
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
