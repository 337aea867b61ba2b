package spaces

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"
)

// Config holds every dependency of a Service.
type Config struct {
	Engine Engine
	Store  Store
	Clock  Clock
	Logger *slog.Logger

	// DefaultImage is used when neither the request nor the template names one.
	DefaultImage string
	// GPUImage is the image of the built-in gpu template.
	GPUImage string
	// HostCPUs bounds the cpus a space may ask for (0: no bound but the contract's).
	HostCPUs int
	// HostMemory bounds the memory a space may ask for, in bytes (0: no bound).
	HostMemory int64
	// HasGPU reports whether this node can run GPU spaces.
	HasGPU bool
	// GitTokenHosts are the hosts that get env.GITHUB_TOKEN when a create
	// clones over https (default: github.com). The token goes nowhere else.
	GitTokenHosts []string
	// NodeRun identifies this run of the node (see NodeRunEnv); intents
	// record it.
	NodeRun string
	// SeedTemplates are added at start-up when no template of their name
	// exists (e.g. the older node's CLAWDSPACE_TEMPLATES_DIR).
	SeedTemplates []Template
	// ForwardPorts is the range of node ports a forward is given when the
	// space's own port is taken or below 1024 (default 40000-40999).
	ForwardPorts [2]uint16
	// ReservedPorts are the node's own ports (the API, SSH), never given to
	// a forward.
	ReservedPorts []uint16
	// MaxPortConns bounds the open connections to one space's ports
	// (default 512).
	MaxPortConns int
	// MaxCheckpoints bounds the checkpoints of one space
	// (DefaultMaxCheckpoints when 0).
	MaxCheckpoints int
	// WarmPool is the number of spaces kept made in advance per template
	// (docs/POOL.md); none by default. The Engine must implement
	// PoolEngine.
	WarmPool map[string]int
}

// Service applies the rules of Clawdspace to an Engine and a Store.
type Service struct {
	cfg   Config
	log   *slog.Logger
	clock Clock
	locks keyedMutex
	busy  busyCounter
	// refusals limits the audit rows of refused calls.
	refusals limiter
	// fwd serialises forward changes and tells the doors about them.
	fwd forwards
	// conns counts the open port connections of each space.
	conns connCounter
	// pool is the warm pool (pool.go); nil when off.
	pool *Pool
}

// New returns a Service and makes sure the built-in templates exist.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Engine == nil || cfg.Store == nil {
		return nil, errors.New("spaces: Engine and Store are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DefaultImage == "" {
		cfg.DefaultImage = "clawdspace:latest"
	}
	if cfg.GPUImage == "" {
		cfg.GPUImage = "clawdspace-gpu:latest"
	}
	if cfg.GitTokenHosts == nil {
		cfg.GitTokenHosts = []string{"github.com"}
	}
	if cfg.ForwardPorts == [2]uint16{} {
		cfg.ForwardPorts = [2]uint16{40000, 40999}
	}
	if cfg.ForwardPorts[0] == 0 || cfg.ForwardPorts[1] < cfg.ForwardPorts[0] {
		return nil, fmt.Errorf("spaces: bad forward port range %d-%d", cfg.ForwardPorts[0], cfg.ForwardPorts[1])
	}
	if cfg.MaxPortConns <= 0 {
		cfg.MaxPortConns = 512
	}
	s := &Service{cfg: cfg, log: cfg.Logger, clock: cfg.Clock}
	s.fwd.changed = make(chan struct{})
	if len(cfg.WarmPool) > 0 {
		pe, ok := cfg.Engine.(PoolEngine)
		if !ok {
			return nil, errors.New("spaces: a warm pool needs an Engine that implements PoolEngine")
		}
		for tpl := range cfg.WarmPool {
			if err := ValidateTemplateName(tpl); err != nil {
				return nil, fmt.Errorf("warm pool: %w", err)
			}
		}
		s.pool = newPool(s, pe, cfg.WarmPool)
	}
	for _, t := range cfg.SeedTemplates {
		if err := cfg.Store.EnsureTemplate(ctx, t); err != nil {
			return nil, fmt.Errorf("adding template %s: %w", t.Name, err)
		}
	}
	for _, t := range BuiltinTemplates(cfg.GPUImage) {
		var err error
		if t.Managed {
			err = cfg.Store.PutTemplate(ctx, t)
		} else {
			err = cfg.Store.EnsureTemplate(ctx, t)
		}
		if err != nil {
			return nil, fmt.Errorf("installing built-in template %s: %w", t.Name, err)
		}
	}
	return s, nil
}

