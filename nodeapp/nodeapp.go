// Package nodeapp assembles a whole Clawdspace node from one Config: the
// store, the engine, the spaces service, the HTTP server, the tailnet device,
// the fleet monitor and every background loop. `clawdspace serve` and the
// test harness (nodetest) both build their node here, so tests run the node
// users run.
package nodeapp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/adam91holt/clawdspace/engine"
	"github.com/adam91holt/clawdspace/fleet"
	"github.com/adam91holt/clawdspace/host"
	"github.com/adam91holt/clawdspace/node"
	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/sshd"
	"github.com/adam91holt/clawdspace/store"
	"github.com/adam91holt/clawdspace/tailnet"
)

// Defaults of the background loops, as `serve` documents them.
const (
	DefaultIdleTimeout     = 10 * time.Minute
	DefaultHistoryInterval = 15 * time.Second
)

// tailnetAPIPort is where the API answers on the tailnet.
const tailnetAPIPort = 7777

// Config is everything a node is built from. The assembly fills in the
// dependencies of the parts' own configs (loggers, clock, store, engine,
// service, fleet, tailnet, URL); the caller sets the rest.
type Config struct {
	// DataDir holds the database, the upload spool and the tailnet state.
	DataDir string
	// Listen is the local address of the REST API ("127.0.0.1:0" picks a
	// free port).
	Listen string
	// Name is the node's name in the fleet and on the tailnet; empty means
	// the machine's host name.
	Name   string
	Logger *slog.Logger
	// Clock replaces the real clock (tests).
	Clock spaces.Clock

	// Engine configures the Docker adapter; Logger and Egress are set here.
	Engine engine.Config
	// NoEgress starts the node as one that cannot enforce egress rules
	// even where it could (tests).
	NoEgress bool
	// Spaces configures the domain service; its Engine, Store, Logger,
	// Clock, NodeRun, HostMemory are set here, HostCPUs when zero, and
	// HasGPU when the machine has a GPU.
	Spaces spaces.Config
	// Server configures the HTTP server; its Spaces, Machine, Logger,
	// Clock, NodeName, URL, SpoolDir, Fleet, Sessions and tailnet fields
	// are set here, and APIKey when ResolveKey is set.
	Server node.Config
	// ResolveKey, when set, gives the API key once everything else is
	// built, so a key generated on first start is never lost to a failed
	// start.
	ResolveKey func() (string, error)

	// Tailnet, when set, joins the tailnet as Name (its Hostname) and
	// serves the API there on :7777 too.
	Tailnet *tailnet.Config
	// Fleet configures the fleet monitor, built in tailnet mode or with
	// Static nodes; its Store, Self, APIKey, Clock, Logger and tailnet
	// fields are set here.
	Fleet fleet.Config
	// NoFleetLoop leaves the fleet monitor stopped (no first refresh).
	NoFleetLoop bool

	// SSH configures the SSH door (docs/SSH.md).
	SSH SSHConfig

	// IdleTimeout pauses spaces idle this long; 0 turns auto-sleep off.
	IdleTimeout time.Duration
	// LoopsOnly, when set, limits the background loops that act on spaces
	// (auto-sleep, history ingest) to the spaces it accepts (test nodes
	// share the engine with other tests).
	LoopsOnly func(name string) bool
	// HistoryInterval is how often shell history is read into the audit
	// log; 0 turns it off.
	HistoryInterval time.Duration
	// AuditMaxAge and AuditMaxRows bound the audit log; both 0 keep it all.
	AuditMaxAge  time.Duration
	AuditMaxRows int64
}

// Default SSH ports.
const (
	DefaultSSHListen      = "127.0.0.1:2222"
	DefaultSSHTailnetPort = 22
)

// SSHConfig configures the SSH door: in tailnet mode it listens on the
// node's tailnet address (TailnetPort) and knows callers by WhoIs; in
// local mode on Listen, with the keys of DATA_DIR/ssh/authorized_keys.
// The host key is DATA_DIR/ssh/host_ed25519_key.
type SSHConfig struct {
	// Off turns the SSH door off (and /api/ssh answers 503).
	Off bool
	// Listen is the local-mode address (default DefaultSSHListen).
	Listen string
	// TailnetPort is the port on the tailnet (default 22).
	TailnetPort uint16
	// Server holds the bounds (connections, channels, timeouts); its
	// Service, Logger, paths and WhoIs are set here.
	Server sshd.Config
}

