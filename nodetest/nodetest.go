// Package nodetest starts real Clawdspace nodes for tests: a real SQLite
// store, the real Docker engine and the real HTTP server on loopback.
package nodetest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/engine"
	"github.com/adam91holt/clawdspace/fleet"
	"github.com/adam91holt/clawdspace/node"
	"github.com/adam91holt/clawdspace/nodeapp"
	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/sshd"
	"github.com/adam91holt/clawdspace/store"
	"github.com/adam91holt/clawdspace/tailnet"
)

// Key is the API key of every test node.
const Key = "test-key-0123456789abcdef"

// Options change how a test node is built.
type Options struct {
	// DataDir reuses a data folder, e.g. to restart a node.
	DataDir string
	// Clock replaces the real clock.
	Clock spaces.Clock
	// HasGPU pretends the node has a GPU.
	HasGPU bool
	// AuthDisabled turns auth off.
	AuthDisabled bool
	// MaxBodyBytes bounds request bodies.
	MaxBodyBytes int64
	// MaxFileBytes bounds raw uploads.
	MaxFileBytes int64
	// MaxExecOutput bounds the output JSON execs hold together.
	MaxExecOutput int64
	// BodyReadTimeout is how long a request body may stall.
	BodyReadTimeout time.Duration
	// FleetListTimeout bounds other nodes' answers to ?all=true.
	FleetListTimeout time.Duration
	// Log receives the node's log (at debug level); nil discards it
	// unless CLAWDSPACE_TEST_LOG is set.
	Log io.Writer
	// NoEgress starts the node as one that cannot enforce egress rules.
	NoEgress bool
	// InsecureWorkspaceSize makes spaces whose template's workspace.maxSize
	// cannot be enforced (--insecure-workspace-size).
	InsecureWorkspaceSize bool
	// WorkspaceQuotaDir is a btrfs folder with quotas for size-limited
	// workspaces (--workspace-quota-dir).
	WorkspaceQuotaDir string
	// ShutdownGrace is how long requests may finish when the node stops.
	ShutdownGrace time.Duration
	// GitTokenHosts receive env.GITHUB_TOKEN on clone (default github.com).
	GitTokenHosts []string
	// MaxCheckpoints bounds the checkpoints of a space (default 10).
	MaxCheckpoints int
	// Namespace prefixes the node's container and volume names, so several
	// test nodes share the engine without seeing each other's spaces.
	Namespace string
	// WarmPool keeps spaces made in advance per template (--warm-pool);
	// give such a node a Namespace of its own: a node removes the pool
	// members of its namespace that it does not want.
	WarmPool map[string]int
	// NoHostnameSet makes the node one that cannot set a pooled space's
	// host name (engine.Config.NoHostnameSet).
	NoHostnameSet bool

	// Tailnet joins the node to a test tailnet as Hostname.
	Tailnet  *Control
	Hostname string
	// TrustTailnet gives every tailnet device full access.
	TrustTailnet bool
	// Nodes is a fixed fleet (CLAWDSPACE_NODES), without the tailnet.
	Nodes []fleet.StaticNode
	// APIKey replaces Key (e.g. to restart a node with a new key).
	APIKey string
	// AuthFreeFailures and AuthBackoff set the wrong-key backoff (node
	// defaults when 0).
	AuthFreeFailures int
	AuthBackoff      time.Duration
	// DockerHost is the engine's address (default: DOCKER_HOST or the
	// local socket), e.g. an EngineProxy's Host.
	DockerHost string
	// CallTimeout and LongCallTimeout bound engine calls (engine.Config).
	CallTimeout, LongCallTimeout time.Duration
	// NoFleetLoop leaves the fleet monitor stopped (no first refresh), to
	// see what the node answers from its stored cache alone.
	NoFleetLoop bool
	// NoAutoSleep leaves the node's Sleeper off, for tests that run their
	// own on a fake clock.
	NoAutoSleep bool
	// FilesInSpace makes file operations run in the space as its user,
	// as on a node that cannot see the workspace from the engine's host.
	FilesInSpace bool
	// NoAgent turns the in-space agent off (every call takes the Engine
	// API path); by default test nodes use the agent built from this
	// checkout (AgentBinary).
	NoAgent bool
	// AgentPath replaces the agent's binary (a hostile agent's tests).
	AgentPath string
	// NoSSH turns the SSH door off; SSH sets its bounds, SSHTailnetPort
	// its port on the tailnet (default 22).
	NoSSH          bool
	SSH            sshd.Config
	SSHTailnetPort uint16
}

