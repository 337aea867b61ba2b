package spaces_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/store"
)

// fakePool is a PoolEngine whose members are counts, and whose PoolKey and
// PoolAdd fail for the templates a test says. The real engine's pool runs
// in the node package's tests (node/pool_test.go); this one makes the
// refill's per-template failures happen at will.
type fakePool struct {
	*fakeEngine
	mu       sync.Mutex
	members  map[string]int  // key → ready members
	addFails map[string]bool // template → PoolAdd fails
	keyFails map[string]bool // template → PoolKey fails (a passing error)
	prunes   int
	// claim, when set, is PoolClaim.
	claim func(spaces.ContainerSpec) (spaces.Space, bool, error)
}

func (f *fakePool) PoolUnsupported() string { return "" }

func (f *fakePool) PoolKey(_ context.Context, spec spaces.ContainerSpec) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keyFails[spec.Template] {
		return "", false, errors.New("the engine did not answer")
	}
	return "k-" + spec.Template, true, nil
}

func (f *fakePool) PoolAdd(_ context.Context, spec spaces.ContainerSpec, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.addFails[spec.Template] {
		return errors.New("cannot make a member")
	}
	f.members[key]++
	return nil
}

func (f *fakePool) PoolPrune(_ context.Context, keep func(string) bool) (map[string]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prunes++
	maps.DeleteFunc(f.members, func(k string, _ int) bool { return !keep(k) })
	return maps.Clone(f.members), nil
}

func (f *fakePool) PoolCounts(context.Context) (map[string]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.members), nil
}

func (f *fakePool) PoolClaim(_ context.Context, spec spaces.ContainerSpec, _ string) (spaces.Space, bool, error) {
	if f.claim != nil {
		return f.claim(spec)
	}
	return spaces.Space{}, false, nil
}

func (f *fakePool) PoolSweep(context.Context) (int, error) { return 0, nil }

// waitFor polls cond until it holds, failing after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
	}
}

// TestPoolRefillPerTemplate: a template whose members cannot be made does
// not stop the refill of the others, and a template whose key cannot be
// had for a while (a passing engine error) keeps its members.
func TestPoolRefillPerTemplate(t *testing.T) {
	st, err := store.New(t.Context(), store.Config{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := &fakePool{fakeEngine: &fakeEngine{paused: map[string]bool{}}, members: map[string]int{},
		addFails: map[string]bool{"default": true}, keyFails: map[string]bool{}}
	svc, err := spaces.New(t.Context(), spaces.Config{Engine: eng, Store: st, DefaultImage: "def:img",
		HostCPUs: 8, HostMemory: 8 << 30, WarmPool: map[string]int{"default": 2, "offline": 2}})
	if err != nil {
		t.Fatal(err)
	}
	pool := svc.Pool()
	pool.Start(t.Context())
	t.Cleanup(pool.Close)
	count := func(key string) int {
		eng.mu.Lock()
		defer eng.mu.Unlock()
		return eng.members[key]
	}
	waitFor(t, "the offline pool to fill while the default one fails", func() bool { return count("k-offline") == 2 })

	eng.mu.Lock()
	eng.keyFails["offline"] = true
	passes := eng.prunes
	eng.mu.Unlock()
	waitFor(t, "two more refill passes", func() bool {
		eng.mu.Lock()
		defer eng.mu.Unlock()
		return eng.prunes >= passes+2
	})
	if n := count("k-offline"); n != 2 {
		t.Errorf("offline members after its key failed: %d, want 2 (kept)", n)
	}
	pool.Close()
	if n := count("k-offline"); n != 0 {
		t.Errorf("members after Close: %d", n)
	}
}

// TestPoolClaimFailure: a claim that went cold (its member lost) makes a
// cold create under a create intent of its own, which ends with the
// create; a claim whose member is left behind answers its error (503)
// and keeps the intent, so recovery removes the member.
func TestPoolClaimFailure(t *testing.T) {
	st, err := store.New(t.Context(), store.Config{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fe := &fakeEngine{paused: map[string]bool{}}
	eng := &fakePool{fakeEngine: fe, members: map[string]int{}, addFails: map[string]bool{}, keyFails: map[string]bool{}}
	svc, err := spaces.New(t.Context(), spaces.Config{Engine: eng, Store: st, DefaultImage: "def:img",
		HostCPUs: 8, HostMemory: 8 << 30, WarmPool: map[string]int{"offline": 1}})
	if err != nil {
		t.Fatal(err)
	}
	svc.Pool().Start(t.Context())
	t.Cleanup(svc.Pool().Close)
	waitFor(t, "the pool to fill", func() bool {
		eng.mu.Lock()
		defer eng.mu.Unlock()
		return eng.members["k-offline"] == 1
	})
	intents := func() []spaces.Intent {
		in, err := st.Intents(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return in
	}

	// Lost: the create is cold, and answers.
	eng.claim = func(spec spaces.ContainerSpec) (spaces.Space, bool, error) {
		if err := spec.BeforeClaim("member1"); err != nil {
			return spaces.Space{}, false, err
		}
		return spaces.Space{}, false, nil
	}
	if _, err := svc.Create(t.Context(), spaces.CallerAPIKey(), spaces.CreateRequest{Name: "cold", Template: "offline"}); err != nil {
		t.Fatalf("create after a lost member: %v", err)
	}
	fe.mu.Lock()
	cold := len(fe.created)
	fe.mu.Unlock()
	if cold != 1 {
		t.Errorf("cold creates: %d, want 1", cold)
	}
	if in := intents(); len(in) != 0 {
		t.Errorf("intents after the create: %+v", in)
	}

	// Left behind: the error, and the intent stays.
	eng.claim = func(spec spaces.ContainerSpec) (spaces.Space, bool, error) {
		if err := spec.BeforeClaim("member2"); err != nil {
			return spaces.Space{}, false, err
		}
		return spaces.Space{}, false, fmt.Errorf("%w: %w", spaces.ErrLeftForRecovery, spaces.Errorf(spaces.ErrUnavailable, "engine gone"))
	}
	_, err = svc.Create(t.Context(), spaces.CallerAPIKey(), spaces.CreateRequest{Name: "left", Template: "offline"})
	if !errors.Is(err, spaces.ErrUnavailable) {
		t.Errorf("create whose member was left: %v, want unavailable", err)
	}
	if in := intents(); len(in) != 1 || in[0].Space != "left" || in[0].PoolMember != "member2" {
		t.Errorf("intents: %+v, want the create of left with its member", in)
	}
}
