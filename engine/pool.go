package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/adam91holt/clawdspace/spaces"
)

// The warm pool (docs/POOL.md): containers made in advance exactly as a
// cold create of a template's defaults makes them, started and paused,
// which a create claims and finishes instead of making a space from
// nothing. A member is told from a space by its name alone, never by a
// label (labels cannot change, and a claimed member keeps its labels):
// its container is clawdspace-[NS.]_pool.ID and its volume
// clawdspace-vol-[NS.]_pool.ID. Space names never start with '_' and
// namespaces never hold one, so no space of any namespace has such a name.
// A claim renames the container to the space's, sets its host name and
// unpauses it; the volume keeps its pool name (the container's
// clawdspace.volume label says which it is).
const (
	poolTag = "_pool" + nsSep
	// labelPool holds the pool key of what a member was made for
	// (PoolKey); a claimed space keeps it.
	labelPool = "clawdspace.pool"
	// poolHostname is a member's host name until a claim sets the space's.
	poolHostname = "clawdspace-pool"
)

// poolName is the container name of the member id, poolVolume its volume's.
func (e *Engine) poolName(id string) string   { return e.names.container + poolTag + id }
func (e *Engine) poolVolume(id string) string { return e.names.vol + poolTag + id }

// isPoolName reports whether a container's names (as listed, with '/')
// are those of an unclaimed member of this namespace.
func (e *Engine) isPoolName(names []string) bool {
	return slices.ContainsFunc(names, func(n string) bool {
		return strings.HasPrefix(strings.TrimPrefix(n, "/"), e.names.container+poolTag)
	})
}

// isPoolVolume reports whether a volume name is a pool volume of this
// namespace (a member's, or a claimed space's).
func (e *Engine) isPoolVolume(vname string) bool {
	return strings.HasPrefix(vname, e.names.vol+poolTag)
}

// PoolUnsupported says why this node cannot finish pooled spaces: it must
// set a claimed member's host name in its UTS namespace and its
// hostname and hosts files, which needs root on the engine's host. ""
// when it can.
func (e *Engine) PoolUnsupported() string { return e.noUTS }

// PoolKey identifies what a member made for spec is: two specs with the
// same key differ in nothing that is fixed when Docker creates a
// container (the image, by its ID, resources, network and block list,
// root filesystem, template). ok is false for a spec that is never
// pooled: GPU spaces and size-limited workspaces, and a spec with env
// (Docker cannot add env to a container).
func (e *Engine) PoolKey(ctx context.Context, spec spaces.ContainerSpec) (key string, ok bool, err error) {
	if spec.GPU || spec.WorkspaceMaxBytes > 0 || len(spec.Env) > 0 {
		return "", false, nil
	}
	ctx, end := e.short(ctx)
	defer end(&err)
	img, err := e.c.ImageInspect(ctx, spec.Image)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", false, nil // a cold create says so
		}
		return "", false, mapErr(err, "inspecting image")
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%s\x00%s\x00%s\x00%s\x00%t",
		img.ID, spec.Image, spec.Template, spec.MemoryBytes, formatCPUs(spec.CPUs), spec.NetworkMode,
		blockLabel(spec.BlockCIDRs), portsLabel(spec.HostPorts), spec.ReadOnlyRootfs)
	return hex.EncodeToString(h.Sum(nil))[:24], true, nil
}

// PoolAdd makes one member of key for spec (whose name is ignored):
// created as a cold create would make it, started, then paused, so it
// costs no CPU. On failure it leaves nothing behind.
func (e *Engine) PoolAdd(ctx context.Context, spec spaces.ContainerSpec, key string) (err error) {
	ctx, end := e.long(ctx)
	defer end(&err)
	if err := e.confinable(spec.NetworkMode, spec.WorkspaceMaxBytes); err != nil {
		return err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	spec.Name, spec.Env = poolTag+id, nil
	cfg, host := e.ContainerConfig(spec)
	cfg.Hostname = poolHostname
	cfg.Labels[spaces.LabelSpace] = ""
	cfg.Labels[labelPool] = key
	host.Mounts[0].VolumeOptions.Labels[spaces.LabelSpace] = ""
	vname := host.Mounts[0].Source
	created, err := e.c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: e.poolName(id), Config: cfg, HostConfig: host})
	if err != nil {
		e.removeVolume(false, vname)
		return mapErr(err, "creating a pool member")
	}
	// Held as a claim until paused, so a prune never takes it for a
	// member a dead node left running.
	e.claims.Store(created.ID, true)
	defer e.claims.Delete(created.ID)
	defer func() {
		if err != nil {
			e.removePoolMember(context.WithoutCancel(ctx), created.ID, vname)
		}
	}()
	if _, err := e.c.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return mapErr(err, "starting a pool member")
	}
	c, err := e.checkRunning(ctx, created.ID, spec.Image)
	if err != nil {
		return err
	}
	hosts := e.hosts.Current() // read before the rules: see PoolClaim
	if err := e.applyEgress(c); err != nil {
		return fmt.Errorf("enforcing the egress block list of a pool member: %w", err)
	}
	e.poolRules.Store(created.ID, hosts)
	// The agent starts before the pause, so a claimed member's first exec
	// finds it connected (its connection outlives the pause); a member
	// whose agent did not connect is still a member (the exec starts it).
	e.startAgentOf(ctx, created.ID, vname, host)
	if err := e.pauseFrozen(ctx, created.ID); err != nil {
		return mapErr(err, "pausing a pool member")
	}
	e.settlePaused(ctx, created.ID, true)
	return nil
}

