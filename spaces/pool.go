package spaces

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// The warm pool (docs/POOL.md): per template, a number of spaces made in
// advance with the template's defaults, paused, that a create claims and
// finishes (name, host name) instead of making a space from nothing. They
// are refilled in the background after each claim, removed when the node
// shuts down, and never listed as spaces. A create that needs what a
// member cannot change after Docker made it (other resources, env, a kept
// workspace) is a cold create.

// PoolEngine is what the warm pool needs of the engine.
type PoolEngine interface {
	// PoolUnsupported says why the engine cannot finish pooled spaces;
	// "" when it can.
	PoolUnsupported() string
	// PoolKey identifies what a member made for spec is: equal keys
	// differ in nothing fixed when the engine creates a space. ok is false
	// for a spec never pooled.
	PoolKey(ctx context.Context, spec ContainerSpec) (key string, ok bool, err error)
	// PoolAdd makes one paused member of key for spec (its name ignored).
	PoolAdd(ctx context.Context, spec ContainerSpec, key string) error
	// PoolPrune removes the members whose key keep refuses and those not
	// ready, and returns how many ready members each key has.
	PoolPrune(ctx context.Context, keep func(key string) bool) (map[string]int, error)
	// PoolCounts returns how many ready members each key has.
	PoolCounts(ctx context.Context) (map[string]int, error)
	// PoolClaim turns a ready member of key into the space spec.Name,
	// calling spec.BeforeClaim first. ok is false, with nothing done, when
	// none is ready or a volume of the space's name exists.
	PoolClaim(ctx context.Context, spec ContainerSpec, key string) (Space, bool, error)
	// PoolSweep removes what a dead node's pool left: every unclaimed
	// member and the pool volumes no container uses.
	PoolSweep(ctx context.Context) (int, error)
}

// PoolStatus is one template's pool as the system endpoint reports it.
type PoolStatus struct {
	Template string
	Size     int
	Ready    int
}

// Pool keeps the warm pool of a Service full: a background loop that
// refills it after claims (one member at a time, backing off while the
// engine fails) and drains it on Close.
type Pool struct {
	svc   *Service
	eng   PoolEngine
	sizes map[string]int
	log   *slog.Logger
	kick  chan struct{}

	mu   sync.Mutex
	keys map[string]string // template → key of its last pass

	// tpls is each template's refill state; only the loop uses it.
	tpls map[string]*poolTemplate

	loopMu sync.Mutex
	cancel context.CancelFunc
	closed bool
	wg     sync.WaitGroup

	unsupported sync.Once
}

// Pool refill timing: a pass at least every poolInterval (templates and
// images may change), and after an engine error a wait that doubles from
// poolBackoff up to poolMaxBackoff.
const (
	poolInterval   = 30 * time.Second
	poolBackoff    = time.Second
	poolMaxBackoff = time.Minute
	// poolDrainTimeout bounds Close's removal of the members.
	poolDrainTimeout = 2 * time.Minute
)

// newPool returns the pool of s for sizes (template → members), nil when
// every size is 0.
func newPool(s *Service, eng PoolEngine, sizes map[string]int) *Pool {
	sizes = maps.Clone(sizes)
	maps.DeleteFunc(sizes, func(_ string, n int) bool { return n <= 0 })
	if len(sizes) == 0 {
		return nil
	}
	return &Pool{svc: s, eng: eng, sizes: sizes, log: s.log, kick: make(chan struct{}, 1), keys: map[string]string{},
		tpls: map[string]*poolTemplate{}}
}

// poolTemplate is the refill state of one template: what its last good
// pass resolved, and its own back-off, so that a template that fails does
// not hold the others up.
type poolTemplate struct {
	key     string
	spec    ContainerSpec
	backoff time.Duration
	retry   time.Time // no member is made for it before
}

// failed starts or doubles t's back-off after err.
func (p *Pool) failed(tpl string, t *poolTemplate, err error) {
	t.backoff = min(max(2*t.backoff, poolBackoff), poolMaxBackoff)
	t.retry = time.Now().Add(t.backoff)
	p.log.Warn("refilling the warm pool", "template", tpl, "err", err, "retry in", t.backoff)
}

// Pool returns the service's warm pool, nil when none is configured: the
// node runs it with its other background loops.
func (s *Service) Pool() *Pool { return s.pool }

// Start runs the refill loop until Close or until ctx ends.
func (p *Pool) Start(ctx context.Context) {
	p.loopMu.Lock()
	defer p.loopMu.Unlock()
	if p.cancel != nil || p.closed {
		return
	}
	if why := p.eng.PoolUnsupported(); why != "" {
		p.log.Warn("the warm pool is off: every create is a cold create", "why", why)
		p.closed = true
		return
	}
	ctx, p.cancel = context.WithCancel(ctx)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.run(ctx)
	}()
}

// Close stops the loop and drains the pool: every unclaimed member is
// removed with its volume. Safe to call twice.
func (p *Pool) Close() {
	p.loopMu.Lock()
	cancel, started := p.cancel, p.cancel != nil && !p.closed
	p.closed = true
	p.loopMu.Unlock()
	if cancel != nil {
		cancel()
	}
	p.wg.Wait()
	if !started {
		return
	}
	// The drain as a whole is bounded, however many members a hung
	// engine leaves: what it does not remove, the next start's sweep does.
	ctx, stop := context.WithTimeout(context.Background(), poolDrainTimeout)
	defer stop()
	if _, err := p.eng.PoolPrune(ctx, func(string) bool { return false }); err != nil {
		p.log.Error("draining the warm pool", "err", err)
	}
}

