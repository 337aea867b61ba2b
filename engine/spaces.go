package engine

import (
	"cmp"
	"context"
	"fmt"
	"os"
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

const pidsLimit int64 = 512

// The log driver's cap per space: max-file files of max-size each.
const (
	logMaxSize  = "10m"
	logMaxFiles = "2"
)

// workspaceSizeUnsupported says why workspace.maxSize cannot be enforced
// without a quota folder (wsquota.go): the engine's local volume driver
// has no size option for disk-backed volumes (overlay2's size option
// limits the root filesystem only, and only on xfs with project quotas).
const workspaceSizeUnsupported = "Docker's local volumes have no size limit, and no workspace quota folder is set"

// List returns the spaces of this namespace from one filtered list call.
// Spaces made by the older node lack the resource labels; only those are
// inspected.
func (e *Engine) List(ctx context.Context) (_ []spaces.Space, err error) {
	ctx, end := e.short(ctx)
	defer end(&err)
	res, err := e.c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: e.spaceFilters()})
	if err != nil {
		return nil, mapErr(err, "listing containers")
	}
	out := make([]spaces.Space, 0, len(res.Items))
	for _, c := range res.Items {
		if !e.owns(c.Labels) {
			continue // another namespace's
		}
		if e.isPoolName(c.Names) {
			continue // a warm pool member, not a space (pool.go)
		}
		sp, ok := e.fromSummary(c)
		if sp.Name == "" || !slices.Contains(c.Names, "/"+e.ContainerName(sp.Name)) {
			continue // a container a restore set aside
		}
		e.ids.Store(sp.Name, c.ID)
		if !ok {
			full, err := e.Get(ctx, sp.Name)
			if err != nil {
				continue // removed meanwhile
			}
			sp = full
		}
		out = append(out, sp)
	}
	return out, nil
}

func (e *Engine) fromSummary(c container.Summary) (spaces.Space, bool) {
	l := c.Labels
	name := e.spaceName(l, c.Names)
	sp := spaces.Space{
		Name:        name,
		ID:          shortID(c.ID),
		Status:      statusOf(c.State),
		Created:     time.Unix(c.Created, 0).UTC(),
		Image:       cmp.Or(l[LabelImage], c.Image),
		Template:    l[spaces.LabelTemplate],
		NetworkMode: l[spaces.LabelNetworkMode],
		Volume:      e.volumeOf(l, name),
		GPU:         l[spaces.LabelGPU] == "true",
		Agent:       e.agentStatus(l, c.Mounts),
	}
	mem, err1 := strconv.ParseInt(l[spaces.LabelMemory], 10, 64)
	cpus, err2 := strconv.ParseFloat(l[spaces.LabelCPUs], 64)
	if err1 != nil || err2 != nil {
		return sp, false
	}
	sp.Memory, sp.CPUs = mem, cpus
	return sp, true
}

// spaceName is the space's label, else (older node, or a space claimed
// from the warm pool) its container name less the prefix. A container
// name that, less the prefix, holds nsSep is no space's (space names
// never do): a container a restore set aside (restoreSuffix), or another
// namespace's; then "".
func (e *Engine) spaceName(labels map[string]string, names []string) string {
	if n := labels[spaces.LabelSpace]; n != "" {
		return n
	}
	for _, n := range names {
		n = strings.TrimPrefix(n, "/")
		if !strings.HasPrefix(n, e.names.container) {
			return ""
		}
		if n = strings.TrimPrefix(n, e.names.container); crossesNamespace(n) || strings.Contains(n, restoreSuffix) {
			return ""
		}
		return n
	}
	return ""
}

func (e *Engine) volumeOf(labels map[string]string, name string) string {
	if v := labels[spaces.LabelVolume]; v != "" {
		return v
	}
	return e.VolumeName(name)
}

// Get inspects one space by its container name.
func (e *Engine) Get(ctx context.Context, name string) (spaces.Space, error) {
	c, err := e.inspectSpace(ctx, name)
	if err != nil {
		return spaces.Space{}, err
	}
	return e.fromInspect(name, c), nil
}

