package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/adam91holt/clawdspace/agent"
	"github.com/adam91holt/clawdspace/spaces"
)

// A checkpoint is an image and a volume, both labelled with the space and
// the checkpoint's name, so the engine alone knows them (a restarted node
// finds them):
//
//   - the image, committed from the space's container (its root filesystem
//     changes), is clawdspace-checkpoint[-NS]:SPACE.NAME. Image names must
//     be lowercase and space names need not be, so both names go in the
//     tag; neither holds a '.', so the tag is unambiguous.
//   - the volume, a copy of the workspace, is clawdspace-ckpt-[NS.]SPACE.NAME.
//
// The volume is made first and the image last, while the space is still
// frozen: a checkpoint exists (is listed) once its image does, and a volume
// without its image is what an interrupted checkpoint left, which
// SweepCheckpoints removes. A space restored or forked from a checkpoint
// runs an image tagged clawdspace-checkpoint[-NS]:SPACE (its base tag), so a
// checkpoint's own tag can be deleted while a space still runs its layers.
const (
	labelKindCheckpoint = "checkpoint"
	labelCheckpoint     = "clawdspace.checkpoint"
	labelCkptCreated    = "clawdspace.checkpoint.created"
	labelCkptImage      = "clawdspace.checkpoint.image"
	labelCkptWorkspace  = "clawdspace.checkpoint.workspace"
	labelCkptRootfs     = "clawdspace.checkpoint.rootfs"
	// LabelImage is the image a restored or forked space was first made
	// with: its container runs a checkpoint's image, and the space's
	// image is still this one.
	LabelImage = "clawdspace.image"

	checkpointVolPrefix = "clawdspace-ckpt-"
	// restoreSuffix names the old container while a restore replaces it.
	// Names of spaces and namespaces never hold a '.', so no space's
	// container has ".." in its name.
	restoreSuffix = "..restore"
)

func (e *Engine) checkpointRepo() string {
	if e.names.ns == "" {
		return "clawdspace-checkpoint"
	}
	return "clawdspace-checkpoint-" + e.names.ns
}

func (e *Engine) checkpointRef(space, name string) string {
	return e.checkpointRepo() + ":" + space + "." + name
}

// baseRef is the image a restored or forked space's container runs.
func (e *Engine) baseRef(space string) string { return e.checkpointRepo() + ":" + space }

func (e *Engine) checkpointVolume(space, name string) string {
	v := checkpointVolPrefix
	if e.names.ns != "" {
		v += e.names.ns + nsSep
	}
	return v + space + "." + name
}

func (e *Engine) checkpointFilters(space string) client.Filters {
	f := make(client.Filters).Add("label", spaces.LabelKind+"="+labelKindCheckpoint)
	if space != "" {
		f.Add("label", spaces.LabelSpace+"="+space)
	}
	if e.names.ns != "" {
		f.Add("label", spaces.LabelNamespace+"="+e.names.ns)
	}
	return f
}

func (e *Engine) ownsCheckpoint(labels map[string]string) bool {
	return labels[spaces.LabelKind] == labelKindCheckpoint && labels[spaces.LabelNamespace] == e.names.ns &&
		labels[spaces.LabelSpace] != "" && labels[labelCheckpoint] != ""
}

// hostDir opens a folder of the engine's host (a volume's mount point),
// never through a symlink. It fails where the node does not run on the
// engine's host.
func (e *Engine) hostDir(path string) (int, error) {
	if !strings.HasPrefix(e.c.DaemonHost(), "unix://") || path == "" {
		return -1, errNoHostfs
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, errNoHostfs
	}
	return fd, nil
}

var errNoHostfs = spaces.Errorf(spaces.ErrUnavailable, "checkpoints need the node on the engine's host, with access to its volumes")

// workspaceMount returns the workspace mount of a space's container.
func workspaceMount(c container.InspectResponse) (container.MountPoint, bool) {
	for _, m := range c.Mounts {
		if m.Destination == spaces.WorkspacePath {
			return m, true
		}
	}
	return container.MountPoint{}, false
}

