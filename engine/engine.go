// Package engine runs spaces on a Docker engine through the Engine API
// (github.com/moby/moby/client). It implements spaces.Engine and follows the
// Docker conventions of the wire contract, so spaces made by the older node
// are adopted as they are.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/spaces"
)

// Config configures the Docker adapter.
type Config struct {
	// Host is the engine address (e.g. unix:///var/run/docker.sock). Empty
	// means the DOCKER_HOST convention, resolved by the caller.
	Host   string
	Logger *slog.Logger
	// Egress enforces templates' block lists in each space's network
	// namespace (see EgressSupported).
	Egress bool
	// AllowUnenforcedEgress lets spaces with a network be made without
	// Egress (no block list, no isolation from other spaces); by default
	// such a create is refused.
	AllowUnenforcedEgress bool
	// HostAddrInterval is how often the host's addresses are re-read for
	// the block rules (DefaultHostAddrInterval when 0).
	HostAddrInterval time.Duration
	// WorkspaceQuotaDir is a folder on btrfs with quotas enabled (see
	// CheckWorkspaceQuotaDir) where size-limited workspaces are made.
	WorkspaceQuotaDir string
	// AllowUnenforcedWorkspaceSize lets spaces whose template limits the
	// workspace size be made although this engine cannot enforce it.
	AllowUnenforcedWorkspaceSize bool
	// Namespace lets several nodes share one engine: each sees and touches
	// only the spaces of its own namespace (see ValidateNamespace for the
	// form and namespace.go for the names). Empty is the default namespace,
	// with the wire contract's names and the older node's spaces.
	Namespace string
	// FilesInSpace makes file operations run in the space as its user even
	// where the node could act on the workspace from the host (see
	// workspace.go); for tests of that path and for nodes that prefer it.
	FilesInSpace bool
}

// Engine is a spaces.Engine backed by a Docker engine.
type Engine struct {
	c     *client.Client
	log   *slog.Logger
	names names
	// ids maps a space name to the ID of a container whose labels were
	// checked, so hot paths act on a verified space without an inspect and
	// never on a foreign container that happens to have the same name.
	ids sync.Map
	// verifiedImages holds IDs of images known to run a space's command.
	verifiedImages  sync.Map
	egress          bool
	allowUnenforced bool
	allowAnySize    bool
	quotaDir        string
	// hosts holds the host's addresses that block lists add (see GuardEgress).
	hosts *HostAddrs
	// rulesMu serialises writes of spaces' nftables tables.
	rulesMu sync.Mutex
	// gates keeps pauses out of the window between an exec's create and
	// start (see Pause).
	gates gateMap
	// run identifies this run of the node; every exec carries it (strays.go).
	run string
	// filesInSpace: see Config.FilesInSpace.
	filesInSpace bool
}

var _ spaces.Engine = (*Engine)(nil)

// New connects to the engine and negotiates the API version, so it works with
// Debian's Engine 20.10 (API 1.41) as well as current engines.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if err := ValidateNamespace(cfg.Namespace); err != nil {
		return nil, err
	}
	opts := []client.Opt{client.WithAPIVersionNegotiation()}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	c, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating docker client: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		c.Close()
		return nil, fmt.Errorf("reaching the Docker engine at %s: %w", c.DaemonHost(), err)
	}
	e := &Engine{c: c, log: cfg.Logger, names: newNames(cfg.Namespace), egress: cfg.Egress,
		allowUnenforced: cfg.AllowUnenforcedEgress, allowAnySize: cfg.AllowUnenforcedWorkspaceSize, quotaDir: cfg.WorkspaceQuotaDir, run: RunID(),
		filesInSpace: cfg.FilesInSpace}
	e.hosts = NewHostAddrs(cfg.HostAddrInterval, cfg.Logger, e.reconcileEgress)
	return e, nil
}

// Client returns the underlying Docker client, for benchmarks that compare
// the node against the raw SDK.
func (e *Engine) Client() *client.Client { return e.c }

// Close releases the client.
func (e *Engine) Close() error { return e.c.Close() }