func (e *Engine) fromInspect(name string, c container.InspectResponse) spaces.Space {
	l := c.Config.Labels
	sp := spaces.Space{
		Name:        name,
		ID:          shortID(c.ID),
		Status:      spaces.StatusStopped,
		Created:     parseTime(c.Created),
		Image:       baseImage(c.Config),
		Template:    l[spaces.LabelTemplate],
		NetworkMode: l[spaces.LabelNetworkMode],
		Volume:      e.volumeOf(l, name),
		Agent:       e.agentStatus(l, c.Mounts),
	}
	if c.State != nil {
		sp.Status = statusOf(c.State.Status)
		sp.Started = parseTime(c.State.StartedAt)
	}
	if h := c.HostConfig; h != nil {
		sp.Memory = h.Memory
		sp.CPUs = float64(h.NanoCPUs) / 1e9
		sp.GPU = len(h.DeviceRequests) > 0
	}
	return sp
}

// Create makes the volume and container of a space and starts it. The
// volume is made by the container's mount (with labels), so a create is one
// inspect, one create and one start: no helper containers.
func (e *Engine) Create(ctx context.Context, spec spaces.ContainerSpec) (sp spaces.Space, err error) {
	ctx, end := e.long(ctx)
	defer end(&err)
	if crossesNamespace(spec.Name) {
		return sp, spaces.Errorf(spaces.ErrInvalid, "space name %q must not contain %q", spec.Name, nsSep)
	}
	cname, vname := e.ContainerName(spec.Name), e.VolumeName(spec.Name)
	if err := e.confinable(spec.NetworkMode, spec.WorkspaceMaxBytes); err != nil {
		return sp, err
	}

	_, verr := e.c.VolumeInspect(ctx, vname, client.VolumeInspectOptions{})
	volumeExisted := verr == nil
	if verr != nil && !cerrdefs.IsNotFound(verr) {
		return sp, mapErr(verr, "inspecting volume")
	}

	if spec.BeforeCreate != nil {
		if err := spec.BeforeCreate(volumeExisted); err != nil {
			return sp, err
		}
	}
	cfg, host := e.ContainerConfig(spec)
	if err := e.prepareWorkspace(ctx, host, spec, volumeExisted); err != nil {
		return sp, err
	}
	created, err := e.c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: cname, Config: cfg, HostConfig: host})
	if err != nil {
		switch {
		case cerrdefs.IsConflict(err):
			return sp, spaces.SpaceExists()
		case cerrdefs.IsNotFound(err):
			e.removeVolume(volumeExisted, vname)
			return sp, spaces.Errorf(spaces.ErrInvalid, "image %q is not available on this node: build or pull it first", spec.Image)
		}
		e.removeVolume(volumeExisted, vname)
		return sp, mapErr(err, "creating container")
	}
	defer func() {
		if err != nil {
			// Clean up with a fresh context: the request's may be gone.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if _, rerr := e.c.ContainerRemove(cctx, created.ID, client.ContainerRemoveOptions{Force: true}); rerr != nil && !cerrdefs.IsNotFound(rerr) {
				e.log.Error("cleaning up failed create", "space", spec.Name, "err", rerr)
			}
			e.removeVolume(volumeExisted, vname)
		}
	}()
	if _, err = e.c.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return sp, spaces.Errorf(spaces.ErrInvalid, "starting space: %s", engineMessage(err))
	}
	c, err := e.checkRunning(ctx, created.ID, spec.Image)
	if err != nil {
		return sp, err
	}
	if err = e.applyEgress(c); err != nil {
		return sp, fmt.Errorf("enforcing the egress block list: %w", err)
	}
	e.ids.Store(spec.Name, created.ID)
	e.forgetTarget(spec.Name) // a target of an earlier container of the name
	// The agent starts now, so the first exec finds it (or waits for it).
	go e.startAgentOf(context.WithoutCancel(ctx), created.ID, vname, host)
	sp = e.fromInspect(spec.Name, c)
	sp.VolumeCreated = !volumeExisted
	return sp, nil
}

