package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/adam91holt/clawdspace/agent"
	"github.com/adam91holt/clawdspace/engine"
	"github.com/adam91holt/clawdspace/fleet"
	"github.com/adam91holt/clawdspace/node"
	"github.com/adam91holt/clawdspace/nodeapp"
	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/store"
	"github.com/adam91holt/clawdspace/tailnet"
)

// serveOptions is everything `serve` reads from flags and the environment.
type serveOptions struct {
	Listen       string
	WarmPool     []string
	APIKey       string
	DataDir      string
	DockerHost   string
	Image        string
	GPUImage     string
	Name         string
	TemplatesDir string
	AuthDisabled bool
	// AllowWeakKey starts with a key that node.CheckAPIKey finds too weak,
	// with a warning.
	AllowWeakKey bool
	// InsecureEgress makes spaces whose template blocks addresses even when
	// the node cannot enforce the block.
	InsecureEgress bool
	// InsecureWorkspaceSize makes spaces whose template limits the
	// workspace size although the node cannot enforce the limit.
	InsecureWorkspaceSize bool
	// FilesInSpace runs every file operation in the space as its user.
	FilesInSpace bool
	// Agent is the in-space agent's binary; "none" turns it off.
	Agent string
	// WorkspaceQuotaDir is a folder on btrfs with quotas enabled that holds
	// size-limited workspaces.
	WorkspaceQuotaDir string
	AllowedHosts      []string
	Verbose           bool

	IdleTimeout     time.Duration
	HistoryInterval time.Duration
	AuditMaxAge     dayDuration
	AuditMaxRows    int64
	MaxFileBytes    int64
	MaxExecOutput   int64
	MaxCheckpoints  int
	GitTokenHosts   []string
	Namespace       string

	// Tailnet mode.
	Tailnet      bool
	TSAuthKey    string
	Hostname     string
	ControlURL   string
	TrustTailnet bool
	Nodes        string
	NodesRefresh time.Duration

	// SSH.
	NoSSH     bool
	SSHListen string
	SSHPort   uint16
}