// removePoolMember removes a member's container and volume, each call
// bounded by ctx and the long timeout (callers whose request may be gone
// pass a context without its cancel), and marks the ID gone (poolGone).
// It reports whether the container is gone.
func (e *Engine) removePoolMember(ctx context.Context, id, vname string) bool {
	ctx, cancel := context.WithTimeout(ctx, e.longTimeout)
	defer cancel()
	e.poolTombstone(id)
	if _, err := e.c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		e.log.Error("removing a pool member", "container", shortID(id), "err", err)
		return false // its volume is in use: the start-up sweep removes both
	}
	e.procsFiles.Delete(id)
	e.poolRules.Delete(id)
	e.agentInfos.Delete(id)
	e.removeVolume(false, vname)
	e.forgetAgent(vname, true)
	return true
}

// poolTombstone marks the container id as no longer a member this node may
// act on (claimed, or removed): a member list taken before that, which
// still shows it, is never acted on for it. The mark goes once a list
// taken after it no longer shows the ID (poolMembers).
func (e *Engine) poolTombstone(id string) { e.poolGone.Store(id, e.poolGen.Add(1)) }

// poolMembers lists the unclaimed members of this namespace, less those
// marked gone.
func (e *Engine) poolMembers(ctx context.Context, key string) ([]container.Summary, error) {
	gen := e.poolGen.Add(1)
	f := e.spaceFilters()
	if key != "" {
		f.Add("label", labelPool+"="+key)
	} else {
		f.Add("label", labelPool)
	}
	res, err := e.c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, mapErr(err, "listing pool members")
	}
	listed := map[string]bool{}
	out := res.Items[:0]
	for _, c := range res.Items {
		if !e.owns(c.Labels) || !e.isPoolName(c.Names) {
			continue
		}
		listed[c.ID] = true
		if _, gone := e.poolGone.Load(c.ID); !gone {
			out = append(out, c)
		}
	}
	if key == "" {
		// A mark made before this list began, for an ID the list no
		// longer shows as a member, has done its work: no later list
		// shows it (a claimed or removed member never gets a pool name
		// back). A list of one key does not see the others'.
		e.poolGone.Range(func(id, marked any) bool {
			if marked.(uint64) < gen && !listed[id.(string)] {
				e.poolGone.Delete(id)
			}
			return true
		})
	}
	if e.poolListed != nil {
		e.poolListed(key)
	}
	return out, nil
}

// takeMember holds the member id (e.claims) for a claim or a prune and
// checks, by ID and right before the caller acts, that it still is an
// unclaimed member of this node: a list can be stale, and the engine
// renames and removes by ID whatever name the container has now. ok is
// false, with nothing held, when another holds it or it is no longer a
// member (renamed into a space, or gone: then it is marked gone). The
// caller releases a held member with e.claims.Delete.
func (e *Engine) takeMember(ctx context.Context, id string) (c container.InspectResponse, ok bool) {
	if _, gone := e.poolGone.Load(id); gone {
		return c, false
	}
	if _, held := e.claims.LoadOrStore(id, true); held {
		return c, false
	}
	if _, gone := e.poolGone.Load(id); gone {
		e.claims.Delete(id) // marked between the two looks
		return c, false
	}
	res, err := e.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		e.poolTombstone(id)
	case err != nil:
	case res.Container.Config == nil || !e.owns(res.Container.Config.Labels) || !e.isPoolName([]string{res.Container.Name}):
		e.poolTombstone(id)
	default:
		return res.Container, true
	}
	e.claims.Delete(id)
	return c, false
}