// Node is a running test node.
type Node struct {
	URL     string
	DataDir string
	Service *spaces.Service
	Store   *store.Store
	Engine  *engine.Engine
	HTTP    *http.Client
	// Name is the node's name (its tailnet hostname in tailnet mode).
	Name string
	// TS is the node's tailnet device and Fleet its fleet monitor, in
	// tailnet mode.
	TS    *tailnet.Node
	Fleet *fleet.Fleet
	// SSHAddr is where the node serves SSH (host:port) and SSHDir its
	// folder (host key, authorized_keys); SSHAddr is empty with NoSSH.
	SSHAddr string
	SSHDir  string

	app *nodeapp.Node
}

// newEngine opens the engine for a test's own assertions and clean-up.
func newEngine(tb testing.TB, egress bool, namespace string) *engine.Engine {
	tb.Helper()
	cfg := engineConfig(Options{Namespace: namespace})
	cfg.Egress = egress
	eng, err := engine.New(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("no Docker engine (run docker/ensure-engine.sh as root): %v", err)
	}
	tb.Cleanup(func() { eng.Close() })
	EnsureImages(tb, eng.Client())
	return eng
}

// Start starts a node on 127.0.0.1 with a free port and stops it when the
// test ends. It is the node `clawdspace serve` runs (nodeapp), background
// loops included, with the test image and the options mapped onto its
// config.
func Start(tb testing.TB, opt Options) *Node {
	tb.Helper()
	n := &Node{DataDir: opt.DataDir, HTTP: &http.Client{Timeout: 2 * time.Minute}}
	if n.DataDir == "" {
		n.DataDir = tb.TempDir()
	}
	log := slog.New(slog.DiscardHandler)
	switch {
	case opt.Log != nil:
		log = slog.New(slog.NewTextHandler(opt.Log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	case os.Getenv("CLAWDSPACE_TEST_LOG") != "":
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	key := cmp.Or(opt.APIKey, Key)
	cfg := nodeapp.Config{
		DataDir: n.DataDir, Listen: "127.0.0.1:0", Name: cmp.Or(opt.Hostname, "test-node"), Logger: log, Clock: opt.Clock,
		Engine:   engineConfig(opt),
		NoEgress: opt.NoEgress,
		Spaces: spaces.Config{DefaultImage: TestImage, GPUImage: TestImage, HostCPUs: 2, HasGPU: opt.HasGPU,
			GitTokenHosts: opt.GitTokenHosts, MaxCheckpoints: opt.MaxCheckpoints, WarmPool: opt.WarmPool},
		Server: node.Config{
			APIKey: key, AuthDisabled: opt.AuthDisabled, Version: "test", MaxBodyBytes: opt.MaxBodyBytes,
			MaxFileBytes: opt.MaxFileBytes, MaxExecOutput: opt.MaxExecOutput, BodyReadTimeout: opt.BodyReadTimeout,
			FleetListTimeout: opt.FleetListTimeout,
			ShutdownGrace:    opt.ShutdownGrace, TrustTailnet: opt.TrustTailnet,
			AuthFreeFailures: opt.AuthFreeFailures, AuthBackoff: opt.AuthBackoff,
		},
		// The fleet refreshes once at start; tests refresh again by hand
		// with Node.Fleet.Refresh.
		Fleet:       fleet.Config{Static: opt.Nodes, Interval: time.Hour, ProbeTimeout: 3 * time.Second},
		NoFleetLoop: opt.NoFleetLoop,
		// SSH on a free port: tests run nodes side by side.
		SSH: nodeapp.SSHConfig{Off: opt.NoSSH, Listen: "127.0.0.1:0", TailnetPort: opt.SSHTailnetPort, Server: opt.SSH},
		// The loops `serve` runs by default run here too; auto-sleep and
		// history ingest only on the spaces made through this node (see
		// knownSpace).
		IdleTimeout:     nodeapp.DefaultIdleTimeout,
		LoopsOnly:       n.knownSpace,
		HistoryInterval: nodeapp.DefaultHistoryInterval,
		AuditMaxAge:     spaces.DefaultAuditMaxAge,
		AuditMaxRows:    spaces.DefaultAuditMaxRows,
	}
	if opt.NoAutoSleep {
		cfg.IdleTimeout = 0
	}
	if !opt.NoAgent {
		cfg.Engine.AgentPath = cmp.Or(opt.AgentPath, AgentBinary(tb))
		cfg.Engine.AgentDir = agentDir(tb, n.DataDir)
	}
	if opt.Tailnet != nil {
		tc := opt.Tailnet.deviceConfig(tb)
		cfg.Tailnet = &tc
	}
	// The node's parts keep this context (e.g. the GPU probe): it ends
	// after the node is closed.
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	app, err := nodeapp.New(ctx, cfg)
	if err != nil {
		tb.Fatalf("building the node: %v", err)
	}
	tb.Cleanup(app.Close)
	EnsureImages(tb, app.Engine.Client())
	if app.Tailnet != nil {
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		defer wcancel()
		waitForHomeDERP(tb, wctx, app.Tailnet)
	}
	// The test's URL is the local listener, also in tailnet mode.
	n.app, n.URL, n.Name = app, app.LocalURL, app.Name
	n.Service, n.Store, n.Engine, n.TS, n.Fleet = app.Service, app.Store, app.Engine, app.Tailnet, app.Fleet
	n.SSHAddr, n.SSHDir = app.SSHAddr, filepath.Join(n.DataDir, "ssh")
	app.Start(context.Background())
	return n
}

// knownSpace reports whether name was made through this node (its store
// has the space's start): other tests' spaces on the shared engine, on other
// nodes or clocks, are not this node's to put to sleep or to read the
// history of.
func (n *Node) knownSpace(name string) bool {
	act, err := n.Store.SpaceActivity(context.Background(), name)
	return err == nil && !act.StartedAt.IsZero()
}

// engineConfig is the engine part of the options.
func engineConfig(opt Options) engine.Config {
	return engine.Config{Host: opt.DockerHost, Namespace: opt.Namespace,
		CallTimeout: opt.CallTimeout, LongCallTimeout: opt.LongCallTimeout,
		AllowUnenforcedWorkspaceSize: opt.InsecureWorkspaceSize, WorkspaceQuotaDir: opt.WorkspaceQuotaDir,
		HostAddrInterval: 500 * time.Millisecond, FilesInSpace: opt.FilesInSpace, NoHostnameSet: opt.NoHostnameSet}
}

// Stop stops the node (its spaces keep running) and closes its store.
func (n *Node) Stop() { n.app.Close() }

// Name returns a space name unique to this test run, and removes the space
// and its volume when the test ends.
func Name(tb testing.TB, eng *engine.Engine, base string) string {
	tb.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "t-" + base + "-" + hex.EncodeToString(b)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := eng.Remove(ctx, name, true); err != nil && !errors.Is(err, spaces.ErrNotFound) {
			tb.Errorf("cleaning up space %s: %v", name, err)
		}
	})
	return name
}

// Response is an HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test when it is not JSON.
func (r Response) JSON(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("decoding %q: %v", r.Body, err)
	}
}

// Map decodes the body as a JSON object.
func (r Response) Map(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	r.JSON(tb, &m)
	return m
}

// Do sends a request with the test key. body may be nil, a string (sent as
// is) or any value (sent as JSON). headers are extra header pairs.
func (n *Node) Do(tb testing.TB, method, path string, body any, headers ...string) Response {
	tb.Helper()
	return n.DoKey(tb, Key, method, path, body, headers...)
}

// DoKey is Do with another key; an empty key sends no Authorization header.
func (n *Node) DoKey(tb testing.TB, key, method, path string, body any, headers ...string) Response {
	tb.Helper()
	return do(tb, n.HTTP, n.URL, key, method, path, body, headers...)
}

func do(tb testing.TB, hc *http.Client, base, key, method, path string, body any, headers ...string) Response {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if http.CanonicalHeaderKey(headers[i]) == "Host" {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// Raw returns the Docker client for assertions on the engine itself.
func (n *Node) Raw() *client.Client { return n.Engine.Client() }

// FakeClock is a settable clock for tests that must not sleep.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewFakeClock returns a clock stopped at t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{now: t} }

func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