func newServeCmd(getenv func(string) string) *cobra.Command {
	o := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a Clawdspace node (local mode on 127.0.0.1:7777 by default)",
		Long: `Run a Clawdspace node: the REST API on 127.0.0.1:7777, spaces on the local Docker engine.

Settings come from flags, else from the environment: PORT, API_KEY, CLAWDSPACE_DATA_DIR,
CLAWDSPACE_IMAGE, CLAWDSPACE_GPU_IMAGE, CLAWDSPACE_AUTH_DISABLED, CLAWDSPACE_ALLOW_WEAK_KEY, CLAWDSPACE_TEMPLATES_DIR,
IDLE_TIMEOUT_MS, HISTORY_INGEST_MS, CLAWDSPACE_MAX_FILE_BYTES, CLAWDSPACE_GIT_TOKEN_HOSTS
("none" for no host), CLAWDSPACE_NAMESPACE, CLAWDSPACE_WARM_POOL and DOCKER_HOST.
Without an API key a strong one is generated on first start and kept in the data folder.

Tailnet mode (an auth key in TS_AUTHKEY or --ts-authkey, or --tailnet with a saved login)
joins the tailnet as its own device and serves the API there on :7777 too; people are known
by their tailnet identity and act by the grants of the policy file (docs/POLICY.md).
TS_CONTROL_URL, CLAWDSPACE_TRUST_TAILNET, CLAWDSPACE_NODES and NODES_REFRESH_MS apply there.

SSH (docs/SSH.md): on the tailnet on port 22 (--ssh-port, CLAWDSPACE_SSH_PORT), callers known
by WhoIs; in local mode on 127.0.0.1:2222 (--ssh-listen, CLAWDSPACE_SSH_LISTEN) with the keys of
DATA_DIR/ssh/authorized_keys. --no-ssh (CLAWDSPACE_NO_SSH) turns it off.

The in-space agent (--agent, default clawdspace-agent beside this binary, built by
make build) is mounted read-only into every space; execs go through it instead of the
Engine API. Without it every call takes the Engine API path.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return diskFullAtStart(o.DataDir, runServe(cmd.Context(), o, cmd.ErrOrStderr()))
		},
	}
	idle, idleErr := envMillis(getenv, "IDLE_TIMEOUT_MS", 10*time.Minute)
	hist, histErr := envMillis(getenv, "HISTORY_INGEST_MS", 15*time.Second)
	maxFile, maxErr := envInt(getenv, "CLAWDSPACE_MAX_FILE_BYTES", 10<<30)
	maxOut, maxOutErr := envInt(getenv, "CLAWDSPACE_MAX_EXEC_OUTPUT", node.DefaultMaxExecOutput)
	refresh, refreshErr := envMillis(getenv, "NODES_REFRESH_MS", 30*time.Second)
	sshPort, sshPortErr := envPort(getenv, "CLAWDSPACE_SSH_PORT", nodeapp.DefaultSSHTailnetPort)
	cmd.PreRunE = func(c *cobra.Command, _ []string) error {
		var errs []error
		for flag, err := range map[string]error{"idle-timeout": idleErr, "history-interval": histErr, "max-file-bytes": maxErr, "max-exec-output": maxOutErr, "nodes-refresh": refreshErr, "ssh-port": sshPortErr} {
			if err != nil && !c.Flags().Changed(flag) {
				errs = append(errs, err)
			}
		}
		if o.MaxFileBytes <= 0 {
			errs = append(errs, errors.New("--max-file-bytes must be positive"))
		}
		if o.MaxCheckpoints <= 0 {
			errs = append(errs, errors.New("--max-checkpoints must be positive"))
		}
		if o.MaxExecOutput <= 0 {
			errs = append(errs, errors.New("--max-exec-output must be positive"))
		}
		if o.AuditMaxAge < 0 || o.AuditMaxRows < 0 {
			errs = append(errs, errors.New("--audit-max-age and --audit-max-rows must not be negative"))
		}
		if o.SSHPort == 0 {
			errs = append(errs, errors.New("--ssh-port must be between 1 and 65535 (--no-ssh turns SSH off)"))
		}
		if o.NodesRefresh < time.Second {
			errs = append(errs, errors.New("--nodes-refresh must be at least 1s"))
		}
		if _, err := parseNodes(o.Nodes); err != nil {
			errs = append(errs, err)
		}
		if _, err := parseWarmPool(o.WarmPool); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	port := getenv("PORT")
	if port == "" {
		port = "7777"
	}
	f := cmd.Flags()
	f.StringVar(&o.Listen, "listen", net.JoinHostPort("127.0.0.1", port), "address to listen on ($PORT sets the port)")
	f.StringVar(&o.APIKey, "api-key", getenv("API_KEY"), "shared API key ($API_KEY); generated when empty")
	f.StringVar(&o.DataDir, "data-dir", defaultDataDir(getenv), "folder for the database and generated key ($CLAWDSPACE_DATA_DIR)")
	f.StringVar(&o.DockerHost, "docker-host", getenv("DOCKER_HOST"), "Docker engine address ($DOCKER_HOST)")
	f.StringVar(&o.Image, "image", envOr(getenv, "CLAWDSPACE_IMAGE", "clawdspace:latest"), "default sandbox image ($CLAWDSPACE_IMAGE)")
	f.StringVar(&o.GPUImage, "gpu-image", envOr(getenv, "CLAWDSPACE_GPU_IMAGE", "clawdspace-gpu:latest"), "image of the gpu template ($CLAWDSPACE_GPU_IMAGE)")
	f.StringVar(&o.TemplatesDir, "templates-dir", getenv("CLAWDSPACE_TEMPLATES_DIR"), "folder of template YAML files added at start-up when missing ($CLAWDSPACE_TEMPLATES_DIR)")
	f.StringVar(&o.Name, "name", "", "node name shown in /api/nodes (default: the host name)")
	f.BoolVar(&o.AuthDisabled, "auth-disabled", isTrue(getenv("CLAWDSPACE_AUTH_DISABLED")), "turn authentication off: development only ($CLAWDSPACE_AUTH_DISABLED)")
	f.BoolVar(&o.AllowWeakKey, "allow-weak-key", isTrue(getenv("CLAWDSPACE_ALLOW_WEAK_KEY")),
		"start with an API key shorter or more predictable than the rules allow, with a warning ($CLAWDSPACE_ALLOW_WEAK_KEY)")
	f.BoolVarP(&o.Verbose, "verbose", "v", false, "log debug messages")
	f.StringSliceVar(&o.AllowedHosts, "allowed-hosts", splitList(getenv("CLAWDSPACE_ALLOWED_HOSTS"), ""),
		"Host names accepted besides loopback ones when auth is disabled ($CLAWDSPACE_ALLOWED_HOSTS)")
	f.BoolVar(&o.InsecureEgress, "insecure-egress", false, "make spaces with a network even when their rules (egress block list, isolation from other spaces) cannot be enforced (node not root)")
	f.StringVar(&o.WorkspaceQuotaDir, "workspace-quota-dir", getenv("CLAWDSPACE_WORKSPACE_QUOTA_DIR"), "folder on btrfs with quotas enabled where workspaces of templates with workspace.maxSize are made ($CLAWDSPACE_WORKSPACE_QUOTA_DIR)")
	f.StringVar(&o.Agent, "agent", defaultAgentPath(), `the in-space agent's binary (clawdspace-agent, built beside clawdspace by "make build"), mounted read-only into every space so execs skip the Engine API; "none" (or a missing file) runs every call through the Engine API`)
	f.BoolVar(&o.FilesInSpace, "files-in-space", false, "run file operations inside the space as its user even where the node could reach the workspace volume from the host (slower; for a node that should not touch volumes)")
	f.BoolVar(&o.InsecureWorkspaceSize, "insecure-workspace-size", false, "make spaces whose template sets workspace.maxSize although the limit cannot be enforced")
	f.DurationVar(&o.IdleTimeout, "idle-timeout", idle, "pause spaces idle this long; 0 turns auto-sleep off ($IDLE_TIMEOUT_MS)")
	f.DurationVar(&o.HistoryInterval, "history-interval", hist, "how often shell history is read into the audit log; 0 turns it off ($HISTORY_INGEST_MS)")
	o.AuditMaxAge = dayDuration(spaces.DefaultAuditMaxAge)
	f.Var(&o.AuditMaxAge, "audit-max-age", "delete audit rows older than this (90d, 36h…); 0 keeps them")
	f.Int64Var(&o.AuditMaxRows, "audit-max-rows", spaces.DefaultAuditMaxRows, "keep only the newest this many audit rows; 0 keeps any number")
	f.Int64Var(&o.MaxFileBytes, "max-file-bytes", maxFile, "largest file upload in bytes ($CLAWDSPACE_MAX_FILE_BYTES)")
	f.Int64Var(&o.MaxExecOutput, "max-exec-output", maxOut, "exec output in bytes that JSON execs may hold in memory together; an exec that finds it spent gets 503 ($CLAWDSPACE_MAX_EXEC_OUTPUT)")
	f.IntVar(&o.MaxCheckpoints, "max-checkpoints", spaces.DefaultMaxCheckpoints, "checkpoints kept per space; one more is refused with 409")
	f.StringSliceVar(&o.GitTokenHosts, "git-token-hosts", splitList(getenv("CLAWDSPACE_GIT_TOKEN_HOSTS"), "github.com"),
		"hosts that get env.GITHUB_TOKEN when a create clones over https ($CLAWDSPACE_GIT_TOKEN_HOSTS)")
	f.StringArrayVar(&o.WarmPool, "warm-pool", splitList(getenv("CLAWDSPACE_WARM_POOL"), ""),
		"keep N spaces of TEMPLATE made in advance, paused, for creates under 100 ms: TEMPLATE=N, repeatable (docs/POOL.md; $CLAWDSPACE_WARM_POOL, comma-separated)")
	f.StringVar(&o.Namespace, "namespace", getenv("CLAWDSPACE_NAMESPACE"), "prefix of this node's container and volume names, for several nodes on one engine ($CLAWDSPACE_NAMESPACE)")
	f.BoolVar(&o.Tailnet, "tailnet", false, "join the tailnet with the login saved in the data folder (implied by an auth key)")
	f.StringVar(&o.TSAuthKey, "ts-authkey", getenv("TS_AUTHKEY"), "tailnet auth key for the first start ($TS_AUTHKEY)")
	f.StringVar(&o.Hostname, "hostname", "", "device name on the tailnet and node name (default: --name, else the machine's name)")
	f.StringVar(&o.ControlURL, "control-url", getenv("TS_CONTROL_URL"), "tailnet control server, for self-hosted ones ($TS_CONTROL_URL)")
	f.BoolVar(&o.TrustTailnet, "trust-tailnet", isTrue(getenv("CLAWDSPACE_TRUST_TAILNET")),
		"give every tailnet device that reaches the node full access, without grants: personal tailnets only ($CLAWDSPACE_TRUST_TAILNET)")
	f.StringVar(&o.Nodes, "nodes", getenv("CLAWDSPACE_NODES"), "fixed fleet instead of discovery: name=http://host:7777,... ($CLAWDSPACE_NODES)")
	f.DurationVar(&o.NodesRefresh, "nodes-refresh", refresh, "time between two fleet health probes ($NODES_REFRESH_MS)")
	f.BoolVar(&o.NoSSH, "no-ssh", isTrue(getenv("CLAWDSPACE_NO_SSH")), "turn the SSH door off ($CLAWDSPACE_NO_SSH)")
	f.StringVar(&o.SSHListen, "ssh-listen", envOr(getenv, "CLAWDSPACE_SSH_LISTEN", nodeapp.DefaultSSHListen), "SSH address in local mode, keys from DATA_DIR/ssh/authorized_keys ($CLAWDSPACE_SSH_LISTEN)")
	f.Uint16Var(&o.SSHPort, "ssh-port", sshPort, "SSH port on the tailnet ($CLAWDSPACE_SSH_PORT)")
	return cmd
}