// PoolPrune removes the members whose key keep refuses and those that are
// not ready (not paused: stopped by an engine restart, or left half made
// by a dead node; PoolAdd holds its own member until paused), and returns
// how many ready members each key has. Members a claim holds are neither
// removed nor counted. It stops, leaving the rest, when ctx ends.
func (e *Engine) PoolPrune(ctx context.Context, keep func(key string) bool) (_ map[string]int, err error) {
	lctx, end := e.short(ctx)
	list, err := e.poolMembers(lctx, "")
	end(&err)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, c := range list {
		if _, held := e.claims.Load(c.ID); held {
			continue
		}
		key := c.Labels[labelPool]
		if c.State == container.StatePaused && keep(key) {
			counts[key]++
			continue
		}
		if err := ctx.Err(); err != nil {
			return counts, fmt.Errorf("pruning the warm pool: %w", err)
		}
		// Take it as a claim would, so no claim takes it meanwhile, and
		// look again: the list may be stale.
		cur, ok := e.takeMember(ctx, c.ID)
		if !ok {
			continue
		}
		if cur.State != nil && cur.State.Paused && keep(key) {
			counts[key]++ // made ready since the list
		} else {
			e.removePoolMember(ctx, c.ID, e.volumeOf(c.Labels, ""))
		}
		e.claims.Delete(c.ID)
	}
	return counts, nil
}

// PoolSweep removes every unclaimed member and every pool volume that no
// container uses: what a dead node left. It runs at start-up, before any
// pool work.
func (e *Engine) PoolSweep(ctx context.Context) (removed int, err error) {
	if _, err := e.PoolPrune(ctx, func(string) bool { return false }); err != nil {
		return 0, err
	}
	ctx, end := e.short(ctx)
	defer end(&err)
	f := make(client.Filters).Add("label", spaces.LabelKind+"=volume")
	if e.names.ns != "" {
		f.Add("label", spaces.LabelNamespace+"="+e.names.ns)
	}
	vols, err := e.c.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return 0, mapErr(err, "listing volumes")
	}
	for _, v := range vols.Items {
		if v.Labels[spaces.LabelNamespace] != e.names.ns || !e.isPoolVolume(v.Name) {
			continue
		}
		// No Force: a volume a container uses stays.
		if _, err := e.c.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{}); err == nil {
			removed++
			e.forgetAgent(v.Name, true)
		}
	}
	return removed, nil
}

// PoolClaim turns a ready member of key into the space spec.Name: it
// calls spec.BeforeClaim with the member's container ID (the create
// intent), renames the container to the space's, sets its host name and
// unpauses it. ok is false when the create must be a cold one: no member
// is ready, a volume of the space's name exists (a create must take that
// one up), or the claim failed and the member is gone (a member lost
// before its rename makes the claim try the next one; one whose finish
// failed is removed, and the create goes cold rather than use up the
// pool). A member that could not be removed after its rename leaves an
// error that carries spaces.ErrLeftForRecovery: the create intent must
// stay, so that recovery removes it.
func (e *Engine) PoolClaim(ctx context.Context, spec spaces.ContainerSpec, key string) (sp spaces.Space, ok bool, err error) {
	ctx, end := e.long(ctx)
	defer end(&err)
	if e.noUTS != "" || crossesNamespace(spec.Name) {
		return sp, false, nil
	}
	if _, err := e.c.VolumeInspect(ctx, e.VolumeName(spec.Name), client.VolumeInspectOptions{}); !cerrdefs.IsNotFound(err) {
		return sp, false, nil
	}
	list, err := e.poolMembers(ctx, key)
	if err != nil {
		return sp, false, nil // a cold create reports the engine's error
	}
	for _, c := range list {
		if c.State != container.StatePaused {
			continue
		}
		m, held := e.takeMember(ctx, c.ID)
		if !held {
			continue
		}
		sp, res, err := e.claimMember(ctx, spec, m)
		e.claims.Delete(m.ID)
		switch res {
		case claimed:
			return sp, true, nil
		case claimLost:
			continue
		case claimCold:
			return sp, false, nil
		}
		return sp, false, err
	}
	return sp, false, nil
}

// What claimMember did.
const (
	claimed   = iota
	claimLost // the member was not touched, or is gone: try the next
	claimCold // the member failed and was removed: a cold create
	claimErr  // the error is the create's answer
)

