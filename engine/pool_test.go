package engine_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/engine"
	"github.com/adam91holt/clawdspace/nodetest/testimage"
	"github.com/adam91holt/clawdspace/spaces"
)

// poolEngine opens an engine in a namespace of its own for a pool test,
// whose members are all removed when the test ends, and returns the spec
// and key of its members.
func poolEngine(t *testing.T) (*engine.Engine, spaces.ContainerSpec, string) {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	e := newEngine(t, "pe"+hex.EncodeToString(b))
	if why := e.PoolUnsupported(); why != "" {
		t.Skipf("no pool on this machine: %s", why)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := e.PoolSweep(ctx); err != nil {
			t.Errorf("removing the pool: %v", err)
		}
	})
	spec := spaces.ContainerSpec{Image: testimage.TestImage, MemoryBytes: 64 << 20, CPUs: 0.5,
		NetworkMode: spaces.NetworkNone, Template: "offline"}
	key, ok, err := e.PoolKey(t.Context(), spec)
	if err != nil || !ok {
		t.Fatalf("pool key: %v %v", ok, err)
	}
	return e, spec, key
}

// addMembers makes n members of key.
func addMembers(t *testing.T, e *engine.Engine, spec spaces.ContainerSpec, key string, n int) {
	t.Helper()
	for range n {
		if err := e.PoolAdd(t.Context(), spec, key); err != nil {
			t.Fatalf("adding a pool member: %v", err)
		}
	}
}

// claim claims a member for the space name (removed when the test ends).
func claim(t *testing.T, e *engine.Engine, spec spaces.ContainerSpec, key, name string) (spaces.Space, bool, error) {
	spec.Name = name
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.Remove(ctx, name, true); err != nil && !errors.Is(err, spaces.ErrNotFound) {
			t.Errorf("removing %s: %v", name, err)
		}
	})
	return e.PoolClaim(t.Context(), spec, key)
}

// assertSpace checks that name is a running space of container id whose
// host name is its own.
func assertSpace(t *testing.T, e *engine.Engine, name, id string) {
	t.Helper()
	sp, err := e.Get(t.Context(), name)
	if err != nil || sp.ID != id || sp.Status != spaces.StatusRunning {
		t.Errorf("space %s = %+v, %v: want running, container %s", name, sp, err, id)
		return
	}
	if got := run(t, e, name, "hostname"); got != name {
		t.Errorf("host name of %s is %q", name, got)
	}
}

// TestPoolClaimStaleList: a claim whose member list was taken before
// another claim took the member never acts on it (no rename of the other
// space, no removal of its container or workspace), and goes cold; a
// prune (the drain) from such a list leaves the claimed space alone; a
// member removed between the list and the claim makes the claim take the
// next one.
func TestPoolClaimStaleList(t *testing.T) {
	e, spec, key := poolEngine(t)
	ctx := t.Context()

	// A claim lists the one member; before it acts, B claims it.
	addMembers(t, e, spec, key, 1)
	a, b := uniqueName("pa"), uniqueName("pb")
	var bSpace spaces.Space
	var once atomic.Bool
	engine.SetPoolListed(e, func(k string) {
		if k != "" && once.CompareAndSwap(false, true) {
			sp, ok, err := claim(t, e, spec, key, b)
			if !ok || err != nil {
				t.Errorf("claim of %s: %v %v", b, ok, err)
			}
			bSpace = sp
		}
	})
	if _, ok, err := claim(t, e, spec, key, a); ok || err != nil {
		t.Errorf("claim from a stale list: ok %v, err %v; want a cold create (false, nil)", ok, err)
	}
	assertSpace(t, e, b, bSpace.ID)
	if n, _ := listed(t, e, a); n != 0 {
		t.Errorf("%s exists after a claim that went cold", a)
	}
	run(t, e, b, "echo kept > /workspace/f")

	// A drain lists the pool (with a new member); before it acts, C
	// claims the member.
	addMembers(t, e, spec, key, 1)
	c := uniqueName("pc")
	var cSpace spaces.Space
	once.Store(false)
	engine.SetPoolListed(e, func(k string) {
		if k == "" && once.CompareAndSwap(false, true) {
			sp, ok, err := claim(t, e, spec, key, c)
			if !ok || err != nil {
				t.Errorf("claim of %s: %v %v", c, ok, err)
			}
			cSpace = sp
		}
	})
	if _, err := e.PoolPrune(ctx, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	assertSpace(t, e, b, bSpace.ID)
	assertSpace(t, e, c, cSpace.ID)
	if got := run(t, e, b, "cat /workspace/f"); got != "kept" {
		t.Errorf("workspace of %s: %q", b, got)
	}

	// Two members; the first listed is removed between the list and the
	// claim: the claim takes the other.
	addMembers(t, e, spec, key, 2)
	d := uniqueName("pd")
	once.Store(false)
	engine.SetPoolListed(e, func(k string) {
		if k == "" || !once.CompareAndSwap(false, true) {
			return
		}
		res, err := e.Client().ContainerList(ctx, client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("name", e.ContainerName("_pool."))})
		if err != nil || len(res.Items) != 2 {
			t.Errorf("members: %d, %v", len(res.Items), err)
			return
		}
		for _, m := range res.Items {
			if _, err := e.Client().ContainerRemove(ctx, m.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
				t.Error(err)
			}
			break
		}
	})
	sp, ok, err := claim(t, e, spec, key, d)
	if !ok || err != nil {
		t.Fatalf("claim after a member went: ok %v, err %v; want the other member", ok, err)
	}
	assertSpace(t, e, d, sp.ID)

	// Every member gone between the list and the claim: a cold create,
	// never "space not found".
	addMembers(t, e, spec, key, 1)
	f := uniqueName("pf")
	once.Store(false)
	engine.SetPoolListed(e, func(k string) {
		if k == "" || !once.CompareAndSwap(false, true) {
			return
		}
		res, _ := e.Client().ContainerList(ctx, client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("name", e.ContainerName("_pool."))})
		for _, m := range res.Items {
			_, _ = e.Client().ContainerRemove(ctx, m.ID, client.ContainerRemoveOptions{Force: true})
		}
	})
	if _, ok, err := claim(t, e, spec, key, f); ok || err != nil {
		t.Errorf("claim with every member gone: ok %v, err %v; want a cold create (false, nil)", ok, err)
	}
	engine.SetPoolListed(e, nil)
	assertSpace(t, e, b, bSpace.ID)
	assertSpace(t, e, c, cSpace.ID)
}

