// Package engine runs spaces on a Docker engine through the Engine API
// (github.com/moby/moby/client). It implements spaces.Engine and follows the
// Docker conventions of the wire contract, so spaces made by the older node
// are adopted as they are.
package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"golang.org/x/net/http2"

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
	// PortsByAddress makes DialPort dial a space's address on its network
	// and ListeningPorts read its sockets with an exec, as a node that
	// cannot enter spaces' network namespaces does (see ports.go), even
	// where it could; for tests of that path.
	PortsByAddress bool
	// CallTimeout bounds calls that the engine answers at once (inspect,
	// list, exec create, pause); LongCallTimeout those that do real work
	// (create, start, remove). An engine that does not answer in time
	// gives spaces.ErrUnavailable. Defaults: DefaultCallTimeout and
	// DefaultLongCallTimeout.
	CallTimeout     time.Duration
	LongCallTimeout time.Duration
	// NoHostnameSet makes the node act as one that cannot set a claimed
	// warm pool member's host name (not root, or a remote engine), so
	// every create is a cold one; for tests of that path.
	NoHostnameSet bool
	// AgentPath is the in-space agent's binary (cmd/clawdspace-agent) and
	// AgentDir the node's folder for it (a copy of the binary and one
	// socket folder per space, see agent.go). Either empty turns the agent
	// off: every call then takes the Engine API path.
	AgentPath string
	AgentDir  string
}

// Default deadlines of engine calls (see Config).
const (
	DefaultCallTimeout     = 10 * time.Second
	DefaultLongCallTimeout = 3 * time.Minute
)

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
	// procsFiles caches each container's cgroup.procs file (gate.go), ""
	// where the node cannot see the engine's processes.
	procsFiles sync.Map
	// callTimeout and longTimeout bound engine calls (Config).
	callTimeout, longTimeout time.Duration
	// selfNS is the node's own network namespace, where threads go back
	// after making a socket in a space's (netns.go); nil where the node
	// cannot enter spaces' namespaces, and noNetNS then says why.
	selfNS  *os.File
	noNetNS string
	// targets caches how to reach each space's ports (ports.go).
	targets sync.Map
	// selfUTS is the node's own UTS namespace, where threads go back to
	// after setting a claimed pool member's host name (hostname.go); nil
	// where the node cannot, and noUTS then says why.
	selfUTS *os.File
	noUTS   string
	// claims holds the IDs of pool members a claim, an add or a prune is
	// working on (pool.go), so that each is taken at most once.
	claims sync.Map
	// poolGone marks the IDs of pool members that were claimed or removed
	// (ID → the poolGen of the mark), so that no claim or prune acts on
	// one from a list taken before (pool.go).
	poolGone sync.Map
	poolGen  atomic.Uint64
	// poolListed, when set (tests), is called after each list of pool
	// members with its key, before the list is acted on.
	poolListed func(key string)
	// poolRules holds, per unclaimed pool member, the host addresses its
	// egress rules were written with (pool.go).
	poolRules sync.Map
	// agentDir is Config.AgentDir when the agent is on; agentOff says why
	// it is off. agentSlots holds each volume's *agentSlot, agentInfos
	// each container's agentInfo, agentMu serialises new slots; h2 is the
	// transport of the agents' connections (agent.go).
	agentDir   string
	agentOff   string
	agentSlots sync.Map
	agentInfos sync.Map
	agentMu    sync.Mutex
	h2         *http2.Transport
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
		filesInSpace: cfg.FilesInSpace,
		callTimeout:  cmp.Or(cfg.CallTimeout, DefaultCallTimeout), longTimeout: cmp.Or(cfg.LongCallTimeout, DefaultLongCallTimeout)}
	if e.agentOff = e.setUpAgent(cfg); e.agentOff != "" {
		e.log.Info("the in-space agent is off: every call takes the Engine API path", "reason", e.agentOff)
	}
	e.hosts = NewHostAddrs(cfg.HostAddrInterval, cfg.Logger, e.reconcileEgress)
	switch {
	case cfg.PortsByAddress:
		e.noNetNS = "it is configured to dial spaces' addresses"
	case !strings.HasPrefix(c.DaemonHost(), "unix://"):
		e.noNetNS = "the engine is not on the node's host"
	case os.Geteuid() != 0:
		e.noNetNS = "the node is not running as root"
	default:
		if e.selfNS, err = selfNetNS(); err != nil {
			e.noNetNS = "it cannot open its own network namespace"
		}
	}
	switch {
	case cfg.NoHostnameSet:
		e.noUTS = "it is configured not to set host names"
	case !strings.HasPrefix(c.DaemonHost(), "unix://"):
		e.noUTS = "the engine is not on the node's host"
	case os.Geteuid() != 0:
		e.noUTS = "the node is not running as root"
	default:
		var root string
		if info, err := c.Info(pctx, client.InfoOptions{}); err == nil {
			root = info.Info.DockerRootDir
		}
		if e.noUTS = hostnameUnsupported(strings.TrimPrefix(c.DaemonHost(), "unix://"), root); e.noUTS != "" {
			break
		}
		if e.selfUTS, err = selfUTS(); err != nil {
			e.noUTS = "it cannot open its own UTS namespace"
		}
	}
	return e, nil
}