// claimMember is PoolClaim of the member m, which the caller holds and
// found paused, with the pool's name and of this node.
func (e *Engine) claimMember(ctx context.Context, spec spaces.ContainerSpec, m container.InspectResponse) (sp spaces.Space, _ int, err error) {
	if m.State == nil || !m.State.Paused {
		return sp, claimLost, nil
	}
	vname := e.volumeOf(m.Config.Labels, "")
	if spec.BeforeClaim != nil {
		if err := spec.BeforeClaim(m.ID); err != nil {
			return sp, claimErr, err
		}
	}
	cname := e.ContainerName(spec.Name)
	// From here on no other list acts on the member: it is this space's.
	e.poolTombstone(m.ID)
	if _, err := e.c.ContainerRename(ctx, m.ID, client.ContainerRenameOptions{NewName: cname}); err != nil {
		switch {
		case cerrdefs.IsConflict(err) || strings.Contains(err.Error(), "already in use"):
			e.poolGone.Delete(m.ID) // still a member, back in the pool
			return sp, claimErr, spaces.SpaceExists()
		case cerrdefs.IsNotFound(err):
			return sp, claimLost, nil
		}
		// The engine may have renamed it all the same (an answer lost
		// to a deadline): the member goes, whatever of its two names
		// it has now.
		e.log.Warn("renaming a pool member", "container", shortID(m.ID), "err", err)
		res, err := e.dropClaimed(ctx, m.ID, vname, cname, strings.TrimPrefix(m.Name, "/"))
		return sp, res, err
	}
	fail := func(what string, err error) (spaces.Space, int, error) {
		e.log.Warn("finishing a claimed pool member: a cold create instead", "space", spec.Name, "container", shortID(m.ID), "step", what, "err", err)
		res, derr := e.dropClaimed(ctx, m.ID, vname, cname)
		return sp, res, derr
	}
	res, err := e.c.ContainerInspect(ctx, m.ID, client.ContainerInspectOptions{})
	if err != nil {
		return fail("inspecting a claimed pool member", mapErr(err, "inspecting"))
	}
	if err := e.setHostname(res.Container, spec.Name); err != nil {
		return fail("setting the host name", err)
	}
	if _, err := e.c.ContainerUnpause(ctx, m.ID, client.ContainerUnpauseOptions{}); err != nil {
		return fail("unpausing a claimed pool member", err)
	}
	e.settlePaused(ctx, m.ID, false)
	res, err = e.c.ContainerInspect(ctx, m.ID, client.ContainerInspectOptions{})
	if err != nil {
		return fail("inspecting a claimed pool member", err)
	}
	// The member's rules went in when it started, in its own network
	// namespace, where they stay. Only the host's addresses (which the
	// block list holds) can have changed while it was paused (the egress
	// guard passes over paused containers): then they are written again.
	// Every member was made by this run of the node (the start-up sweep
	// removes older ones), so poolRules knows each.
	if v, ok := e.poolRules.Load(m.ID); !ok || !slices.Equal(v.([]netip.Addr), e.hosts.Current()) {
		if err := e.applyEgress(res.Container); err != nil {
			return fail("enforcing the egress block list", err)
		}
	}
	e.poolRules.Delete(m.ID)
	e.ids.Store(spec.Name, m.ID)
	e.forgetTarget(spec.Name)
	sp = e.fromInspect(spec.Name, res.Container)
	sp.VolumeCreated = true
	return sp, claimed, nil
}

// dropClaimed removes a member whose claim failed after (or maybe after)
// its rename, only while its container still has one of names (the
// space's, which the claim gave it, or its pool name): never a container
// that some other operation has made another space's. claimCold when it
// is gone; claimErr, with an error carrying spaces.ErrLeftForRecovery,
// when it could not be removed and may hold the space's name.
func (e *Engine) dropClaimed(ctx context.Context, id, vname string, names ...string) (int, error) {
	rctx := context.WithoutCancel(ctx)
	ictx, cancel := context.WithTimeout(rctx, e.callTimeout)
	res, err := e.c.ContainerInspect(ictx, id, client.ContainerInspectOptions{})
	cancel()
	switch {
	case cerrdefs.IsNotFound(err):
		e.removeVolume(false, vname)
		return claimCold, nil
	case err != nil:
		e.log.Error("inspecting a claimed pool member to remove it", "container", shortID(id), "err", err)
		return claimErr, errMemberLeft
	case !slices.Contains(names, strings.TrimPrefix(res.Container.Name, "/")):
		e.log.Error("a claimed pool member now holds another name: left alone", "container", shortID(id), "name", res.Container.Name)
		return claimCold, nil
	}
	if !e.removePoolMember(rctx, id, vname) {
		return claimErr, errMemberLeft
	}
	return claimCold, nil
}