// List returns the spaces c may read, sorted by name, with their last
// activity.
func (s *Service) List(ctx context.Context, c Caller) ([]Space, error) {
	if err := s.authorize(ctx, c, "", ActRead); err != nil {
		return nil, err
	}
	list, err := s.cfg.Engine.List(ctx)
	if err != nil {
		return nil, err
	}
	act, err := s.cfg.Store.Activity(ctx)
	if err != nil {
		return nil, err
	}
	mine := list[:0]
	for _, sp := range list {
		if c.Can(ActRead, sp.Name) {
			s.applyActivity(&sp, act[sp.Name])
			mine = append(mine, sp)
		}
	}
	list = mine
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return list, nil
}

// Count returns how many spaces the node has and how many run: one engine
// list, without the activity List adds.
func (s *Service) Count(ctx context.Context, c Caller) (total, running int, err error) {
	if err := s.authorize(ctx, c, "", ActRead, ActNode); err != nil {
		return 0, 0, err
	}
	list, err := s.cfg.Engine.List(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, sp := range list {
		if sp.Status == StatusRunning {
			running++
		}
	}
	return len(list), running, nil
}

// applyActivity fills what the engine's list does not report.
func (s *Service) applyActivity(sp *Space, a SpaceActivity) {
	if sp.Started.IsZero() {
		sp.Started = a.StartedAt
		if sp.Started.IsZero() {
			sp.Started = sp.Created
		}
	}
	sp.LastActivity = a.LastActivity
	if sp.LastActivity.IsZero() || sp.LastActivity.Before(sp.Started) {
		sp.LastActivity = latest(sp.Started, sp.Created)
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Get returns one space.
func (s *Service) Get(ctx context.Context, c Caller, name string) (Space, error) {
	if err := s.authorize(ctx, c, name, ActRead); err != nil {
		return Space{}, err
	}
	if err := ValidateName(name); err != nil {
		return Space{}, SpaceNotFound()
	}
	sp, err := s.cfg.Engine.Get(ctx, name)
	if err != nil {
		return Space{}, err
	}
	act, err := s.cfg.Store.SpaceActivity(ctx, name)
	if err != nil {
		return Space{}, err
	}
	s.applyActivity(&sp, act)
	return sp, nil
}

// CreateRequest is a request for a new space. Zero fields are filled from
// the template, then from node defaults.
type CreateRequest struct {
	Name     string
	Memory   string
	CPUs     *float64 // nil: from the template
	GPU      *bool    // nil: from the template
	Image    string
	Template string
	Env      map[string]string

	// Convenience set-up after the space starts.
	EnvFileText   *string
	EnvFileBase64 *string
	EnvFilePath   string
	RepoURL       string
	RepoBranch    string
	RepoDest      string
}

// Create validates req, applies its template and makes the space.
func (s *Service) Create(ctx context.Context, c Caller, req CreateRequest) (Space, error) {
	if err := s.authorize(ctx, c, req.Name, ActCreate); err != nil {
		return Space{}, err
	}
	spec, tpl, err := s.resolve(ctx, req)
	if err != nil {
		return Space{}, err
	}
	envFile, err := NewEnvFile(req.EnvFileText, req.EnvFileBase64, req.EnvFilePath)
	if err != nil {
		return Space{}, err
	}
	repo, err := NewRepo(req.RepoURL, req.RepoBranch, req.RepoDest, tpl)
	if err != nil {
		return Space{}, err
	}
	unlock := s.locks.Lock(spec.Name)
	defer unlock()
	meta := map[string]any{"template": spec.Template, "image": spec.Image, "memory": spec.MemoryBytes, "cpus": spec.CPUs}
	if spec.GPU {
		meta["gpu"] = true
	}
	if len(req.Env) > 0 {
		// Names only: values may be secrets and are never stored.
		keys := make([]string, 0, len(req.Env))
		for k := range req.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		meta["envKeys"] = keys
	}
	if envFile != nil {
		meta["envFilePath"] = DisplayPath(envFile.Path)
	}
	if repo != nil {
		meta["repoUrl"], meta["repoDest"] = redactURL(repo.URL), repo.Dest
	}
	if err := s.audit(ctx, c, spec.Name, EventCreate, meta); err != nil {
		return Space{}, err
	}
	// The create intent is recorded before the engine makes anything and
	// cleared once the node answers, so a crash in between is undone at
	// the next start (Recover).
	began := false
	spec.BeforeCreate = func(volumeExisted bool) error {
		began = true
		return s.beginIntent(ctx, Intent{Space: spec.Name, Kind: IntentCreate, Image: spec.Image, VolumeExisted: volumeExisted})
	}
	sp, pooled, err := Space{}, false, error(nil)
	if s.pool != nil {
		sp, pooled, err = s.pool.claim(ctx, spec, func(member string) error {
			began = true
			return s.beginIntent(ctx, Intent{Space: spec.Name, Kind: IntentCreate, Image: spec.Image, PoolMember: member})
		})
	}
	switch {
	case err != nil:
	case pooled:
		s.log.Debug("created a space from the warm pool", "space", spec.Name, "template", spec.Template)
	default:
		sp, err = s.cfg.Engine.Create(ctx, spec)
	}
	if err != nil {
		if began && !errors.Is(err, ErrLeftForRecovery) {
			s.endIntent(ctx, spec.Name)
		}
		return Space{}, err
	}
	if err := s.setUp(ctx, sp.Name, req.Env, envFile, repo); err != nil {
		// Leave no half-made space: remove the container, and the volume
		// unless it held an earlier space's workspace. If that fails too,
		// the intent stays and the next start removes them.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if rerr := s.cfg.Engine.Remove(cctx, sp.Name, sp.VolumeCreated); rerr != nil {
			s.log.Error("removing a space whose set-up failed", "space", sp.Name, "err", rerr)
		} else {
			s.endIntent(ctx, spec.Name)
		}
		return Space{}, err
	}
	s.endIntent(ctx, spec.Name)
	now := s.clock.Now()
	if err := s.cfg.Store.MarkStarted(ctx, sp.Name, now); err != nil {
		s.log.Error("recording start", "space", sp.Name, "err", err)
	}
	sp.LastActivity = now
	if sp.Started.IsZero() {
		sp.Started = now
	}
	return sp, nil
}

// resolve turns a request and its template into a ContainerSpec.
func (s *Service) resolve(ctx context.Context, req CreateRequest) (ContainerSpec, Template, error) {
	if err := ValidateName(req.Name); err != nil {
		return ContainerSpec{}, Template{}, err
	}
	tplName := strings.ToLower(strings.TrimSpace(req.Template))
	var tpl Template
	if tplName != "" {
		if err := ValidateTemplateName(tplName); err != nil {
			return ContainerSpec{}, Template{}, err
		}
		t, err := s.cfg.Store.Template(ctx, tplName)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return ContainerSpec{}, Template{}, AboutField(ErrNotFound, FieldTemplate, "Template not found: %s", tplName)
			}
			return ContainerSpec{}, Template{}, err
		}
		tpl = t
	} else {
		t, err := s.cfg.Store.Template(ctx, DefaultTemplate)
		switch {
		case err == nil:
			tpl, tplName = t, DefaultTemplate
		case errors.Is(err, ErrNotFound):
			// The owner deleted the default template: the built-in one's
			// settings apply, its egress block list included.
			tpl = BuiltinTemplates(s.cfg.GPUImage)[0]
			tpl.Name = ""
		default:
			return ContainerSpec{}, Template{}, err
		}
	}

	memory := firstNonEmpty(req.Memory, tpl.Resources.Memory, "2g")
	memBytes, err := ParseMemory(memory)
	if err != nil {
		return ContainerSpec{}, Template{}, err
	}
	gpu := tpl.Resources.GPU
	if req.GPU != nil {
		gpu = *req.GPU
	}
	if gpu && !s.cfg.HasGPU {
		return ContainerSpec{}, Template{}, AboutField(ErrInvalid, FieldGPU, "this node has no GPU; create GPU spaces on a node with one")
	}
	if s.cfg.HostMemory > 0 && memBytes > s.cfg.HostMemory {
		return ContainerSpec{}, Template{}, FieldErrorf(ErrInvalid, FieldMemory, "%s is more than this node has (%d MiB)", memory, s.cfg.HostMemory>>20)
	}
	cpus := 1.0
	switch {
	case req.CPUs != nil:
		cpus = *req.CPUs
	case tpl.Resources.CPUs != nil:
		cpus = *tpl.Resources.CPUs
	}
	if err := ValidateCPUs(cpus, s.cfg.HostCPUs); err != nil {
		return ContainerSpec{}, Template{}, err
	}
	image := strings.TrimSpace(req.Image)
	if image == "" {
		image = tpl.Resources.Image
	}
	if image == "" {
		image = s.cfg.DefaultImage
		if gpu {
			image = s.cfg.GPUImage
		}
	}
	if err := ValidateImage(image); err != nil {
		return ContainerSpec{}, Template{}, err
	}
	if err := ValidateEnv(req.Env); err != nil {
		return ContainerSpec{}, Template{}, err
	}
	env := make([]string, 0, len(req.Env))
	for k, v := range req.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return ContainerSpec{
		Name:              req.Name,
		Image:             image,
		MemoryBytes:       memBytes,
		CPUs:              cpus,
		GPU:               gpu,
		Env:               env,
		NetworkMode:       tpl.NetworkMode(),
		BlockCIDRs:        tpl.EgressBlocks(),
		HostPorts:         tpl.HostPorts(),
		ReadOnlyRootfs:    tpl.ReadOnlyRootfs(),
		WorkspaceMaxBytes: tpl.WorkspaceMaxBytes(),
		Template:          tplName,
	}, tpl, nil
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if strings.TrimSpace(s) != "" {
			return strings.TrimSpace(s)
		}
	}
	return ""
}