// confinable refuses, before anything is made, a space this node cannot
// confine as asked: one with network where the egress rules cannot be
// enforced, one with a workspace size limit where no quota can hold it.
// Create, Import and Fork all pass here.
func (e *Engine) confinable(networkMode string, workspaceMax int64) error {
	if networkMode != spaces.NetworkNone && !e.egress && !e.allowUnenforced {
		return spaces.AboutField(spaces.ErrInvalid, spaces.FieldTemplate, "this node cannot enforce the network rules of spaces (egress block list, isolation from other spaces; "+
			"it must run as root on the engine's host); use a template without network (offline) or start the node with --insecure-egress")
	}
	if workspaceMax > 0 && e.quotaDir == "" && !e.allowAnySize {
		return spaces.Errorf(spaces.ErrInvalid, "this node cannot enforce the template's workspace.maxSize (%s); "+
			"use a template without one, or start the node with --workspace-quota-dir (a folder on btrfs with quotas) or --insecure-workspace-size", workspaceSizeUnsupported)
	}
	return nil
}

// prepareWorkspace makes the limited subvolume of a new size-limited
// workspace and mounts it in host; a kept volume keeps the limit (or none)
// it was made with.
func (e *Engine) prepareWorkspace(ctx context.Context, host *container.HostConfig, spec spaces.ContainerSpec, volumeExisted bool) error {
	if spec.WorkspaceMaxBytes <= 0 || e.quotaDir == "" || volumeExisted {
		return nil
	}
	m, err := e.prepareQuotaVolume(ctx, host.Mounts[0], e.VolumeName(spec.Name), spec.WorkspaceMaxBytes)
	if err != nil {
		return err
	}
	host.Mounts[0] = m
	return nil
}

// checkRunning makes sure a new space runs its command. With an init process
// the start succeeds even when the image lacks sleep; the init then exits.
// The first space of each image proves it with a short exec; later ones
// trust the image.
func (e *Engine) checkRunning(ctx context.Context, id, image string) (container.InspectResponse, error) {
	res, err := e.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return res.Container, mapErr(err, "inspecting new space")
	}
	c := res.Container
	if st := c.State; st == nil || !st.Running || st.Restarting || c.RestartCount > 0 {
		return c, spaces.Errorf(spaces.ErrInvalid, "space did not keep running: image %q must provide sleep (%s)", image, stateDetail(st))
	}
	if _, ok := e.verifiedImages.Load(c.Image); ok {
		return c, nil
	}
	code, err := e.execIn(ctx, id, spaces.ExecSpec{Cmd: []string{"sleep", "0"}})
	if err != nil || code != 0 {
		return c, spaces.Errorf(spaces.ErrInvalid, "space did not keep running: image %q must provide sleep", image)
	}
	e.verifiedImages.Store(c.Image, struct{}{})
	return c, nil
}

func stateDetail(st *container.State) string {
	if st == nil {
		return "no state"
	}
	if st.Error != "" {
		return st.Error
	}
	return fmt.Sprintf("status %s, exit code %d", st.Status, st.ExitCode)
}

// removeVolume removes a volume that a failed create made.
func (e *Engine) removeVolume(existed bool, vname string) {
	if existed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.c.VolumeRemove(ctx, vname, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		e.log.Error("removing volume of failed create", "volume", vname, "err", err)
	}
	e.deleteQuotaVolume(vname)
}