// errMemberLeft is a create's answer when the pool member it claimed
// failed and could not be removed: the create intent stays, and the next
// start of the node removes it.
var errMemberLeft = fmt.Errorf("%w: %w", spaces.ErrLeftForRecovery,
	spaces.Errorf(spaces.ErrUnavailable, "Docker engine unavailable: the half-made space is removed when the node next starts"))

// PoolCounts returns how many ready (paused, unclaimed) members each key
// has, without removing any.
func (e *Engine) PoolCounts(ctx context.Context) (_ map[string]int, err error) {
	ctx, end := e.short(ctx)
	defer end(&err)
	list, err := e.poolMembers(ctx, "")
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, c := range list {
		if _, held := e.claims.Load(c.ID); !held && c.State == container.StatePaused {
			counts[c.Labels[labelPool]]++
		}
	}
	return counts, nil
}

// pooledVolume reports whether a space's container (by its labels) uses a
// pool volume rather than the volume of its own name.
func (e *Engine) pooledVolume(labels map[string]string, name string) bool {
	v := e.volumeOf(labels, name)
	return v != e.VolumeName(name) && e.isPoolVolume(v)
}

// keepTimeout bounds the copy of a destroy that keeps a pooled space's
// workspace (keepPooledWorkspace): it is not bound by the request nor by
// the long-call timeout, as a large workspace takes longer to copy.
const keepTimeout = 30 * time.Minute

// keepPooledWorkspace copies the workspace of a space claimed from the
// pool, whose container c is being removed with its volume kept, into a
// volume of the space's own name, so that a create of the name takes it
// up as it takes up any kept workspace. It first checks that the node can
// reach the workspace's folder (the new volume's is beside it), then stops
// the container so the copy is whole. The copy runs detached from the request (a client that goes away
// does not cut it short), bounded by keepTimeout. A failed copy removes
// the volume it was copying into: no partial workspace is ever kept.
func (e *Engine) keepPooledWorkspace(ctx context.Context, c container.InspectResponse, name string) (err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keepTimeout)
	defer cancel()
	wm, ok := workspaceMount(c)
	if !ok {
		return nil // nothing to keep
	}
	src, err := e.hostDir(wm.Source)
	if err != nil {
		return err
	}
	defer unix.Close(src)
	if st := c.State; st != nil && st.Running {
		if st.Paused {
			if _, err := e.c.ContainerUnpause(ctx, c.ID, client.ContainerUnpauseOptions{}); err != nil && !strings.Contains(err.Error(), "not paused") {
				return mapErr(err, "unpausing the space to stop it")
			}
		}
		timeout := 0
		if _, err := e.c.ContainerStop(ctx, c.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotModified(err) {
			return mapErr(err, "stopping the space")
		}
	}
	labels := map[string]string{spaces.LabelKind: "volume", spaces.LabelSpace: name}
	if e.names.ns != "" {
		labels[spaces.LabelNamespace] = e.names.ns
	}
	vol, err := e.c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: e.VolumeName(name), Labels: labels})
	if err != nil {
		return mapErr(err, "creating the kept workspace's volume")
	}
	done := false
	defer func() {
		if !done {
			if rerr := e.removeKeptCopy(context.WithoutCancel(ctx), name); rerr != nil {
				e.log.Error("removing the partial copy of a kept workspace", "volume", e.VolumeName(name), "err", rerr)
			}
		}
	}()
	dst, err := e.hostDir(vol.Volume.Mountpoint)
	if err != nil {
		return err
	}
	defer unix.Close(dst)
	if err := emptyTree(dst); err != nil {
		return fmt.Errorf("emptying the kept workspace's volume: %w", err)
	}
	if _, _, err := copyTree(ctx, src, dst); err != nil {
		return fmt.Errorf("copying the kept workspace: %w", err)
	}
	done = true
	return nil
}

// removeKeptCopy removes the volume of the space's own name when it
// carries this space's labels (a copy keepPooledWorkspace made): never
// another's volume that happens to have the name.
func (e *Engine) removeKeptCopy(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, e.longTimeout)
	defer cancel()
	vname := e.VolumeName(name)
	res, err := e.c.VolumeInspect(ctx, vname, client.VolumeInspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		return nil
	case err != nil:
		return mapErr(err, "inspecting the kept workspace's volume")
	}
	l := res.Volume.Labels
	if l[spaces.LabelKind] != "volume" || l[spaces.LabelSpace] != name || l[spaces.LabelNamespace] != e.names.ns {
		return nil
	}
	if _, err := e.c.VolumeRemove(ctx, vname, client.VolumeRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		return mapErr(err, "removing the kept workspace's volume")
	}
	e.deleteQuotaVolume(vname)
	return nil
}
