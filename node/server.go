// Package node is the HTTP face of a Clawdspace node: the REST API of the
// wire contract, authentication and the mapping of domain errors to HTTP.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"tailscale.com/client/tailscale/apitype"

	"github.com/adam91holt/clawdspace/spaces"
)

// Machine reports facts about the machine the node runs on.
type Machine interface {
	Snapshot() spaces.MachineSnapshot
	GPU() spaces.MachineGPU
}

// Config holds every dependency of a Server.
type Config struct {
	Spaces  *spaces.Service
	Machine Machine
	Logger  *slog.Logger
	Clock   spaces.Clock

	// APIKey is the shared key; required unless AuthDisabled. New refuses
	// a key that CheckAPIKey refuses, unless AllowWeakKey lets a weak one
	// through with a warning (never one with whitespace around it).
	APIKey       string
	AllowWeakKey bool
	// AuthFreeFailures is how many wrong keys one address may send before
	// it must wait AuthBackoff, doubled by every further failure up to
	// AuthMaxBackoff (defaults 5, 1 s, 5 min); meanwhile its requests
	// with a key are answered 429 with Retry-After.
	AuthFreeFailures int
	AuthBackoff      time.Duration
	AuthMaxBackoff   time.Duration
	// AuthDisabled lets every request through as the "local" caller.
	AuthDisabled bool
	// Version is reported by /api/health.
	Version string
	// NodeName (default: the host name) and URL describe this node in
	// /api/nodes.
	NodeName string
	URL      string
	// MaxBodyBytes bounds JSON request bodies (default 8 MiB).
	MaxBodyBytes int64
	// MaxFileBytes bounds one raw file upload (default 10 GiB).
	MaxFileBytes int64
	// AllowedHosts are Host header values accepted when auth is disabled,
	// besides loopback names (a guard against DNS rebinding).
	AllowedHosts []string
	// ShutdownGrace is how long requests in flight may finish when the
	// node stops (default 10 s).
	ShutdownGrace time.Duration
	// MaxExecOutput bounds the output that JSON execs in flight hold in
	// memory together (default DefaultMaxExecOutput). An exec that finds
	// it spent is refused with 503 before it starts; one that reaches it
	// while it runs keeps what it has and answers truncated.
	MaxExecOutput int64
	// BodyReadTimeout is how long a request body may go without a byte
	// before the request is answered 408 (default DefaultBodyReadTimeout).
	BodyReadTimeout time.Duration
	// FleetListTimeout bounds each other node's answer to a fleet-wide
	// list (?all=true): a node that does not answer in time is listed
	// under "errors" instead of holding the list (default
	// DefaultFleetListTimeout).
	FleetListTimeout time.Duration
	// SpoolDir holds large uploads until they are complete (default: the
	// system's temporary folder).
	SpoolDir string

	// Tailnet is this node's device on the tailnet; nil in local mode.
	// Requests that arrive on the tailnet listener are identified by WhoIs.
	Tailnet Tailnet
	// TailnetHosts are the Host names the tailnet listener answers to:
	// the node's tailnet addresses and MagicDNS names (a guard against DNS
	// rebinding; AllowedHosts adds others).
	TailnetHosts []string
	// TailnetName is the node's MagicDNS name (its tailnet address on a
	// tailnet without MagicDNS), in the URLs of forwards.
	TailnetName string
	// Ports serves forwarded ports on the tailnet; nil in local mode,
	// where opening a forward is refused (the API tunnel serves instead).
	Ports *PortDoor
	// TrustTailnet gives every device that reaches the node on the tailnet
	// full access, without grants: for personal tailnets only.
	TrustTailnet bool
	// Fleet knows the other nodes; nil means this node alone.
	Fleet Fleet
	// SSH is the node's SSH server, for the /api/ssh tunnel; nil answers
	// 503 there.
	SSH SSHServer
	// Sessions keeps the dashboard's sessions; nil: in memory, lost when
	// the node stops.
	Sessions spaces.SessionStore
}

// Tailnet is what the node needs of its tailnet device: who is at a
// tailnet address.
type Tailnet interface {
	WhoIs(ctx context.Context, addr string) (*apitype.WhoIsResponse, error)
}

// Fleet is what the handlers need of the other nodes (package fleet
// decides; the node only speaks HTTP for it).
type Fleet interface {
	// Nodes is the cached health of the other nodes and when it was last
	// refreshed.
	Nodes(ctx context.Context) ([]spaces.NodeHealth, time.Time, error)
	// Online is the node called name when requests may go to it (online
	// and trusted).
	Online(ctx context.Context, name string) (spaces.NodeHealth, error)
	// EachOnline runs fn at once for each of nodes that requests may go
	// to (online and trusted), and waits for them.
	EachOnline(ctx context.Context, nodes []spaces.NodeHealth, fn func(spaces.NodeHealth))
	// CanVouch checks that a request of c may go to another node.
	CanVouch(c spaces.Caller) error
	// Place picks the node for "node":"auto", among self and the others.
	Place(ctx context.Context, self spaces.NodeHealth, gpu bool) (string, error)
	// Call sends one request to n with the credentials in creds and
	// decodes the answer into out.
	Call(ctx context.Context, n spaces.NodeHealth, creds http.Header, method, path string, body []byte, out any) error
	// Transport carries forwarded requests to other nodes.
	Transport() http.RoundTripper
	// StaticAddrs are the IP addresses of configured nodes, which hold
	// the key.
	StaticAddrs() map[string]bool
}