// parseWarmPool reads --warm-pool values TEMPLATE=N (a later one of the
// same template wins).
func parseWarmPool(vals []string) (map[string]int, error) {
	out := map[string]int{}
	for _, v := range vals {
		tpl, n, ok := strings.Cut(strings.TrimSpace(v), "=")
		size, err := strconv.Atoi(strings.TrimSpace(n))
		tpl = strings.ToLower(strings.TrimSpace(tpl))
		if !ok || err != nil || size < 0 || size > maxWarmPool || spaces.ValidateTemplateName(tpl) != nil {
			return nil, fmt.Errorf("--warm-pool %q: want TEMPLATE=N with N from 0 to %d", v, maxWarmPool)
		}
		out[tpl] = size
	}
	return out, nil
}

// maxWarmPool bounds one template's pool: each member is a container.
const maxWarmPool = 100

// parseNodes reads CLAWDSPACE_NODES: name=http://host:7777,other=http://host2:7777.
func parseNodes(v string) ([]fleet.StaticNode, error) {
	var out []fleet.StaticNode
	for _, item := range splitList(v, "") {
		name, u, ok := strings.Cut(item, "=")
		name, u = strings.TrimSpace(name), strings.TrimSpace(u)
		if !ok || name == "" || !(strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")) {
			return nil, fmt.Errorf("CLAWDSPACE_NODES entry %q: want name=http://host:7777", item)
		}
		out = append(out, fleet.StaticNode{Name: name, URL: u})
	}
	return out, nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// envMillis reads a duration given in milliseconds, as the older node's
// settings are.
func envMillis(getenv func(string) string, key string, def time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(getenv(key))
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return def, fmt.Errorf("%s must be a whole number of milliseconds, not %q", key, v)
	}
	return time.Duration(n) * time.Millisecond, nil
}