// mapErr turns engine errors into domain errors. what says what was being
// done, for the log of real failures.
func mapErr(err error, what string) error {
	if err == nil {
		return nil
	}
	var de *spaces.Error
	switch {
	case errors.As(err, &de):
		return err
	case cerrdefs.IsNotFound(err):
		return spaces.SpaceNotFound()
	case cerrdefs.IsConflict(err) && isNotRunning(err):
		return fmt.Errorf("%s: %w", what, spaces.ErrNotRunning)
	case cerrdefs.IsConflict(err):
		return spaces.Errorf(spaces.ErrConflict, "%s", engineMessage(err))
	case cerrdefs.IsInvalidArgument(err):
		return spaces.Errorf(spaces.ErrInvalid, "%s", engineMessage(err))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// spaceID returns the container ID of a space, from the cache when it was
// verified before. cached says whether it came from the cache.
func (e *Engine) spaceID(ctx context.Context, name string) (id string, cached bool, err error) {
	if v, ok := e.ids.Load(name); ok {
		return v.(string), true, nil
	}
	c, err := e.inspectSpace(ctx, name)
	return c.ID, false, err
}

// inspectSpace inspects a space by its container name, refuses a
// container that is not one of this namespace's spaces, and remembers
// the verified ID.
func (e *Engine) inspectSpace(ctx context.Context, name string) (container.InspectResponse, error) {
	res, err := e.c.ContainerInspect(ctx, e.ContainerName(name), client.ContainerInspectOptions{})
	if err != nil {
		return container.InspectResponse{}, mapErr(err, "inspecting space")
	}
	if !e.isSpace(res.Container.Config) {
		return container.InspectResponse{}, spaces.SpaceNotFound()
	}
	e.ids.Store(name, res.Container.ID)
	return res.Container, nil
}

// onSpace runs op on the container of a space. When a cached ID turns out
// stale (the container was replaced), it looks the space up again once.
func (e *Engine) onSpace(ctx context.Context, name string, op func(id string) error) error {
	id, cached, err := e.spaceID(ctx, name)
	if err != nil {
		return err
	}
	err = op(id)
	if cached && (isNoSuchContainer(err) || errors.Is(err, spaces.SpaceNotFound())) {
		e.ids.CompareAndDelete(name, id)
		if id, _, err = e.spaceID(ctx, name); err != nil {
			return err
		}
		err = op(id)
	}
	return err
}

func isNotRunning(err error) bool {
	m := err.Error()
	return strings.Contains(m, "is paused") || strings.Contains(m, "is not running") || strings.Contains(m, "is restarting")
}

// engineMessage strips the SDK's prefixes so clients see the engine's words.
func engineMessage(err error) string {
	m := err.Error()
	if i := strings.LastIndex(m, "Error response from daemon: "); i >= 0 {
		m = m[i+len("Error response from daemon: "):]
	}
	return m
}

func statusOf(state container.ContainerState) spaces.Status {
	switch state {
	case container.StateRunning, container.StateRestarting:
		return spaces.StatusRunning
	case container.StatePaused:
		return spaces.StatusPaused
	}
	return spaces.StatusStopped
}

// shortID is the 12-character form of a container ID.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 2000 {
		return time.Time{}
	}
	return t.UTC()
}

func formatCPUs(c float64) string { return strconv.FormatFloat(c, 'f', -1, 64) }

// gateMap is a reader-writer lock per container: execs that are starting
// hold it shared, a pause holds it exclusively.
type gateMap struct {
	mu sync.Mutex
	m  map[string]*gate
}

type gate struct {
	sync.RWMutex
	refs int
}

func (g *gateMap) get(id string) *gate {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = make(map[string]*gate)
	}
	x := g.m[id]
	if x == nil {
		x = &gate{}
		g.m[id] = x
	}
	x.refs++
	return x
}

func (g *gateMap) put(id string, x *gate) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if x.refs--; x.refs == 0 {
		delete(g.m, id)
	}
}

func (g *gateMap) rlock(id string) (unlock func()) {
	x := g.get(id)
	x.RLock()
	return func() { x.RUnlock(); g.put(id, x) }
}

func (g *gateMap) lock(id string) (unlock func()) {
	x := g.get(id)
	x.Lock()
	return func() { x.Unlock(); g.put(id, x) }
}