// Node is an assembled node. Build it with New, run it with Start, stop it
// with Close.
type Node struct {
	// URL is where the API answers: the tailnet address in tailnet mode.
	URL string
	// LocalURL is the local listener's address.
	LocalURL string
	Name     string
	// APIKey is the key in force ("" with auth disabled).
	APIKey  string
	Store   *store.Store
	Engine  *engine.Engine
	Service *spaces.Service
	// Tailnet and Fleet are nil when the node has none.
	Tailnet *tailnet.Node
	Fleet   *fleet.Fleet
	// SSH is the SSH door (nil when off); SSHAddr is where it listens
	// (host:port; the tailnet address in tailnet mode).
	SSH     *sshd.Server
	SSHAddr string

	log   *slog.Logger
	srv   *node.Server
	ln    net.Listener
	tln   net.Listener
	ports *node.PortDoor
	sshLn net.Listener
	loops []starter

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	served  chan struct{}
	err     error
	closing []func()
}

// starter is a background loop the node owns.
type starter interface {
	Start(ctx context.Context)
	Close()
}

// New builds the node: it opens the store and the engine, repairs what an
// earlier run left (spaces.Service.Recover), listens, and joins the
// tailnet. Nothing runs in the background until Start. On error what was
// built is closed again.
func New(ctx context.Context, cfg Config) (_ *Node, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{log: log}
	defer func() {
		if err != nil {
			n.closeAll()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data folder: %w", err)
	}
	spool := filepath.Join(cfg.DataDir, "spool")
	// Uploads left in the spool by a crash are incomplete by definition.
	if err := os.RemoveAll(spool); err != nil {
		return nil, fmt.Errorf("clearing the upload spool: %w", err)
	}
	if cfg.Server.AuthDisabled {
		log.Warn("AUTHENTICATION IS DISABLED: anyone who can reach this node controls its spaces. Use only for development.")
	}
	if cfg.Tailnet == nil && cfg.Server.TrustTailnet {
		return nil, errors.New("--trust-tailnet needs tailnet mode (an auth key or --tailnet)")
	}

	if n.Store, err = store.New(ctx, store.Config{Path: filepath.Join(cfg.DataDir, "clawdspace.db"), Logger: log}); err != nil {
		return nil, err
	}
	n.onClose(func() { n.Store.Close() })

	if n.Engine, err = newEngine(ctx, cfg, log); err != nil {
		return nil, err
	}
	n.onClose(func() { n.Engine.Close() })

	machine := host.New(ctx, host.Config{DiskPath: cfg.DataDir})
	sc := cfg.Spaces
	sc.Engine, sc.Store, sc.Logger, sc.Clock, sc.NodeRun = n.Engine, n.Store, log, cfg.Clock, n.Engine.Run()
	sc.HostCPUs = cmp.Or(sc.HostCPUs, runtime.NumCPU())
	snap := machine.Snapshot()
	sc.HostMemory = int64(snap.MemTotal)
	sc.HasGPU = sc.HasGPU || machine.GPU().Present
	// The API's tailnet port is never given to a forward.
	if !slices.Contains(sc.ReservedPorts, tailnetAPIPort) {
		sc.ReservedPorts = append(slices.Clone(sc.ReservedPorts), tailnetAPIPort)
	}
	if !cfg.SSH.Off {
		// Forwarded ports never take the SSH port.
		sc.ReservedPorts = append(slices.Clone(sc.ReservedPorts), cmp.Or(cfg.SSH.TailnetPort, DefaultSSHTailnetPort))
	}
	if n.Service, err = spaces.New(ctx, sc); err != nil {
		return nil, err
	}
	// Repair what a crash of an earlier run left before serving anyone.
	if err := n.Service.Recover(ctx); err != nil {
		return nil, err
	}

	if n.ln, err = net.Listen("tcp", cmp.Or(cfg.Listen, "127.0.0.1:7777")); err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	n.onClose(func() { n.ln.Close() })
	n.LocalURL = "http://" + n.ln.Addr().String()
	n.URL = n.LocalURL
	if h, _, _ := net.SplitHostPort(n.ln.Addr().String()); !net.ParseIP(h).IsLoopback() {
		log.Warn("listening beyond loopback: anyone who can reach this address and has the key controls the spaces", "addr", n.ln.Addr().String())
	}

	sv := cfg.Server
	if cfg.ResolveKey != nil && !sv.AuthDisabled {
		// The key is made once nothing else but the tailnet can fail, so a
		// generated key is always printed.
		if sv.APIKey, err = cfg.ResolveKey(); err != nil {
			return nil, err
		}
	}
	n.APIKey = sv.APIKey
	n.Name = cmp.Or(cfg.Name, snap.Hostname, "clawdspace")
	if err := n.joinTailnet(ctx, cfg); err != nil {
		return nil, err
	}
	if err := n.buildFleet(ctx, cfg); err != nil {
		return nil, err
	}

	if err := n.buildSSH(cfg); err != nil {
		return nil, err
	}
	if n.SSH != nil {
		sv.SSH = n.SSH
	}

	sv.Spaces, sv.Machine, sv.Logger, sv.Clock = n.Service, machine, log, cfg.Clock
	sv.NodeName, sv.URL, sv.SpoolDir, sv.Sessions = n.Name, n.URL, spool, n.Store
	if n.Fleet != nil {
		sv.Fleet = n.Fleet
	}
	if n.Tailnet != nil {
		sv.Tailnet, sv.TailnetHosts, sv.TailnetName = n.Tailnet, n.Tailnet.Hosts(), n.Tailnet.DNSName()
		// Without MagicDNS the device's name is a bare host name that
		// other devices cannot resolve: forwards' URLs use its address.
		if !strings.Contains(sv.TailnetName, ".") {
			sv.TailnetName = n.Tailnet.Addr()
		}
		// Forwarded ports are served on the tailnet only: there the
		// caller is known by WhoIs.
		if n.ports, err = node.NewPortDoor(node.PortDoorConfig{Spaces: n.Service, Tailnet: n.Tailnet, TrustTailnet: sv.TrustTailnet, Logger: log}); err != nil {
			return nil, err
		}
		sv.Ports = n.ports
	}
	if n.srv, err = node.New(sv); err != nil {
		return nil, err
	}
	n.loops = n.backgroundLoops(cfg)
	return n, nil
}

// newEngine opens the Docker adapter, enforcing egress rules where the
// node can.
func newEngine(ctx context.Context, cfg Config, log *slog.Logger) (*engine.Engine, error) {
	egressErr := engine.EgressSupported()
	ec := cfg.Engine
	switch {
	case cfg.NoEgress:
	case egressErr != nil && ec.AllowUnenforcedEgress:
		log.Warn("SPACE NETWORK RULES ARE NOT ENFORCED (--insecure-egress): spaces can reach private and tailnet addresses, the node's host and each other.", "reason", egressErr)
	case egressErr != nil:
		log.Warn("space network rules cannot be enforced: spaces with a network (every template but offline) will be refused. Run the node as root on the engine's host, or pass --insecure-egress.", "reason", egressErr)
	}
	if ec.WorkspaceQuotaDir != "" {
		if err := engine.CheckWorkspaceQuotaDir(ec.WorkspaceQuotaDir); err != nil {
			return nil, err
		}
	}
	if ec.AllowUnenforcedWorkspaceSize {
		log.Warn("WORKSPACE SIZE LIMITS ARE NOT ENFORCED (--insecure-workspace-size): templates' workspace.maxSize is ignored.")
	}
	ec.Logger, ec.Egress = log, egressErr == nil && !cfg.NoEgress
	if ec.AgentPath != "" && ec.AgentDir == "" {
		ec.AgentDir = filepath.Join(cfg.DataDir, "agent")
	}
	eng, err := engine.New(ctx, ec)
	if err != nil {
		return nil, fmt.Errorf("%w\nIs the Docker engine installed and running? Run docker/ensure-engine.sh as root, or see docs/SETUP.md", err)
	}
	return eng, nil
}

// joinTailnet joins the tailnet when the config asks for it, and listens
// on :7777 there.
func (n *Node) joinTailnet(ctx context.Context, cfg Config) error {
	if cfg.Tailnet == nil {
		return nil
	}
	tc := *cfg.Tailnet
	tc.Hostname = n.Name
	tc.Dir = cmp.Or(tc.Dir, filepath.Join(cfg.DataDir, "tailnet"))
	if tc.Logger == nil {
		tc.Logger = n.log
	}
	tn, err := tailnet.Start(ctx, tc)
	if err != nil {
		return err
	}
	n.Tailnet = tn
	n.onClose(func() { tn.Close() })
	if n.tln, err = tn.Listen(":" + strconv.Itoa(tailnetAPIPort)); err != nil {
		return fmt.Errorf("listening on the tailnet: %w", err)
	}
	n.URL = "http://" + net.JoinHostPort(tn.Addr(), strconv.Itoa(tailnetAPIPort))
	if cfg.Server.TrustTailnet {
		n.log.Warn("TRUSTED TAILNET: every device that can reach this node on the tailnet has full access (--trust-tailnet)")
	}
	return nil
}

// buildSSH builds the SSH door and listens: on the tailnet in tailnet
// mode, else on the local address.
func (n *Node) buildSSH(cfg Config) error {
	if cfg.SSH.Off {
		return nil
	}
	dir := filepath.Join(cfg.DataDir, "ssh")
	sc := cfg.SSH.Server
	sc.Service, sc.Logger = n.Service, n.log
	sc.HostKeyPath = filepath.Join(dir, "host_ed25519_key")
	sc.AuthorizedKeysPath = filepath.Join(dir, "authorized_keys")
	var err error
	if tn := n.Tailnet; tn != nil {
		sc.WhoIs = func(ctx context.Context, addr string) (spaces.Caller, error) {
			return node.WhoIsCaller(ctx, tn, addr, cfg.Server.TrustTailnet, n.log)
		}
		port := cmp.Or(cfg.SSH.TailnetPort, DefaultSSHTailnetPort)
		if n.sshLn, err = tn.Listen(fmt.Sprintf(":%d", port)); err != nil {
			return fmt.Errorf("listening for SSH on the tailnet: %w", err)
		}
		n.SSHAddr = net.JoinHostPort(tn.Addr(), strconv.Itoa(int(port)))
	} else {
		addr := cmp.Or(cfg.SSH.Listen, DefaultSSHListen)
		if n.sshLn, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("listening for SSH on %s: %w (--ssh-listen changes the address, --no-ssh turns SSH off)", addr, err)
		}
		n.SSHAddr = n.sshLn.Addr().String()
		if h, _, _ := net.SplitHostPort(n.SSHAddr); !net.ParseIP(h).IsLoopback() {
			n.log.Warn("SSH listens beyond loopback: anyone who reaches this address with an authorized key controls the spaces", "addr", n.SSHAddr)
		}
	}
	ln := n.sshLn
	n.onClose(func() { ln.Close() })
	if n.SSH, err = sshd.New(sc); err != nil {
		return err
	}
	return nil
}