// Destroy removes a space, and its volume when removeVolume is set.
func (s *Service) Destroy(ctx context.Context, c Caller, name string, removeVolume bool) error {
	if err := s.authorize(ctx, c, name, ActDestroy); err != nil {
		return err
	}
	if err := ValidateName(name); err != nil {
		return SpaceNotFound()
	}
	unlock := s.locks.Lock(name)
	defer unlock()
	if err := s.audit(ctx, c, name, EventDestroy, map[string]any{"removeVolume": removeVolume}); err != nil {
		return err
	}
	// A crash before the answer leaves the intent: the next start
	// finishes the destroy (Recover).
	if err := s.beginIntent(ctx, Intent{Space: name, Kind: IntentDestroy, RemoveVolume: removeVolume}); err != nil {
		return err
	}
	defer s.endIntent(ctx, name)
	if err := s.cfg.Engine.Remove(ctx, name, removeVolume); err != nil {
		return err
	}
	if err := s.cfg.Store.Forget(ctx, name); err != nil {
		s.log.Error("forgetting activity", "space", name, "err", err)
	}
	s.dropForwards(ctx, name)
	return nil
}

// Pause freezes a space (the contract's "stop").
func (s *Service) Pause(ctx context.Context, c Caller, name string) error {
	if err := s.authorize(ctx, c, name, ActExec); err != nil {
		return err
	}
	if err := ValidateName(name); err != nil {
		return SpaceNotFound()
	}
	unlock := s.locks.Lock(name)
	defer unlock()
	if err := s.audit(ctx, c, name, EventPause, nil); err != nil {
		return err
	}
	return s.cfg.Engine.Pause(ctx, name)
}