func envPort(getenv func(string) string, key string, def uint16) (uint16, error) {
	v := strings.TrimSpace(getenv(key))
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return def, fmt.Errorf("%s must be a port between 1 and 65535, not %q", key, v)
	}
	return uint16(n), nil
}

func envInt(getenv func(string) string, key string, def int64) (int64, error) {
	v := strings.TrimSpace(getenv(key))
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return def, fmt.Errorf("%s must be a positive whole number, not %q", key, v)
	}
	return n, nil
}

func splitList(v, def string) []string {
	if strings.TrimSpace(v) == "" {
		v = def
	}
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// tokenHosts reads --git-token-hosts, where "none" means no host at all.
func tokenHosts(v []string) []string {
	if len(v) == 1 && v[0] == "none" {
		return []string{}
	}
	return v
}

func isTrue(s string) bool {
	b, _ := strconv.ParseBool(strings.TrimSpace(s))
	return b
}

// defaultDataDir follows the XDG base directory convention.
func defaultDataDir(getenv func(string) string) string {
	if d := getenv("CLAWDSPACE_DATA_DIR"); d != "" {
		return d
	}
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "clawdspace")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "clawdspace")
	}
	return filepath.Join(os.TempDir(), "clawdspace")
}

func runServe(ctx context.Context, o serveOptions, stderr interface{ Write([]byte) (int, error) }) error {
	level := slog.LevelInfo
	if o.Verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	seeds, err := readTemplates(o.TemplatesDir)
	if err != nil {
		return err
	}
	static, err := parseNodes(o.Nodes)
	if err != nil {
		return err
	}
	pool, err := parseWarmPool(o.WarmPool)
	if err != nil {
		return err
	}
	var generated bool
	cfg := nodeapp.Config{
		DataDir: o.DataDir, Listen: o.Listen, Name: cmp.Or(o.Hostname, o.Name), Logger: log,
		Engine: engine.Config{Host: o.DockerHost, AllowUnenforcedEgress: o.InsecureEgress,
			AllowUnenforcedWorkspaceSize: o.InsecureWorkspaceSize, WorkspaceQuotaDir: o.WorkspaceQuotaDir, Namespace: o.Namespace, FilesInSpace: o.FilesInSpace,
			AgentPath: agentPath(o.Agent, log)},
		Spaces: spaces.Config{DefaultImage: o.Image, GPUImage: o.GPUImage, GitTokenHosts: tokenHosts(o.GitTokenHosts), SeedTemplates: seeds,
			MaxCheckpoints: o.MaxCheckpoints, WarmPool: pool},
		Server: node.Config{AllowWeakKey: o.AllowWeakKey, AuthDisabled: o.AuthDisabled, Version: version,
			MaxFileBytes: o.MaxFileBytes, MaxExecOutput: o.MaxExecOutput, AllowedHosts: o.AllowedHosts, TrustTailnet: o.TrustTailnet},
		ResolveKey: func() (key string, err error) {
			key, generated, err = resolveAPIKey(o)
			return key, err
		},
		Fleet:           fleet.Config{Static: static, Interval: o.NodesRefresh},
		SSH:             nodeapp.SSHConfig{Off: o.NoSSH, Listen: o.SSHListen, TailnetPort: o.SSHPort},
		IdleTimeout:     o.IdleTimeout,
		HistoryInterval: o.HistoryInterval,
		AuditMaxAge:     time.Duration(o.AuditMaxAge),
		AuditMaxRows:    o.AuditMaxRows,
	}
	if o.TSAuthKey != "" || o.Tailnet {
		cfg.Tailnet = &tailnet.Config{AuthKey: o.TSAuthKey, ControlURL: o.ControlURL, Verbose: o.Verbose}
	}
	n, err := nodeapp.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	switch {
	case o.AuthDisabled:
		fmt.Fprintf(stderr, "Clawdspace node on %s (auth disabled)\n", n.URL)
	case generated:
		fmt.Fprintf(stderr, "Clawdspace node on %s\nGenerated API key (shown once, kept in %s):\n  %s\nDashboard: %s/?key=%s\n",
			n.URL, keyPath(o.DataDir), n.APIKey, n.URL, n.APIKey)
	default:
		fmt.Fprintf(stderr, "Clawdspace node on %s (API key: %s)\n", n.URL, keySource(o))
	}
	if n.Tailnet != nil {
		fmt.Fprintf(stderr, "On the tailnet as %s: http://%s:7777 (%s)\n", n.Name, n.Tailnet.Addr(), accessMode(o))
	}
	if n.SSH != nil {
		fmt.Fprintf(stderr, "SSH on %s (%s; docs/SSH.md)\n", n.SSHAddr, sshMode(n))
	}
	n.Start(ctx)
	return n.Wait()
}