// sshLoop serves the SSH listener until Close.
type sshLoop struct {
	srv     *sshd.Server
	ln      net.Listener
	tailnet bool
	wg      sync.WaitGroup
}

func (l *sshLoop) Start(ctx context.Context) {
	l.wg.Go(func() {
		if l.tailnet {
			_ = l.srv.ServeTailnet(ctx, l.ln)
		} else {
			_ = l.srv.Serve(ctx, l.ln)
		}
	})
}

// Close ends every SSH connection (and what their sessions run).
func (l *sshLoop) Close() {
	l.ln.Close()
	l.srv.Close()
	l.wg.Wait()
}

// buildFleet builds the fleet monitor: tailnet peers, or static nodes.
func (n *Node) buildFleet(ctx context.Context, cfg Config) error {
	fc := cfg.Fleet
	if n.Tailnet == nil && len(fc.Static) == 0 {
		return nil
	}
	fc.Store, fc.Self, fc.APIKey, fc.Clock, fc.Logger = n.Store, n.Name, n.APIKey, cfg.Clock, n.log
	if tn := n.Tailnet; tn != nil {
		fc.Peers, fc.Dial = tn, tn.Dial
		// The fleet trusts a node by the same lookup that identifies the
		// node's callers.
		fc.WhoIs = func(ctx context.Context, addr string) (spaces.Caller, error) {
			return node.WhoIsCaller(ctx, tn, addr, cfg.Server.TrustTailnet, n.log)
		}
	}
	f, err := fleet.New(ctx, fc)
	if err != nil {
		return err
	}
	n.Fleet = f
	n.onClose(f.Close)
	return nil
}

