package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/spaces"
)

// Every exec and terminal the node starts carries spaces.NodeRunEnv set to
// the node's run: its PID and the start time of its process in clock ticks
// since boot (/proc/self/stat), which together name one process for the
// machine's uptime, unlike the PID alone. A process in a space whose run is
// no longer alive was left by a node that crashed (nobody reads its output
// or will kill it at its timeout); KillStrays ends such processes.

// RunID returns this process's run: "PID.STARTTICKS".
func RunID() string {
	pid := os.Getpid()
	return strconv.Itoa(pid) + "." + strconv.FormatUint(startTicks("/proc", pid), 10)
}

// startTicks reads the start time of a process (field 22 of its stat),
// 0 when it cannot be read.
func startTicks(proc string, pid int) uint64 {
	b, err := os.ReadFile(proc + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	// After the command name: field 3 (state) is index 0, field 22 index 19.
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// runAlive reports whether the node run named by run still lives.
func runAlive(proc, run string) bool {
	p, t, ok := strings.Cut(run, ".")
	pid, err1 := strconv.Atoi(p)
	ticks, err2 := strconv.ParseUint(t, 10, 64)
	if !ok || err1 != nil || err2 != nil || pid <= 0 {
		return false // not a run this node wrote: nobody owns the process
	}
	return startTicks(proc, pid) == ticks
}

// Run returns the run this engine marks its execs with.
func (e *Engine) Run() string { return e.run }

// markEnv adds the run marker to an exec's environment, replacing one the
// caller passed.
func (e *Engine) markEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, spaces.NodeRunEnv+"=") {
			out = append(out, kv)
		}
	}
	return append(out, spaces.NodeRunEnv+"="+e.run)
}

// KillStrays kills the processes in this namespace's spaces whose marker
// names a run of the node that is gone, with everything they started. It
// reads the engine host's /proc, so it needs the node on that host (as
// killing an exec does); elsewhere it finds nothing and says so.
func (e *Engine) KillStrays(ctx context.Context) (_ []spaces.Stray, err error) {
	lctx, end := e.short(ctx)
	res, err := e.c.ContainerList(lctx, client.ContainerListOptions{Filters: e.spaceFilters()})
	end(&err)
	if err != nil {
		return nil, mapErr(err, "listing containers")
	}
	ids := map[string]string{} // container ID -> space
	for _, c := range res.Items {
		if e.owns(c.Labels) {
			ids[c.ID] = e.spaceName(c.Labels, c.Names)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	strays, denied := findStrays("/proc", ids)
	if denied > 0 && len(strays) == 0 {
		return nil, fmt.Errorf("reading the environment of %d processes in spaces: permission denied (run the node as root)", denied)
	}
	if len(strays) > 0 {
		e.killStrays(ctx, strays)
	}
	out := make([]spaces.Stray, 0, len(strays))
	for _, s := range strays {
		out = append(out, s.Stray)
	}
	return out, nil
}

type stray struct {
	spaces.Stray
	containerID string
}

// findStrays scans proc for processes of the given containers whose run
// marker names a dead run. denied counts environments it could not read.
func findStrays(proc string, containers map[string]string) (out []stray, denied int) {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil, 0
	}
	alive := map[string]bool{}
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		cid, space := containerOf(proc, pid, containers)
		if cid == "" {
			continue
		}
		env, err := os.ReadFile(proc + "/" + ent.Name() + "/environ")
		if err != nil {
			if errors.Is(err, os.ErrPermission) {
				denied++
			}
			continue
		}
		run := envValue(env, spaces.NodeRunEnv)
		if run == "" {
			continue // the space's own processes, or started by someone else
		}
		live, ok := alive[run]
		if !ok {
			live = runAlive(proc, run)
			alive[run] = live
		}
		if live {
			continue
		}
		out = append(out, stray{Stray: spaces.Stray{Space: space, PID: pid, NodeRun: run, Command: cmdline(proc, pid)}, containerID: cid})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, denied
}

// containerOf finds which of containers the process belongs to, by its
// cgroup.
func containerOf(proc string, pid int, containers map[string]string) (id, space string) {
	b, err := os.ReadFile(proc + "/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", ""
	}
	s := string(b)
	for id, space := range containers {
		if strings.Contains(s, id) {
			return id, space
		}
	}
	return "", ""
}

func envValue(environ []byte, key string) string {
	prefix := []byte(key + "=")
	for kv := range bytes.SplitSeq(environ, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, prefix); ok {
			return string(v)
		}
	}
	return ""
}