// Start resumes a paused space or starts a stopped one.
func (s *Service) Start(ctx context.Context, c Caller, name string) error {
	if err := s.authorize(ctx, c, name, ActExec); err != nil {
		return err
	}
	if err := ValidateName(name); err != nil {
		return SpaceNotFound()
	}
	unlock := s.locks.Lock(name)
	defer unlock()
	if err := s.audit(ctx, c, name, EventStart, nil); err != nil {
		return err
	}
	return s.resumeLocked(ctx, name)
}

// resumingOnce runs op, and once more after resuming the space when op
// found it paused or stopped (ErrNotRunning).
func (s *Service) resumingOnce(ctx context.Context, name string, op func() error) error {
	err := op()
	if !errors.Is(err, ErrNotRunning) {
		return err
	}
	unlock := s.locks.Lock(name)
	err = s.resumeLocked(ctx, name)
	unlock()
	if err != nil {
		return err
	}
	return op()
}

func (s *Service) resumeLocked(ctx context.Context, name string) error {
	if err := s.cfg.Engine.Resume(ctx, name); err != nil {
		return err
	}
	s.touch(ctx, name)
	return nil
}

// truncate cuts s to at most n bytes, at a character boundary, marking
// the cut.
func truncate(s string, n int) string {
	if cut, ok := truncateUTF8(s, n); ok {
		return cut + "…"
	}
	return s
}

// Stats samples a space's resource usage.
func (s *Service) Stats(ctx context.Context, c Caller, name string) (Stats, error) {
	if err := s.authorize(ctx, c, name, ActRead); err != nil {
		return Stats{}, err
	}
	if err := ValidateName(name); err != nil {
		return Stats{}, SpaceNotFound()
	}
	return s.cfg.Engine.Stats(ctx, name)
}

// EngineInfo describes the engine.
func (s *Service) EngineInfo(ctx context.Context, c Caller) (EngineInfo, error) {
	if err := s.authorize(ctx, c, "", ActRead, ActNode); err != nil {
		return EngineInfo{}, err
	}
	return s.cfg.Engine.Info(ctx)
}

// HasGPU reports whether this node runs GPU spaces.
func (s *Service) HasGPU() bool { return s.cfg.HasGPU }

func (s *Service) touch(ctx context.Context, name string) {
	if err := s.cfg.Store.Touch(ctx, name, s.clock.Now()); err != nil {
		s.log.Error("recording activity", "space", name, "err", err)
	}
}

// audit writes one audit row before the action it describes.
func (s *Service) audit(ctx context.Context, c Caller, space, typ string, meta map[string]any) error {
	err := s.cfg.Store.Record(ctx, Event{Time: s.clock.Now(), Space: space, Type: typ, Actor: c.Actor, Meta: c.auditMeta(meta)})
	if err != nil {
		return fmt.Errorf("recording audit event %s: %w", typ, err)
	}
	return nil
}