// backgroundLoops lists the loops Start runs, each turned off by a zero
// setting.
func (n *Node) backgroundLoops(cfg Config) []starter {
	loops := []starter{engine.NewEgressGuard(n.Engine)}
	if n.ports != nil {
		loops = append(loops, n.ports)
	}
	if n.SSH != nil {
		loops = append(loops, &sshLoop{srv: n.SSH, ln: n.sshLn, tailnet: n.Tailnet != nil})
	}
	if n.Fleet != nil && !cfg.NoFleetLoop {
		loops = append(loops, n.Fleet)
	}
	if cfg.IdleTimeout > 0 {
		loops = append(loops, spaces.NewSleeper(spaces.SleeperConfig{Service: n.Service, IdleTimeout: cfg.IdleTimeout, Logger: n.log, Only: cfg.LoopsOnly}))
	}
	if cfg.AuditMaxAge > 0 || cfg.AuditMaxRows > 0 {
		loops = append(loops, spaces.NewAuditRetention(spaces.AuditRetentionConfig{Service: n.Service, MaxAge: cfg.AuditMaxAge, MaxRows: cfg.AuditMaxRows, Logger: n.log}))
	}
	if p := n.Service.Pool(); p != nil {
		// Its Close drains the pool. Loops close in reverse order: this
		// one after those appended below, before those above.
		loops = append(loops, p)
	}
	if cfg.HistoryInterval > 0 {
		loops = append(loops, spaces.NewIngester(spaces.IngesterConfig{Service: n.Service, Interval: cfg.HistoryInterval, Logger: n.log, Only: cfg.LoopsOnly}))
	}
	return loops
}