func (e *Engine) volumeDir(ctx context.Context, vname string) (int, error) {
	res, err := e.c.VolumeInspect(ctx, vname, client.VolumeInspectOptions{})
	if err != nil {
		return -1, err
	}
	return e.hostDir(res.Volume.Mountpoint)
}

// Checkpoint takes a checkpoint of a space (see spaces.CheckpointEngine).
func (e *Engine) Checkpoint(ctx context.Context, space, name string) (taken spaces.CheckpointTaken, err error) {
	ctx, end := e.long(ctx)
	defer end(&err)
	if crossesNamespace(space) {
		return taken, spaces.SpaceNotFound()
	}
	c, err := e.inspectSpace(ctx, space)
	if err != nil {
		return taken, err
	}
	ref, vname := e.checkpointRef(space, name), e.checkpointVolume(space, name)
	if _, err := e.c.ImageInspect(ctx, ref); err == nil {
		return taken, spaces.Errorf(spaces.ErrExists, "checkpoint %s already exists", name)
	}
	wm, ok := workspaceMount(c)
	if !ok {
		return taken, spaces.Errorf(spaces.ErrConflict, "space %s has no workspace volume", space)
	}
	src, err := e.hostDir(wm.Source)
	if err != nil {
		return taken, err
	}
	defer unix.Close(src)
	// A volume of the name without its image is an interrupted
	// checkpoint's: start afresh.
	if _, err := e.c.VolumeRemove(ctx, vname, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return taken, mapErr(err, "removing an unfinished checkpoint's volume")
	}
	labels := map[string]string{spaces.LabelKind: labelKindCheckpoint, spaces.LabelSpace: space, labelCheckpoint: name}
	if e.names.ns != "" {
		labels[spaces.LabelNamespace] = e.names.ns
	}
	vol, err := e.c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: vname, Labels: labels})
	if err != nil {
		return taken, mapErr(err, "creating the checkpoint's volume")
	}
	done := false
	defer func() {
		if !done {
			e.removeCheckpointVolume(vname)
		}
	}()
	dst, err := e.hostDir(vol.Volume.Mountpoint)
	if err != nil {
		return taken, err
	}
	defer unix.Close(dst)

	running := c.State != nil && c.State.Running && !c.State.Paused
	// A running space is copied first while it runs, then frozen while
	// what changed meanwhile is copied again (syncTree): it is frozen for
	// a walk of its metadata, not for a copy of its data.
	var wsBytes int64
	var since time.Time
	if running {
		since = time.Now().Add(-time.Second) // the filesystem's clock is coarse
		if _, _, err := copyTree(ctx, src, dst); err != nil {
			return taken, err
		}
	}
	var frozeAt time.Time
	if running {
		if err := e.Pause(ctx, space); err != nil {
			return taken, err
		}
		frozeAt = time.Now()
		thawed := false
		thaw := func() error {
			if thawed {
				return nil
			}
			thawed = true
			// A fresh context: the space must not stay frozen because
			// the request ended.
			tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			err := e.Resume(tctx, space)
			taken.Frozen = time.Since(frozeAt)
			return err
		}
		defer func() {
			if terr := thaw(); terr != nil && err == nil {
				err = terr
			}
		}()
	}
	if running {
		wsBytes, err = syncTree(ctx, src, dst, since)
	} else {
		wsBytes, _, err = copyTree(ctx, src, dst)
	}
	if err != nil {
		return taken, err
	}
	sized, err := e.c.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{Size: true})
	if err != nil {
		return taken, mapErr(err, "sizing the space's root filesystem")
	}
	var rootfs int64
	if sized.Container.SizeRw != nil {
		rootfs = *sized.Container.SizeRw
	}
	created := time.Now().UTC()
	imgLabels := maps.Clone(labels)
	imgLabels[labelCkptCreated] = created.Format(time.RFC3339Nano)
	imgLabels[labelCkptImage] = baseImage(c.Config)
	imgLabels[spaces.LabelTemplate] = c.Config.Labels[spaces.LabelTemplate]
	imgLabels[labelCkptWorkspace] = strconv.FormatInt(wsBytes, 10)
	imgLabels[labelCkptRootfs] = strconv.FormatInt(rootfs, 10)
	// The space is frozen already (or still): the commit need not pause.
	if _, err := e.c.ContainerCommit(ctx, c.ID, client.ContainerCommitOptions{
		Reference: ref, NoPause: true, Comment: "clawdspace checkpoint " + name + " of " + space,
		Config: &container.Config{Labels: imgLabels},
	}); err != nil {
		if strings.Contains(err.Error(), "no space left") {
			return taken, spaces.Errorf(spaces.ErrDiskFull, "the engine's disk is full: the checkpoint was not taken")
		}
		return taken, mapErr(err, "committing the space's root filesystem")
	}
	done = true
	taken.Checkpoint = checkpointFrom(imgLabels)
	return taken, nil
}