// diskFullAtStart says plainly that the node stopped because its disk is
// full (SQLite itself may have said only "disk I/O error").
func diskFullAtStart(dataDir string, err error) error {
	if !errors.Is(err, spaces.ErrDiskFull) && !errors.Is(err, syscall.ENOSPC) {
		return err
	}
	free := "no space"
	if b, ok := store.FreeBytes(dataDir); ok {
		free = fmt.Sprintf("%d bytes", b)
	}
	return fmt.Errorf("the node's disk is full: its data folder %s has %s free; free some space and start again (%w)", dataDir, free, err)
}

func sshMode(n *nodeapp.Node) string {
	if n.Tailnet != nil {
		return "tailnet callers by their identity, no keys: ssh SPACE@" + n.Name
	}
	return "keys of " + filepath.Join("DATA_DIR", "ssh", "authorized_keys")
}

func accessMode(o serveOptions) string {
	if o.TrustTailnet {
		return "every tailnet device has full access: --trust-tailnet"
	}
	return "access by the grants of the tailnet policy"
}

func keyPath(dataDir string) string { return filepath.Join(dataDir, "api-key") }

func keySource(o serveOptions) string {
	if o.APIKey != "" {
		return "from --api-key or $API_KEY"
	}
	return "in " + keyPath(o.DataDir)
}