// Server serves the API.
type Server struct {
	cfg      Config
	log      *slog.Logger
	clock    spaces.Clock
	handler  http.Handler
	keys     authLimiter
	inflight sync.WaitGroup
	terms    terminals
	outPool  outputPool
	// apiRoutes are the patterns of the API's routes, as registered.
	apiRoutes []string
}

// New builds a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Spaces == nil || cfg.Machine == nil {
		return nil, errors.New("node: Spaces and Machine are required")
	}
	if cfg.APIKey == "" && !cfg.AuthDisabled {
		return nil, errors.New("node: an API key is required unless auth is disabled")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := CheckAPIKey(cfg.APIKey); err != nil {
		if !errors.Is(err, ErrWeakKey) || !cfg.AllowWeakKey {
			return nil, fmt.Errorf("node: %w", err)
		}
		cfg.Logger.Warn("WEAK API KEY ALLOWED (--allow-weak-key): anyone who guesses it controls this node's spaces", "problem", err.Error())
	}
	if cfg.Sessions == nil {
		cfg.Sessions = &memSessions{}
	}
	if cfg.AuthFreeFailures <= 0 {
		cfg.AuthFreeFailures = DefaultAuthFreeFailures
	}
	if cfg.AuthBackoff <= 0 {
		cfg.AuthBackoff = DefaultAuthBackoff
	}
	if cfg.AuthMaxBackoff <= 0 {
		cfg.AuthMaxBackoff = DefaultAuthMaxBackoff
	}
	if cfg.Clock == nil {
		cfg.Clock = spaces.SystemClock{}
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	if cfg.MaxFileBytes <= 0 {
		cfg.MaxFileBytes = 10 << 30
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 10 * time.Second
	}
	if cfg.MaxExecOutput <= 0 {
		cfg.MaxExecOutput = DefaultMaxExecOutput
	}
	if cfg.BodyReadTimeout <= 0 {
		cfg.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if cfg.FleetListTimeout <= 0 {
		cfg.FleetListTimeout = DefaultFleetListTimeout
	}
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = os.TempDir()
	}
	if cfg.NodeName == "" {
		cfg.NodeName = cfg.Machine.Snapshot().Hostname
	}
	s := &Server{cfg: cfg, log: cfg.Logger, clock: cfg.Clock, outPool: outputPool{max: cfg.MaxExecOutput}}
	s.keys = authLimiter{free: cfg.AuthFreeFailures, base: cfg.AuthBackoff, max: cfg.AuthMaxBackoff, exempt: staticPeerAddrs(cfg.Fleet)}
	s.handler = s.routes()
	return s, nil
}

// Serve serves on the local listener ln and, in tailnet mode, on the
// tailnet listener tln (nil otherwise) until ctx ends, then shuts down:
// requests in flight get a grace period, after which their contexts end,
// which kills the commands they run in spaces.
func (s *Server) Serve(ctx context.Context, ln, tln net.Listener) error {
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	newServer := func(base context.Context) *http.Server {
		return &http.Server{
			Handler:           s.handler,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       120 * time.Second,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
			BaseContext:       func(net.Listener) context.Context { return base },
		}
	}
	local := newServer(base)
	servers := []*http.Server{local}
	errc := make(chan error, 2)
	go func() { errc <- fmt.Errorf("serving on %s: %w", ln.Addr(), local.Serve(ln)) }()
	if tln != nil {
		ts := newServer(context.WithValue(base, viaTailnetKey{}, true))
		servers = append(servers, ts)
		go func() { errc <- fmt.Errorf("serving on the tailnet: %w", ts.Serve(tln)) }()
	}
	select {
	case err := <-errc:
		for _, hs := range servers {
			_ = hs.Close()
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	// Shutdown neither ends nor waits for hijacked connections: end the
	// open terminals here and wait for them below.
	s.terms.shutdown()
	var wg sync.WaitGroup
	for _, hs := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hs.Shutdown(sctx); err != nil {
				s.log.Warn("requests still running at shutdown: ending them", "err", err)
				cancelBase()
				_ = hs.Close()
			}
		}()
	}
	wg.Wait()
	// What is left is hijacked: terminals (ended above) and proxied
	// upgrades to other nodes, which end with their request's context.
	cancelBase()
	if err := s.terms.wait(sctx); err != nil {
		s.log.Warn("terminals still closing at shutdown", "err", err)
	}
	// Handlers whose context just ended are killing their commands and
	// writing their audit rows: let them finish before the store closes.
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.ShutdownGrace):
		s.log.Warn("requests still finishing at shutdown")
	}
	return nil
}