// TestPoolClaimConcurrent: many claims at once on a pool of two, while
// prunes run from lists that go stale: each space claimed is whole and
// its own, and none was renamed or removed under another.
func TestPoolClaimConcurrent(t *testing.T) {
	e, spec, key := poolEngine(t)
	ctx := t.Context()
	addMembers(t, e, spec, key, 2)
	const claims = 8
	names := make([]string, claims)
	ids := make([]string, claims)
	var wg sync.WaitGroup
	for i := range claims {
		names[i] = uniqueName("pr")
		wg.Go(func() {
			sp, ok, err := claim(t, e, spec, key, names[i])
			if err != nil {
				t.Errorf("claim %s: %v", names[i], err)
			}
			if ok {
				ids[i] = sp.ID
			}
		})
		wg.Go(func() {
			if _, err := e.PoolPrune(ctx, func(string) bool { return i%2 == 0 }); err != nil {
				t.Errorf("prune: %v", err)
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	claimed := 0
	for i, name := range names {
		if ids[i] == "" {
			continue
		}
		claimed++
		if seen[ids[i]] {
			t.Errorf("container %s claimed twice", ids[i])
		}
		seen[ids[i]] = true
		assertSpace(t, e, name, ids[i])
	}
	if claimed > 2 {
		t.Errorf("%d claims succeeded with 2 members", claimed)
	}
}

// TestPoolListDuringRestore: while a restore has set a pooled space's
// container aside (its name then ends in ..restore, and the container
// has no space label), no list shows a space of that name.
func TestPoolListDuringRestore(t *testing.T) {
	e, spec, key := poolEngine(t)
	ctx := t.Context()
	addMembers(t, e, spec, key, 1)
	name := uniqueName("pl")
	sp, ok, err := claim(t, e, spec, key, name)
	if !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	cname := e.ContainerName(name)
	if _, err := e.Client().ContainerRename(ctx, sp.ID, client.ContainerRenameOptions{NewName: cname + "..restore"}); err != nil {
		t.Fatal(err)
	}
	all, err := e.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if strings.Contains(s.Name, ".") {
			t.Errorf("list shows %q", s.Name)
		}
	}
	if _, err := e.Client().ContainerRename(ctx, sp.ID, client.ContainerRenameOptions{NewName: cname}); err != nil {
		t.Fatal(err)
	}
	if n, _ := listed(t, e, name); n != 1 {
		t.Errorf("%s listed %d times", name, n)
	}
}

// TestPoolDestroyRemovesKeptCopy: a destroy with the volume of a pooled
// space also removes a volume of the space's own name that carries its
// labels (what an earlier destroy that kept the workspace and failed
// left), so a later create of the name does not find an old workspace.
func TestPoolDestroyRemovesKeptCopy(t *testing.T) {
	e, spec, key := poolEngine(t)
	ctx := t.Context()
	addMembers(t, e, spec, key, 1)
	name := uniqueName("pk")
	if _, ok, err := claim(t, e, spec, key, name); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	labels := map[string]string{spaces.LabelKind: "volume", spaces.LabelSpace: name, spaces.LabelNamespace: e.Namespace()}
	if _, err := e.Client().VolumeCreate(ctx, client.VolumeCreateOptions{Name: e.VolumeName(name), Labels: labels}); err != nil {
		t.Fatal(err)
	}
	if err := e.Remove(ctx, name, true); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := e.Client().VolumeInspect(ctx, e.VolumeName(name), client.VolumeInspectOptions{}); err == nil {
		t.Errorf("volume %s left after a destroy with the volume", e.VolumeName(name))
	}
}