// baseImage is the image a space was made with.
func baseImage(c *container.Config) string {
	if c == nil {
		return ""
	}
	if img := c.Labels[LabelImage]; img != "" {
		return img
	}
	return c.Image
}

func checkpointFrom(l map[string]string) spaces.Checkpoint {
	created, _ := time.Parse(time.RFC3339Nano, l[labelCkptCreated])
	ws, _ := strconv.ParseInt(l[labelCkptWorkspace], 10, 64)
	rootfs, _ := strconv.ParseInt(l[labelCkptRootfs], 10, 64)
	return spaces.Checkpoint{
		Space: l[spaces.LabelSpace], Name: l[labelCheckpoint], Created: created,
		Image: l[labelCkptImage], Template: l[spaces.LabelTemplate],
		WorkspaceBytes: ws, RootfsBytes: rootfs,
	}
}

func (e *Engine) removeCheckpointVolume(vname string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.c.VolumeRemove(ctx, vname, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		e.log.Error("removing a checkpoint's volume", "volume", vname, "err", err)
	}
}

// Checkpoints lists a space's complete checkpoints, oldest first.
func (e *Engine) Checkpoints(ctx context.Context, space string) (_ []spaces.Checkpoint, err error) {
	ctx, end := e.short(ctx)
	defer end(&err)
	res, err := e.c.ImageList(ctx, client.ImageListOptions{Filters: e.checkpointFilters(space)})
	if err != nil {
		return nil, mapErr(err, "listing checkpoints")
	}
	vols, err := e.checkpointVolumes(ctx, space)
	if err != nil {
		return nil, err
	}
	var out []spaces.Checkpoint
	for _, img := range res.Items {
		if !e.ownsCheckpoint(img.Labels) || img.Labels[spaces.LabelSpace] != space {
			continue
		}
		cp := checkpointFrom(img.Labels)
		// The image of a space's base tag carries the labels of the
		// checkpoint it came from; only the checkpoint's own tag counts.
		// A checkpoint is whole with its volume: a commit the engine
		// finished for a node that died, after start-up swept the
		// volume, leaves an image alone (swept at the next start).
		if slices.Contains(img.RepoTags, e.checkpointRef(space, cp.Name)) && vols[e.checkpointVolume(space, cp.Name)] {
			out = append(out, cp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// DeleteCheckpoint removes a checkpoint's tag (the layers stay while a
// space restored or forked from it runs them) and its volume.
func (e *Engine) DeleteCheckpoint(ctx context.Context, space, name string) (err error) {
	ctx, end := e.long(ctx)
	defer end(&err)
	ref := e.checkpointRef(space, name)
	img, err := e.c.ImageInspect(ctx, ref)
	switch {
	case cerrdefs.IsNotFound(err):
		return spaces.CheckpointNotFound(space, name)
	case err != nil:
		return mapErr(err, "inspecting checkpoint")
	case img.Config == nil || !e.ownsCheckpoint(img.Config.Labels):
		return spaces.CheckpointNotFound(space, name)
	}
	// The tag first: once it is gone the checkpoint is not listed, and a
	// volume left by a crash here is swept at the next start.
	if err := e.untag(ctx, ref); err != nil {
		return err
	}
	if _, err := e.c.VolumeRemove(ctx, e.checkpointVolume(space, name), client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return mapErr(err, "removing the checkpoint's volume")
	}
	return nil
}

// untag removes an image reference; the image goes with it when nothing
// else holds it. A conflict (a container runs the image under this very
// reference) keeps both.
func (e *Engine) untag(ctx context.Context, ref string) error {
	_, err := e.c.ImageRemove(ctx, ref, client.ImageRemoveOptions{})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return mapErr(err, "removing image "+ref)
	}
	return nil
}

// removeCheckpoints removes every checkpoint of a space and its base tag
// (a destroy that removes the volume).
func (e *Engine) removeCheckpoints(ctx context.Context, space string) error {
	list, err := e.Checkpoints(ctx, space)
	if err != nil {
		return err
	}
	var errs []error
	for _, cp := range list {
		if err := e.DeleteCheckpoint(ctx, space, cp.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := e.untag(ctx, e.baseRef(space)); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, e.sweepVolumes(ctx, space, nil))
	return errors.Join(errs...)
}

// Restore puts a space back to a checkpoint (see spaces.CheckpointEngine).
// The old container is renamed aside before anything is removed and
// removed last, so a call after a crash at any point takes the settings
// from whichever container holds them and finishes.
func (e *Engine) Restore(ctx context.Context, space, name string, state spaces.Status) (err error) {
	ctx, end := e.long(ctx)
	defer end(&err)
	if crossesNamespace(space) {
		return spaces.SpaceNotFound()
	}
	ref, vname := e.checkpointRef(space, name), e.checkpointVolume(space, name)
	img, err := e.c.ImageInspect(ctx, ref)
	if err != nil || img.Config == nil || !e.ownsCheckpoint(img.Config.Labels) {
		return spaces.CheckpointNotFound(space, name)
	}
	cp := checkpointFrom(img.Config.Labels)
	ckdir, err := e.volumeDir(ctx, vname)
	if cerrdefs.IsNotFound(err) {
		return spaces.Errorf(spaces.ErrConflict, "checkpoint %s has lost its workspace copy; delete it", name)
	} else if err != nil {
		return mapErr(err, "opening the checkpoint's volume")
	}
	defer unix.Close(ckdir)

	src, err := e.setAside(ctx, space)
	if err != nil {
		return err
	}
	e.ids.Delete(space)
	e.forgetTarget(space)
	e.procsFiles.Delete(src.ID)

	wm, ok := workspaceMount(src)
	if !ok {
		return spaces.Errorf(spaces.ErrConflict, "space %s has no workspace volume", space)
	}
	ws, err := e.hostDir(wm.Source)
	if err != nil {
		return err
	}
	defer unix.Close(ws)
	if err := emptyTree(ws); err != nil {
		return fmt.Errorf("emptying the workspace: %w", err)
	}
	if _, _, err := copyTree(ctx, ckdir, ws); err != nil {
		return fmt.Errorf("copying the checkpoint's workspace: %w", err)
	}
	if _, err := e.c.ImageTag(ctx, client.ImageTagOptions{Source: ref, Target: e.baseRef(space)}); err != nil {
		return mapErr(err, "tagging the checkpoint's image")
	}
	cfg := *src.Config
	cfg.Image = e.baseRef(space)
	cfg.Labels = spaceLabels(src.Config.Labels, cp.Image)
	host := *src.HostConfig
	created, err := e.c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: e.ContainerName(space), Config: &cfg, HostConfig: &host})
	if err != nil {
		return mapErr(err, "creating the restored space")
	}
	if err := e.startAs(ctx, space, created.ID, state); err != nil {
		return err
	}
	if _, err := e.c.ContainerRemove(ctx, src.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return mapErr(err, "removing the space's old container")
	}
	return nil
}

// setAside returns the container whose settings a restore keeps, renamed
// to its ..restore name and stopped: the one an interrupted restore set
// aside (whatever holds the space's name then is that restore's new
// container, and is removed), else the space's own.
func (e *Engine) setAside(ctx context.Context, space string) (container.InspectResponse, error) {
	cname := e.ContainerName(space)
	aside := cname + restoreSuffix
	res, err := e.c.ContainerInspect(ctx, aside, client.ContainerInspectOptions{})
	switch {
	case err == nil && e.isSpace(res.Container.Config) && res.Container.Config.Labels[spaces.LabelSpace] == space:
		// The interrupted restore's create of the new container may
		// still be under way in the engine: wait it out (holding the
		// name), so that it is found and removed below instead of
		// taking the name from this restore's create later.
		if err := e.SettleCreate(ctx, space, res.Container.Config.Image); err != nil {
			return res.Container, err
		}
		cur, err := e.c.ContainerInspect(ctx, cname, client.ContainerInspectOptions{})
		if err == nil && e.isSpace(cur.Container.Config) {
			if _, err := e.c.ContainerRemove(ctx, cur.Container.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				return res.Container, mapErr(err, "removing an interrupted restore's container")
			}
		}
		return res.Container, nil
	case err != nil && !cerrdefs.IsNotFound(err):
		return res.Container, mapErr(err, "inspecting space")
	}
	cur, err := e.inspectSpace(ctx, space)
	if err != nil {
		return cur, err
	}
	if st := cur.State; st != nil && st.Running {
		if st.Paused {
			if _, err := e.c.ContainerUnpause(ctx, cur.ID, client.ContainerUnpauseOptions{}); err != nil && !strings.Contains(err.Error(), "not paused") {
				return cur, mapErr(err, "unpausing the space to stop it")
			}
		}
		timeout := 0
		if _, err := e.c.ContainerStop(ctx, cur.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotModified(err) {
			return cur, mapErr(err, "stopping the space")
		}
	}
	if _, err := e.c.ContainerRename(ctx, cur.ID, client.ContainerRenameOptions{NewName: aside}); err != nil {
		return cur, mapErr(err, "setting the space's container aside")
	}
	return cur, nil
}

// spaceLabels are a restored or forked container's labels: the space's,
// with the checkpoint's that its image adds emptied, and its first image.
// Every label of ours is set (see setAllLabels).
func spaceLabels(from map[string]string, image string) map[string]string {
	l := maps.Clone(from)
	for _, k := range []string{labelCheckpoint, labelCkptCreated, labelCkptImage, labelCkptWorkspace, labelCkptRootfs} {
		l[k] = ""
	}
	l[spaces.LabelKind] = spaces.LabelKindSpace
	if image != "" {
		l[LabelImage] = image
	}
	setAllLabels(l)
	return l
}

// startAs brings a new container of a space to state: started (with its
// network rules) unless stopped, then paused when paused.
func (e *Engine) startAs(ctx context.Context, space, id string, state spaces.Status) error {
	e.ids.Store(space, id)
	if state == spaces.StatusStopped {
		return nil
	}
	if _, err := e.c.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return spaces.Errorf(spaces.ErrInvalid, "starting space: %s", engineMessage(err))
	}
	res, err := e.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return mapErr(err, "inspecting space")
	}
	if err := e.enforceOrStop(ctx, res.Container); err != nil {
		return err
	}
	if state == spaces.StatusPaused {
		return e.Pause(ctx, space)
	}
	return nil
}

// Fork makes the space dst from src's checkpoint (see
// spaces.CheckpointEngine).
func (e *Engine) Fork(ctx context.Context, srcName, name, dst string, before func() error) (sp spaces.Space, err error) {
	ctx, end := e.long(ctx)
	defer end(&err)
	if crossesNamespace(dst) {
		return sp, spaces.Errorf(spaces.ErrInvalid, "space name %q must not contain %q", dst, nsSep)
	}
	ref, vname := e.checkpointRef(srcName, name), e.checkpointVolume(srcName, name)
	img, err := e.c.ImageInspect(ctx, ref)
	if err != nil || img.Config == nil || !e.ownsCheckpoint(img.Config.Labels) {
		return sp, spaces.CheckpointNotFound(srcName, name)
	}
	cp := checkpointFrom(img.Config.Labels)
	src, err := e.inspectSpace(ctx, srcName)
	if err != nil {
		return sp, err
	}
	netMode := spaces.NetworkNone
	if src.HostConfig.NetworkMode != "none" {
		netMode = cmp.Or(src.Config.Labels[spaces.LabelNetworkMode], spaces.NetworkInternet)
	}
	if err := e.confinable(netMode, 0); err != nil {
		return sp, err
	}
	wi := slices.IndexFunc(src.HostConfig.Mounts, func(m mount.Mount) bool { return m.Target == spaces.WorkspacePath })
	if wi < 0 || src.HostConfig.Mounts[wi].Type != mount.TypeVolume || src.Config.Labels[spaces.LabelWorkspaceMax] != "" {
		return sp, spaces.Errorf(spaces.ErrConflict, "space %s has a size-limited workspace: forks of it are not supported", srcName)
	}
	cname, dvname := e.ContainerName(dst), e.VolumeName(dst)
	if _, err := e.c.ContainerInspect(ctx, cname, client.ContainerInspectOptions{}); err == nil {
		return sp, spaces.SpaceExists()
	}
	if _, err := e.c.VolumeInspect(ctx, dvname, client.VolumeInspectOptions{}); err == nil {
		return sp, spaces.Errorf(spaces.ErrExists, "the workspace volume of an earlier space %s is kept: remove it first (DELETE /api/spaces/%s?removeVolume=true)", dst, dst)
	}
	ckdir, err := e.volumeDir(ctx, vname)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return sp, spaces.Errorf(spaces.ErrConflict, "checkpoint %s has lost its workspace copy; delete it", name)
		}
		return sp, mapErr(err, "opening the checkpoint's volume")
	}
	defer unix.Close(ckdir)
	if before != nil {
		if err := before(); err != nil {
			return sp, err
		}
	}
	volLabels := map[string]string{spaces.LabelKind: "volume", spaces.LabelSpace: dst}
	if e.names.ns != "" {
		volLabels[spaces.LabelNamespace] = e.names.ns
	}
	vol, err := e.c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: dvname, Labels: volLabels})
	if err != nil {
		return sp, mapErr(err, "creating the fork's volume")
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
				e.log.Error("cleaning up a failed fork", "space", dst, "err", rerr)
			}
			e.ids.Delete(dst)
		}
		e.removeCheckpointVolume(dvname)
		_ = e.untag(cctx, e.baseRef(dst))
	}()
	wsdir, err := e.hostDir(vol.Volume.Mountpoint)
	if err != nil {
		return sp, err
	}
	defer unix.Close(wsdir)
	if _, _, err := copyTree(ctx, ckdir, wsdir); err != nil {
		return sp, err
	}
	if _, err := e.c.ImageTag(ctx, client.ImageTagOptions{Source: ref, Target: e.baseRef(dst)}); err != nil {
		return sp, mapErr(err, "tagging the checkpoint's image")
	}
	cfg := *src.Config
	cfg.Image = e.baseRef(dst)
	cfg.Hostname = dst
	cfg.Labels = spaceLabels(src.Config.Labels, cp.Image)
	cfg.Labels[spaces.LabelSpace] = dst
	cfg.Labels[spaces.LabelVolume] = dvname
	host := *src.HostConfig
	host.Mounts = slices.Clone(src.HostConfig.Mounts)
	host.Mounts[wi].Source = dvname
	host.Mounts[wi].VolumeOptions = &mount.VolumeOptions{Labels: volLabels}
	// The source's agent folders are the source's: its socket would let
	// the fork speak for it. The fork gets its own, of its own volume.
	host.Mounts = slices.DeleteFunc(host.Mounts, func(m mount.Mount) bool {
		return m.Target == agent.RunDir || m.Target == agent.BinDir
	})
	host.Mounts = append(host.Mounts, e.agentMounts(dvname)...)
	created, err := e.c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: cname, Config: &cfg, HostConfig: &host})
	if err != nil {
		if cerrdefs.IsConflict(err) {
			return sp, spaces.SpaceExists()
		}
		return sp, mapErr(err, "creating the fork")
	}
	id = created.ID
	e.forgetTarget(dst)
	if err := e.startAs(ctx, dst, id, spaces.StatusRunning); err != nil {
		return sp, err
	}
	res, err := e.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return sp, mapErr(err, "inspecting the fork")
	}
	sp = e.fromInspect(dst, res.Container)
	sp.VolumeCreated = true
	return sp, nil
}