// Start serves the API and runs the background loops until ctx ends or
// Close is called. A second call does nothing.
func (n *Node) Start(ctx context.Context) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		return
	}
	n.started = true
	ctx, n.cancel = context.WithCancel(ctx)
	n.served = make(chan struct{})
	for _, l := range n.loops {
		l.Start(ctx)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(n.served)
		n.err = n.srv.Serve(ctx, n.ln, n.tln)
	}()
}

// Wait blocks until the server stops (ctx of Start ended, or serving
// failed) and returns why serving failed, nil after a shutdown.
func (n *Node) Wait() error {
	n.mu.Lock()
	served := n.served
	n.mu.Unlock()
	if served == nil {
		return errors.New("node not started")
	}
	<-served
	return n.err
}

// Close stops serving (with the server's shutdown grace), stops the
// background loops and closes the fleet, the tailnet device, the engine
// and the store. Spaces keep running. It is safe to call twice.
func (n *Node) Close() {
	n.mu.Lock()
	cancel := n.cancel
	n.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	n.wg.Wait()
	// Loops stop in reverse order of their start, after the server, as
	// serve's deferred closes did.
	for i := len(n.loops) - 1; i >= 0; i-- {
		n.loops[i].Close()
	}
	n.closeAll()
}

// onClose registers what Close releases, last registered first.
func (n *Node) onClose(f func()) {
	n.mu.Lock()
	n.closing = append(n.closing, f)
	n.mu.Unlock()
}

func (n *Node) closeAll() {
	n.mu.Lock()
	fs := n.closing
	n.closing = nil
	n.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