// Remove deletes a space's container and, when asked, its volume. It
// inspects first, so it never removes a container that is not a space; a
// missing container with a volume left behind still has its volume removed.
func (e *Engine) Remove(ctx context.Context, name string, removeVolume bool) (err error) {
	reqCtx := ctx
	ctx, end := e.long(ctx)
	defer end(&err)
	if crossesNamespace(name) {
		return spaces.SpaceNotFound()
	}
	// One inspect tells a missing container from a foreign one that
	// holds the name (never touched, nor its volume).
	e.ids.Delete(name)
	defer e.ids.Delete(name)
	defer e.forgetTarget(name)
	res, err := e.c.ContainerInspect(ctx, e.ContainerName(name), client.ContainerInspectOptions{})
	missing := cerrdefs.IsNotFound(err)
	// The volume is the one the container's label names: a space claimed
	// from the warm pool keeps its pool volume (pool.go).
	vname, pooled := e.VolumeName(name), false
	switch {
	case err != nil && !missing:
		return mapErr(err, "inspecting space")
	case err == nil && !e.isSpace(res.Container.Config):
		return spaces.SpaceNotFound()
	case err == nil:
		vname = e.volumeOf(res.Container.Config.Labels, name)
		if pooled = e.pooledVolume(res.Container.Config.Labels, name); pooled && !removeVolume {
			// A kept workspace goes under the space's own volume name,
			// where a create of the name takes it up again.
			if err := e.keepPooledWorkspace(reqCtx, res.Container, name); err != nil {
				return err
			}
			// The copy has its own bound (keepTimeout) and may outlast
			// ctx's: the rest of the destroy gets a bound of its own, and
			// is no longer cut short by the request (the copy is done).
			var endRest func(*error)
			ctx, endRest = e.long(context.WithoutCancel(reqCtx))
			defer endRest(&err)
		}
		e.procsFiles.Delete(res.Container.ID)
		e.agentInfos.Delete(res.Container.ID)
		defer e.forgetAgent(e.volumeOf(res.Container.Config.Labels, name), false)
		_, err := e.c.ContainerRemove(ctx, res.Container.ID, client.ContainerRemoveOptions{Force: true})
		if err != nil && strings.Contains(err.Error(), "already in progress") {
			// An earlier remove (of a node that was killed meanwhile)
			// is still under way in the engine: wait for its end.
			err = e.waitRemoved(ctx, res.Container.ID)
		}
		if err != nil && !cerrdefs.IsNotFound(err) {
			return mapErr(err, "removing container")
		}
	}
	if !removeVolume {
		if missing {
			return spaces.SpaceNotFound()
		}
		if pooled {
			// Copied by keepPooledWorkspace; a failure here leaves a
			// pool volume no container uses, which the start-up sweep
			// removes.
			if _, err := e.c.VolumeRemove(ctx, vname, client.VolumeRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
				e.log.Error("removing the pool volume of a destroyed space", "volume", vname, "err", err)
			}
		}
		return nil
	}
	// The space's data goes, and its checkpoints with it.
	if err := e.removeCheckpoints(ctx, name); err != nil {
		return err
	}
	if pooled {
		// A copy of its workspace under the space's own volume name, left
		// by a destroy that kept it and failed, goes too: a later create
		// of the name must not take it up.
		if err := e.removeKeptCopy(ctx, name); err != nil {
			return err
		}
	}
	// No Force: a forced remove reports success for a missing volume.
	_, verr := e.c.VolumeRemove(ctx, vname, client.VolumeRemoveOptions{})
	switch {
	case verr == nil:
		e.deleteQuotaVolume(vname)
		e.forgetAgent(vname, true)
		return nil
	case cerrdefs.IsNotFound(verr):
		if missing {
			return spaces.SpaceNotFound()
		}
		return nil
	}
	return mapErr(verr, "removing volume")
}