func cmdline(proc string, pid int) string {
	b, _ := os.ReadFile(proc + "/" + strconv.Itoa(pid) + "/cmdline")
	return strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

// killStrays kills each stray with its tree and session, as killExec does
// for a timed-out exec.
func (e *Engine) killStrays(ctx context.Context, strays []stray) {
	for round := 0; round < 3; round++ {
		denied := map[string][]int{}
		found := false
		for _, s := range strays {
			for _, pid := range processTree("/proc", s.PID) {
				found = true
				if err := syscall.Kill(pid, syscall.SIGKILL); errors.Is(err, syscall.EPERM) {
					denied[s.containerID] = append(denied[s.containerID], pid)
				}
			}
		}
		if !found {
			return
		}
		for cid, pids := range denied {
			slices.Sort(pids)
			e.killInside(ctx, cid, slices.Compact(pids))
		}
	}
}

// OrphanVolumes returns the spaces of this namespace whose workspace
// volume (labelled clawdspace.kind=volume by the container's mount) has no
// container.
func (e *Engine) OrphanVolumes(ctx context.Context) (_ []string, err error) {
	ctx, end := e.short(ctx)
	defer end(&err)
	f := make(client.Filters).Add("label", spaces.LabelKind+"=volume")
	if e.names.ns != "" {
		f.Add("label", spaces.LabelNamespace+"="+e.names.ns)
	}
	vols, err := e.c.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return nil, mapErr(err, "listing volumes")
	}
	cons, err := e.c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: e.spaceFilters()})
	if err != nil {
		return nil, mapErr(err, "listing containers")
	}
	used := map[string]bool{}
	for _, c := range cons.Items {
		if e.owns(c.Labels) {
			used[e.volumeOf(c.Labels, e.spaceName(c.Labels, c.Names))] = true
		}
	}
	var out []string
	for _, v := range vols.Items {
		space := v.Labels[spaces.LabelSpace]
		if v.Labels[spaces.LabelNamespace] != e.names.ns || space == "" || v.Name != e.VolumeName(space) || used[v.Name] {
			continue
		}
		out = append(out, space)
	}
	sort.Strings(out)
	return out, nil
}

// labelKindPlaceholder marks the container SettleCreate holds a name with.
const labelKindPlaceholder = "recovery-placeholder"

// SettleCreate makes sure that no create of space the engine may still be
// running for a node that died completes later: the engine goes on with a
// request whose client is gone, so a container can appear after start-up
// recovery looked. It takes the container name itself with a placeholder
// (never started, no mounts, not a space): when that succeeds no other
// create can finish, and the placeholder is removed; when the name is held
// by a container being made, it waits until that one exists. image is the
// create's; when it is missing no create of it can succeed either.
func (e *Engine) SettleCreate(ctx context.Context, space, image string) error {
	if crossesNamespace(space) || image == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cname := e.ContainerName(space)
	cfg := &container.Config{Image: image, Cmd: []string{"true"}, Labels: map[string]string{spaces.LabelKind: labelKindPlaceholder, spaces.LabelSpace: space}}
	for {
		created, err := e.c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: cname, Config: cfg, HostConfig: &container.HostConfig{NetworkMode: "none"}})
		switch {
		case err == nil:
			_, err := e.c.ContainerRemove(ctx, created.ID, client.ContainerRemoveOptions{Force: true})
			return mapErr(err, "removing the placeholder container")
		case cerrdefs.IsNotFound(err):
			return nil // no such image: that create cannot succeed either
		case !cerrdefs.IsConflict(err):
			return mapErr(err, "holding the name of an interrupted create")
		}
		// The name is held: by a space (made, or being made), or by a
		// placeholder of a recovery that was itself interrupted.
		res, err := e.c.ContainerInspect(ctx, cname, client.ContainerInspectOptions{})
		switch {
		case err == nil && res.Container.Config != nil && res.Container.Config.Labels[spaces.LabelKind] == labelKindPlaceholder:
			if _, err := e.c.ContainerRemove(ctx, res.Container.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				return mapErr(err, "removing a placeholder container")
			}
			continue
		case err == nil:
			return nil // the container exists: the caller decides about it
		case !cerrdefs.IsNotFound(err):
			return mapErr(err, "inspecting an interrupted create")
		}
		// Reserved but not registered yet: the create is under way.
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for an interrupted create to end: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