// Client returns the underlying Docker client, for benchmarks that compare
// the node against the raw SDK.
func (e *Engine) Client() *client.Client { return e.c }

// Close releases the client and the files of the ports' targets. A dial
// in flight keeps what it uses open until it is done, and then fails.
func (e *Engine) Close() error {
	e.closeAgents()
	e.targets.Range(func(k, _ any) bool {
		e.forgetTarget(k.(string))
		return true
	})
	if e.selfNS != nil {
		e.selfNS.Close()
	}
	if e.selfUTS != nil {
		e.selfUTS.Close()
	}
	return e.c.Close()
}

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
	case errors.Is(err, errEngineSlow):
		// The transport ends a call at its deadline with the cause, which
		// the SDK reports as a failed connection.
		return fmt.Errorf("%s: %w (%w)", what, errNoAnswer, err)
	case unreachable(err):
		return fmt.Errorf("%s: %w (%w)", what, errUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// unreachable reports whether err says the engine's socket could not be
// reached (nothing listens, no such socket, refused).
func unreachable(err error) bool {
	if client.IsErrConnectionFailed(err) {
		return true
	}
	// Attaches dial the engine themselves; their errors are the dialer's.
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// errEngineSlow is the cause of the deadlines this adapter puts on engine
// calls, to tell them from the caller's own.
var errEngineSlow = errors.New("the Docker engine did not answer in time")

// errUnavailable is what a caller sees when the engine cannot be reached.
var errUnavailable = &spaces.Error{Kind: spaces.ErrUnavailable, Msg: "Docker engine unavailable"}

// errNoAnswer is what a caller sees when the engine missed a deadline.
var errNoAnswer = &spaces.Error{Kind: spaces.ErrUnavailable, Msg: "Docker engine did not answer in time"}

// bound gives the engine calls of one operation d to answer. Its end
// function cancels, and turns *err into errNoAnswer when d passed before
// the engine answered (not when the caller's own context ended first, nor
// when the operation gave a domain error of its own).
func bound(ctx context.Context, d time.Duration) (context.Context, func(*error)) {
	ctx, cancel := context.WithTimeoutCause(ctx, d, errEngineSlow)
	return ctx, func(err *error) {
		var de *spaces.Error
		if *err != nil && !errors.As(*err, &de) && errors.Is(context.Cause(ctx), errEngineSlow) {
			*err = errNoAnswer
		}
		cancel()
	}
}

// short and long bound an operation by the engine's call timeouts.
func (e *Engine) short(ctx context.Context) (context.Context, func(*error)) {
	return bound(ctx, e.callTimeout)
}

func (e *Engine) long(ctx context.Context) (context.Context, func(*error)) {
	return bound(ctx, e.longTimeout)
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
func (e *Engine) inspectSpace(ctx context.Context, name string) (_ container.InspectResponse, err error) {
	ctx, end := e.short(ctx)
	defer end(&err)
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