// waitRemoved waits until a container being removed is gone, at most 30 s.
func (e *Engine) waitRemoved(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, err := e.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			if cerrdefs.IsNotFound(err) {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the engine to remove the container: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Pause freezes a space. Pausing a paused or stopped space changes nothing.
func (e *Engine) Pause(ctx context.Context, name string) (err error) {
	ctx, end := e.short(ctx)
	defer end(&err)
	err = e.onSpace(ctx, name, func(id string) error {
		// Engine 20.10 hangs for good (and with it every later exec and
		// inspect of the space) when it freezes an exec's process while
		// that is still runc's init, so a pause waits for the node's execs
		// that are starting, then for any other runc init in the space.
		unlock, err := e.gates.lock(ctx, id)
		if err != nil {
			return errStarting
		}
		defer unlock()
		if err := e.waitNoRuncInit(ctx, id); err != nil {
			return err
		}
		if err := e.pauseFrozen(ctx, id); err != nil {
			return err
		}
		e.settlePaused(ctx, id, true)
		return nil
	})
	if err != nil && (cerrdefs.IsConflict(err) || isNotRunning(err) || strings.Contains(err.Error(), "already paused")) {
		return nil
	}
	return mapErr(err, "pausing space")
}

// pauseFrozen pauses a container until its cgroup is frozen: Engine
// 20.10 may answer "already paused" for a running container just after a
// quick pause and unpause (see frozen), until it catches up.
func (e *Engine) pauseFrozen(ctx context.Context, id string) error {
	for {
		_, err := e.c.ContainerPause(ctx, id, client.ContainerPauseOptions{})
		if err == nil || !strings.Contains(err.Error(), "already paused") {
			return err
		}
		file := e.procsFile(ctx, id)
		if f, known := frozen(file); f || !known {
			return err
		}
		if err := pollWait(ctx); err != nil {
			return err
		}
	}
}

// settlePaused waits (at most settleWait) until the engine reports the
// pause state it just set. Engine 20.10 applies containerd's pause and
// resume events after it answers: a late "paused" event marks a space
// resumed a moment ago as paused again (and a late "resumed" one the
// reverse) until the next event, so a caller that asks for the state right
// after its pause or resume could see the old one.
func (e *Engine) settlePaused(ctx context.Context, id string, paused bool) {
	ctx, cancel := context.WithTimeout(ctx, settleWait)
	defer cancel()
	for {
		res, err := e.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil || res.Container.State == nil || res.Container.State.Paused == paused {
			return
		}
		if pollWait(ctx) != nil {
			return
		}
	}
}

// settleWait bounds settlePaused: the events come within milliseconds.
const settleWait = 2 * time.Second

// pollWait waits a moment before trying the engine again.
func pollWait(ctx context.Context) error {
	t := time.NewTimer(10 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// errStarting answers a pause that a starting command kept out until its
// deadline.
var errStarting = &spaces.Error{Kind: spaces.ErrConflict, Msg: "Space is starting a command; pause it again in a moment"}

// waitNoRuncInit waits until no process in the container's cgroup is
// runc's init: execs the node did not start (docker exec) have no gate.
// Where the node cannot see the engine's processes it does not wait.
func (e *Engine) waitNoRuncInit(ctx context.Context, id string) error {
	file := e.procsFile(ctx, id)
	if file == "" {
		return nil
	}
	for delay := time.Millisecond; ; delay = min(delay*2, 20*time.Millisecond) {
		pids, err := runcInits("/proc", file)
		if err != nil || len(pids) == 0 {
			// No file: the container stopped or its cgroup moved; the
			// pause tells which.
			e.procsFiles.CompareAndDelete(id, file)
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return errStarting
		case <-t.C:
		}
	}
}

// procsFile returns the cgroup.procs file of a running container, "" when
// the node cannot see the engine's processes (it does not run on the
// engine's host) or the container does not run.
func (e *Engine) procsFile(ctx context.Context, id string) string {
	if v, ok := e.procsFiles.Load(id); ok {
		return v.(string)
	}
	ctx, cancel := context.WithTimeout(ctx, e.callTimeout)
	defer cancel()
	res, err := e.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return ""
	}
	return e.procsFileOf(id, res.Container.State)
}

// procsFileOf is procsFile for a container whose state the caller has
// just inspected.
func (e *Engine) procsFileOf(id string, st *container.State) string {
	if v, ok := e.procsFiles.Load(id); ok {
		return v.(string)
	}
	if st == nil || st.Pid <= 0 {
		return ""
	}
	file := ""
	if inContainer("/proc", st.Pid, id) {
		file = cgroupProcsFile("/proc", "/sys/fs/cgroup", st.Pid)
		if _, err := os.Stat(file); err != nil {
			file = ""
		}
	}
	e.procsFiles.Store(id, file)
	return file
}

// Resume unpauses a paused space or starts a stopped one. After an
// unpause it waits until the engine reports the space running (see
// settlePaused): one inspect in the common case.
func (e *Engine) Resume(ctx context.Context, name string) (err error) {
	ctx, end := e.long(ctx)
	defer end(&err)
	return e.onSpace(ctx, name, func(id string) error {
		_, err := e.c.ContainerUnpause(ctx, id, client.ContainerUnpauseOptions{})
		if err == nil {
			e.settlePaused(ctx, id, false)
			return nil
		}
		// Engine 20.10 answers 500, newer ones 409, for "is not paused".
		if !(cerrdefs.IsConflict(err) || strings.Contains(err.Error(), "is not paused")) {
			return mapErr(err, "resuming space")
		}
		// Not paused: running already (the common case for file access),
		// or stopped and to be started.
		res, err := e.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return mapErr(err, "inspecting space")
		}
		if st := res.Container.State; st != nil && st.Running && !st.Paused {
			// Engine 20.10 may believe a frozen container running just
			// after a quick unpause and pause (see frozen): unpause it
			// again until it agrees.
			file := e.procsFileOf(id, st)
			for {
				if f, _ := frozen(file); !f || file == "" {
					return nil
				}
				if err := pollWait(ctx); err != nil {
					return err
				}
				if _, err := e.c.ContainerUnpause(ctx, id, client.ContainerUnpauseOptions{}); err == nil {
					return nil
				}
			}
		}
		e.ensureAgentDir(res.Container)
		_, err = e.c.ContainerStart(ctx, id, client.ContainerStartOptions{})
		if err != nil && cerrdefs.IsNotModified(err) {
			return nil
		}
		if err != nil {
			return mapErr(err, "starting space")
		}
		// A new start is a new network namespace: put the rules back now
		// rather than wait for the event.
		res, err = e.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return mapErr(err, "inspecting space")
		}
		// The start brought back the host name of a space claimed from
		// the warm pool (hostname.go).
		if err := e.setHostname(res.Container, name); err != nil {
			e.log.Error("setting the host name of a space made from the warm pool", "space", name, "err", err)
		}
		return e.enforceOrStop(ctx, res.Container)
	})
}

// ContainerConfig returns the container and host configuration of a space
// in the default namespace, with the names, labels and hardening of the wire
// contract. Benchmarks use it to give the raw SDK baseline the same work.
func ContainerConfig(spec spaces.ContainerSpec) (*container.Config, *container.HostConfig) {
	return containerConfig(spec, newNames(""))
}

// ContainerConfig returns the container and host configuration of a space
// in this engine's namespace.
// It mounts the in-space agent's folders (agent.go) when the agent is on.
func (e *Engine) ContainerConfig(spec spaces.ContainerSpec) (*container.Config, *container.HostConfig) {
	cfg, host := containerConfig(spec, e.names)
	host.Mounts = append(host.Mounts, e.agentMounts(e.VolumeName(spec.Name))...)
	return cfg, host
}

func containerConfig(spec spaces.ContainerSpec, n names) (*container.Config, *container.HostConfig) {
	vname := n.vol + spec.Name
	labels := map[string]string{
		spaces.LabelKind:        spaces.LabelKindSpace,
		spaces.LabelSpace:       spec.Name,
		spaces.LabelVolume:      vname,
		spaces.LabelTemplate:    spec.Template,
		spaces.LabelNetworkMode: spec.NetworkMode,
		spaces.LabelMemory:      strconv.FormatInt(spec.MemoryBytes, 10),
		spaces.LabelCPUs:        formatCPUs(spec.CPUs),
		spaces.LabelGPU:         strconv.FormatBool(spec.GPU),
	}
	if len(spec.BlockCIDRs) > 0 && spec.NetworkMode == spaces.NetworkInternet {
		labels[spaces.LabelNetworkBlock] = blockLabel(spec.BlockCIDRs)
		if len(spec.HostPorts) > 0 {
			labels[spaces.LabelHostPorts] = portsLabel(spec.HostPorts)
		}
	}
	if spec.WorkspaceMaxBytes > 0 {
		labels[spaces.LabelWorkspaceMax] = strconv.FormatInt(spec.WorkspaceMaxBytes, 10)
	}
	volLabels := map[string]string{
		spaces.LabelKind:  "volume",
		spaces.LabelSpace: spec.Name,
	}
	if n.ns != "" {
		labels[spaces.LabelNamespace] = n.ns
		volLabels[spaces.LabelNamespace] = n.ns
	}
	setAllLabels(labels)
	cfg := &container.Config{
		Image:      spec.Image,
		User:       fmt.Sprintf("%d:%d", spaces.SandboxUID, spaces.SandboxUID),
		WorkingDir: spaces.WorkspacePath,
		Cmd:        []string{"sleep", "infinity"},
		Hostname:   spec.Name,
		Env:        spec.Env,
		Labels:     labels,
		// No image health check runs in a space: it would be a process the
		// space's owner did not start, and its state means nothing here.
		Healthcheck: &container.HealthConfig{Test: []string{"NONE"}},
	}
	pids := pidsLimit
	init := true
	host := &container.HostConfig{
		Mounts: []mount.Mount{{
			Type:          mount.TypeVolume,
			Source:        vname,
			Target:        spaces.WorkspacePath,
			VolumeOptions: &mount.VolumeOptions{Labels: volLabels},
		}},
		Resources: container.Resources{
			Memory:    spec.MemoryBytes,
			NanoCPUs:  int64(spec.CPUs * 1e9),
			PidsLimit: &pids,
		},
		CapDrop:     []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges"},
		Tmpfs:       map[string]string{"/tmp": "rw,exec,nosuid,nodev,mode=1777", "/run": "rw,nosuid,nodev,mode=755"},
		// No restart by the engine: a space runs only when the node started
		// it and wrote its network rules (see "Restart policy" in
		// docs/ARCHITECTURE.md).
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		// A space writing to its own stdout (/proc/1/fd/1) must not fill
		// the host's disk: the engine keeps at most 2 files of 10 MB.
		LogConfig:      container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": logMaxSize, "max-file": logMaxFiles}},
		ReadonlyRootfs: spec.ReadOnlyRootfs,
		Init:           &init,
	}
	if spec.NetworkMode == spaces.NetworkNone {
		host.NetworkMode = "none"
	}
	if spec.GPU {
		host.DeviceRequests = []container.DeviceRequest{{Count: -1, Capabilities: [][]string{{"gpu"}}}}
	}

	return cfg, host
}

// ownLabels are the labels of this node that a space's container may
// carry.
func ownLabels() []string {
	return []string{spaces.LabelKind, spaces.LabelSpace, spaces.LabelVolume, spaces.LabelTemplate, spaces.LabelNetworkMode,
		spaces.LabelMemory, spaces.LabelCPUs, spaces.LabelGPU, spaces.LabelNetworkBlock, spaces.LabelHostPorts,
		spaces.LabelWorkspaceMax, spaces.LabelNamespace, LabelImage,
		labelCheckpoint, labelCkptCreated, labelCkptImage, labelCkptWorkspace, labelCkptRootfs, labelPool}
}

// setAllLabels sets every label of ownLabels that labels lacks to "" (which
// every reader takes as absent). The engine copies an image's labels into
// a container that does not set them, and an image (an imported archive's,
// or a checkpoint's committed from a container) may carry any: a space's
// container sets them all.
func setAllLabels(labels map[string]string) {
	for _, k := range ownLabels() {
		if _, ok := labels[k]; !ok {
			labels[k] = ""
		}
	}
}