// resolveAPIKey returns the configured key, or the one kept in the data
// folder, generating and storing it (mode 0600) on first start.
func resolveAPIKey(o serveOptions) (key string, generated bool, err error) {
	if o.APIKey != "" {
		if err := checkKey(o, o.APIKey); err != nil {
			return "", false, fmt.Errorf("refusing the key of --api-key or $API_KEY: %w", err)
		}
		return o.APIKey, false, nil
	}
	p := keyPath(o.DataDir)
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		k := strings.TrimSpace(string(b))
		if k == "" {
			return "", false, fmt.Errorf("%s is empty: delete it to generate a new key", p)
		}
		if err := checkKey(o, k); err != nil {
			return "", false, fmt.Errorf("refusing the key in %s: %w (delete the file to generate a strong one)", p, err)
		}
		return k, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("reading API key: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", false, fmt.Errorf("generating API key: %w", err)
	}
	k := "cs_" + base64.RawURLEncoding.EncodeToString(raw)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("storing API key: %w", err)
	}
	if _, err := f.WriteString(k + "\n"); err != nil {
		f.Close()
		return "", false, fmt.Errorf("storing API key: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", false, fmt.Errorf("storing API key: %w", err)
	}
	return k, true, nil
}

// checkKey applies the node's key rules; --allow-weak-key lets a weak key
// through (node.New then warns), never one with whitespace around it.
func checkKey(o serveOptions, key string) error {
	err := node.CheckAPIKey(key)
	if errors.Is(err, node.ErrWeakKey) && o.AllowWeakKey {
		return nil
	}
	if errors.Is(err, node.ErrWeakKey) {
		return fmt.Errorf("%w, or pass --allow-weak-key to start anyway", err)
	}
	return err
}

// readTemplates parses every *.yaml and *.yml file of dir; a file that is not
// a valid template stops the start with its name and the problem.
func readTemplates(dir string) ([]spaces.Template, error) {
	if dir == "" {
		return nil, nil
	}
	var out []spaces.Template
	for _, pattern := range []string{"*.yaml", "*.yml"} {
		files, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("reading template: %w", err)
			}
			t, err := spaces.ParseTemplate(string(b))
			if err != nil {
				return nil, fmt.Errorf("template %s: %w", f, err)
			}
			out = append(out, t)
		}
	}
	return out, nil
}

// dayDuration is a flag duration that also takes whole days ("90d").
type dayDuration time.Duration

func (d *dayDuration) String() string {
	if *d > 0 && time.Duration(*d)%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(time.Duration(*d)/(24*time.Hour)), 10) + "d"
	}
	return time.Duration(*d).String()
}

func (d *dayDuration) Set(v string) error {
	if n, ok := strings.CutSuffix(strings.TrimSpace(v), "d"); ok {
		days, err := strconv.ParseInt(n, 10, 64)
		if err != nil || days < 0 || days > 100*365 {
			return fmt.Errorf("%q is not a number of days", v)
		}
		*d = dayDuration(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	x, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q is not a duration (90d, 36h, 0)", v)
	}
	*d = dayDuration(x)
	return nil
}

func (d *dayDuration) Type() string { return "duration" }

// defaultAgentPath is clawdspace-agent beside this binary.
func defaultAgentPath() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Join(filepath.Dir(exe), agent.BinName)
}

// agentPath is the agent binary to use, "" (the agent off) for "none" or
// a missing file, which is logged once.
func agentPath(flag string, log *slog.Logger) string {
	if flag == "" || flag == "none" {
		return ""
	}
	if _, err := os.Stat(flag); err != nil {
		log.Warn("the in-space agent is off: its binary is missing (make build puts it beside clawdspace); every call takes the Engine API path", "path", flag)
		return ""
	}
	return flag
}