// SweepCheckpoints removes what unfinished checkpoints left: volumes
// without their image, the implicit checkpoints of forks, and untagged
// checkpoint images no container runs.
func (e *Engine) SweepCheckpoints(ctx context.Context) (removed []string, err error) {
	ctx, end := e.long(ctx)
	defer end(&err)
	res, err := e.c.ImageList(ctx, client.ImageListOptions{Filters: e.checkpointFilters("")})
	if err != nil {
		return nil, mapErr(err, "listing checkpoints")
	}
	var errs []error
	for _, img := range res.Items {
		if !e.ownsCheckpoint(img.Labels) {
			continue
		}
		cp := checkpointFrom(img.Labels)
		if strings.HasPrefix(cp.Name, "_") {
			if err := e.DeleteCheckpoint(ctx, cp.Space, cp.Name); err == nil {
				removed = append(removed, "checkpoint "+cp.Space+"@"+cp.Name)
			}
			continue
		}
		if len(img.RepoTags) == 0 || slices.Equal(img.RepoTags, []string{"<none>:<none>"}) {
			if _, err := e.c.ImageRemove(ctx, img.ID, client.ImageRemoveOptions{}); err == nil {
				removed = append(removed, "image "+shortID(strings.TrimPrefix(img.ID, "sha256:")))
			}
			continue
		}
		// A checkpoint's tag without its volume: a commit the engine
		// finished after an earlier sweep removed the volume.
		ref := e.checkpointRef(cp.Space, cp.Name)
		if slices.Contains(img.RepoTags, ref) {
			if _, err := e.c.VolumeInspect(ctx, e.checkpointVolume(cp.Space, cp.Name), client.VolumeInspectOptions{}); cerrdefs.IsNotFound(err) {
				if err := e.untag(ctx, ref); err == nil {
					removed = append(removed, "image "+ref)
				}
			}
		}
	}
	errs = append(errs, e.sweepVolumes(ctx, "", &removed))
	return removed, errors.Join(errs...)
}