func (p *Pool) run(ctx context.Context) {
	backoff := time.Duration(0)
	for {
		wait, err := p.fill(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, poolBackoff), poolMaxBackoff)
			wait = backoff
			p.log.Warn("refilling the warm pool", "err", err, "retry in", backoff)
		} else {
			backoff = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-p.kick:
			if backoff > 0 {
				// No refill storm while the engine fails: a claim does
				// not cut the wait short. (A template in its own
				// back-off is passed over by the pass a claim wakes.)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// fill removes the members no template wants any more and makes the
// missing ones, one at a time. Each template fails on its own: one that
// cannot be resolved or whose members cannot be made backs off while the
// others are refilled; one whose resolve failed for a passing reason (the
// store, the engine) keeps its last key, so its members stay. It returns
// how long to wait for the next pass (sooner than poolInterval when a
// template's back-off ends first), and an error when the engine failed as
// a whole (the prune).
func (p *Pool) fill(ctx context.Context) (time.Duration, error) {
	keys := map[string]string{}
	for _, tpl := range slices.Sorted(maps.Keys(p.sizes)) {
		t := p.tpls[tpl]
		if t == nil {
			t = &poolTemplate{}
			p.tpls[tpl] = t
		}
		spec, _, err := p.svc.resolve(ctx, CreateRequest{Name: "pool", Template: tpl})
		key, ok := "", false
		if err == nil {
			key, ok, err = p.eng.PoolKey(ctx, spec)
		}
		switch {
		case err != nil && (errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid)):
			p.log.Warn("warm pool template cannot be used", "template", tpl, "err", err)
			t.key = ""
			continue
		case err != nil:
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			if t.key != "" {
				keys[tpl] = t.key // its members stay until it resolves again
			}
			p.failed(tpl, t, err)
			continue
		case !ok:
			p.log.Warn("warm pool template is never pooled (GPU, workspace size limit, or image missing)", "template", tpl)
			t.key = ""
			continue
		}
		t.key, t.spec = key, spec
		keys[tpl] = key
	}
	p.mu.Lock()
	p.keys = keys
	p.mu.Unlock()
	wanted := map[string]int{}
	for tpl, key := range keys {
		wanted[key] += p.sizes[tpl]
	}
	counts, err := p.eng.PoolPrune(ctx, func(key string) bool { return wanted[key] > 0 })
	if err != nil {
		return 0, err
	}
	now := time.Now()
	for _, tpl := range slices.Sorted(maps.Keys(keys)) {
		t := p.tpls[tpl]
		if now.Before(t.retry) {
			continue // in its back-off
		}
		ok := true
		for counts[t.key] < wanted[t.key] {
			if err := p.eng.PoolAdd(ctx, t.spec, t.key); err != nil {
				if ctx.Err() != nil {
					return 0, ctx.Err()
				}
				p.failed(tpl, t, err)
				ok = false
				break
			}
			counts[t.key]++
		}
		if ok {
			t.backoff = 0
		}
	}
	wait := poolInterval
	for _, t := range p.tpls {
		if d := time.Until(t.retry); d > 0 {
			wait = min(wait, d)
		}
	}
	return wait, nil
}

// claim makes the space of spec from a ready member, calling before (the
// create intent) first. ok is false when the create must be a cold one.
func (p *Pool) claim(ctx context.Context, spec ContainerSpec, before func(member string) error) (Space, bool, error) {
	if len(spec.Env) > 0 {
		return Space{}, false, nil // Docker cannot add env to a container
	}
	if why := p.eng.PoolUnsupported(); why != "" {
		p.unsupported.Do(func() { p.log.Warn("creates do not use the warm pool", "why", why) })
		return Space{}, false, nil
	}
	key, ok, err := p.eng.PoolKey(ctx, spec)
	if err != nil || !ok || !p.pooled(key) {
		return Space{}, false, nil // a cold create reports the engine's error
	}
	spec.BeforeClaim = before
	sp, ok, err := p.eng.PoolClaim(ctx, spec, key)
	// Also when it went cold: a claim that failed may have removed a
	// member, or found none ready. (The loop's back-off keeps a failing
	// engine from a refill storm.)
	p.refill()
	return sp, ok, err
}

// pooled reports whether the last refill made members of key.
func (p *Pool) pooled(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range p.keys {
		if k == key {
			return true
		}
	}
	return false
}

// refill wakes the loop.
func (p *Pool) refill() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// PoolStatus returns each template's warm pool (none when the node keeps
// none), for those who may read the node.
func (s *Service) PoolStatus(ctx context.Context, c Caller) ([]PoolStatus, error) {
	if err := s.authorize(ctx, c, "", ActRead, ActNode); err != nil {
		return nil, err
	}
	if s.pool == nil {
		return nil, nil
	}
	return s.pool.status(ctx)
}

// status returns the configured size and ready members of each template.
func (p *Pool) status(ctx context.Context) ([]PoolStatus, error) {
	counts, err := p.eng.PoolCounts(ctx)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	keys := maps.Clone(p.keys)
	p.mu.Unlock()
	out := make([]PoolStatus, 0, len(p.sizes))
	for _, tpl := range slices.Sorted(maps.Keys(p.sizes)) {
		st := PoolStatus{Template: tpl, Size: p.sizes[tpl]}
		if key, ok := keys[tpl]; ok {
			st.Ready = min(counts[key], st.Size)
		}
		out = append(out, st)
	}
	return out, nil
}

// sweepPool removes what the pool of a dead run of the node left.
func (s *Service) sweepPool(ctx context.Context) {
	pe, ok := s.cfg.Engine.(PoolEngine)
	if !ok {
		return
	}
	n, err := pe.PoolSweep(ctx)
	if err != nil {
		s.log.Warn("removing warm pool members an earlier run left", "err", err)
		return
	}
	if n > 0 {
		s.log.Info("removed warm pool volumes an earlier run left", "count", n)
	}
}