// checkpointVolumes returns the names of the checkpoint volumes of space
// (every space when it is "").
func (e *Engine) checkpointVolumes(ctx context.Context, space string) (map[string]bool, error) {
	vols, err := e.c.VolumeList(ctx, client.VolumeListOptions{Filters: e.checkpointFilters(space)})
	if err != nil {
		return nil, mapErr(err, "listing checkpoint volumes")
	}
	out := make(map[string]bool, len(vols.Items))
	for _, v := range vols.Items {
		if e.ownsCheckpoint(v.Labels) {
			out[v.Name] = true
		}
	}
	return out, nil
}

// sweepVolumes removes checkpoint volumes (of space, or of every space
// when it is "") whose image does not exist.
func (e *Engine) sweepVolumes(ctx context.Context, space string, removed *[]string) error {
	vols, err := e.c.VolumeList(ctx, client.VolumeListOptions{Filters: e.checkpointFilters(space)})
	if err != nil {
		return mapErr(err, "listing checkpoint volumes")
	}
	var errs []error
	for _, v := range vols.Items {
		if !e.ownsCheckpoint(v.Labels) {
			continue
		}
		sp, name := v.Labels[spaces.LabelSpace], v.Labels[labelCheckpoint]
		if v.Name != e.checkpointVolume(sp, name) {
			continue
		}
		if _, err := e.c.ImageInspect(ctx, e.checkpointRef(sp, name)); !cerrdefs.IsNotFound(err) {
			continue
		}
		if _, err := e.c.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, mapErr(err, "removing volume "+v.Name))
			continue
		}
		if removed != nil {
			*removed = append(*removed, "volume "+v.Name)
		}
	}
	return errors.Join(errs...)
}
