// Package fleet is a node's view of the other nodes: it finds them (among
// the tailnet's devices, or from a fixed list), keeps their health in a
// cache, decides which of them are trusted, picks a node for "auto"
// placement and sends requests to them. It knows nothing of HTTP routing
// or of the node's own handlers.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tailscale.com/ipn/ipnstate"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
)

// NodeStore caches the health of the fleet's nodes.
type NodeStore interface {
	Nodes(ctx context.Context) ([]spaces.NodeHealth, error)
	PutNodes(ctx context.Context, nodes []spaces.NodeHealth) error
}

// Peers lists the devices of the tailnet.
type Peers interface {
	Status(ctx context.Context) (*ipnstate.Status, error)
}

// StaticNode is a node named in CLAWDSPACE_NODES.
type StaticNode struct {
	Name string
	URL  string
}

// Config holds what a Fleet needs.
type Config struct {
	Store NodeStore
	// Self is this node's name; it is never listed as a peer.
	Self string
	// Peers are searched for other nodes, unless Static is set: only
	// those the policy gives the node role (see WhoIs).
	Peers Peers
	// WhoIs is the caller at a tailnet address (ip:port or ip) with the
	// grants the policy gives it on this node: the same lookup that
	// identifies requests, so trust of a node and of a caller agree.
	// Required with Peers.
	WhoIs func(ctx context.Context, addr string) (spaces.Caller, error)
	// Static replaces discovery with a fixed list of nodes.
	Static []StaticNode
	// APIKey is sent to Static nodes only (configured, hence trusted, and
	// sharing the fleet's key), for their capabilities. Discovered devices
	// never get it.
	APIKey string
	// Dial connects to other nodes (through the tailnet); nil means the
	// host's network.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Port is where nodes serve their API on the tailnet (default 7777).
	Port int
	// Interval is the time between two refreshes (default 30 s).
	Interval time.Duration
	// ProbeTimeout bounds each probe of a node (default 5 s).
	ProbeTimeout time.Duration
	Clock        spaces.Clock
	Logger       *slog.Logger
}

// Fleet finds the other nodes, probes their health and keeps it in the
// store, from which /api/nodes answers at once.
type Fleet struct {
	cfg       Config
	transport *http.Transport
	client    *http.Client
	loop      spaces.Loop
	refreshMu sync.Mutex
	refreshed atomic.Int64 // unix ms of the last completed refresh
}

// New builds a Fleet; Start runs its refresh loop.
func New(_ context.Context, cfg Config) (*Fleet, error) {
	if cfg.Store == nil {
		return nil, errors.New("fleet: a store is required")
	}
	if cfg.Peers == nil && len(cfg.Static) == 0 {
		return nil, errors.New("fleet: tailnet peers or a static node list are required")
	}
	if len(cfg.Static) == 0 && cfg.WhoIs == nil {
		return nil, errors.New("fleet: discovering tailnet peers needs WhoIs")
	}
	if cfg.Port == 0 {
		cfg.Port = 7777
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 5 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = spaces.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &http.Transport{
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	if cfg.Dial != nil {
		t.DialContext = cfg.Dial
	} else {
		t.DialContext = (&net.Dialer{Timeout: cfg.ProbeTimeout}).DialContext
	}
	client := &http.Client{
		Transport: t,
		// A node answers; it never sends this node elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Fleet{cfg: cfg, transport: t, client: client}, nil
}

// Start refreshes now and then every Interval until Close.
func (f *Fleet) Start(ctx context.Context) {
	f.loop.Start(ctx, f.cfg.Interval, true, func(ctx context.Context) {
		if err := f.Refresh(ctx); err != nil && ctx.Err() == nil {
			f.cfg.Logger.Warn("refreshing fleet health", "err", err)
		}
	})
}

// Close stops the loop and waits for a refresh under way.
func (f *Fleet) Close() {
	f.loop.Close()
	f.transport.CloseIdleConnections()
}

// Nodes returns the cached health of the other nodes and when it was last
// refreshed (zero when never).
func (f *Fleet) Nodes(ctx context.Context) ([]spaces.NodeHealth, time.Time, error) {
	nodes, err := f.cfg.Store.Nodes(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	updated := f.refreshed.Load()
	for _, n := range nodes {
		updated = max(updated, n.CheckedAt.UnixMilli())
	}
	var at time.Time
	if updated > 0 {
		at = time.UnixMilli(updated)
	}
	return nodes, at, nil
}

// Lookup returns the cached health of the node called name.
func (f *Fleet) Lookup(ctx context.Context, name string) (spaces.NodeHealth, error) {
	nodes, _, err := f.Nodes(ctx)
	if err != nil {
		return spaces.NodeHealth{}, err
	}
	for _, n := range nodes {
		if strings.EqualFold(n.Name, name) {
			return n, nil
		}
	}
	return spaces.NodeHealth{}, spaces.Errorf(spaces.ErrNotFound, "Node not found: %s", name)
}

// candidate is a device that may run a node.
type candidate struct {
	name   string // from CLAWDSPACE_NODES or the device's host name
	url    string
	static bool // from CLAWDSPACE_NODES: keeps its configured name
	online bool // as the control server sees it
}

// Refresh probes every candidate once and stores the results. Known
// nodes that no longer answer, or left the tailnet, turn offline.
func (f *Fleet) Refresh(ctx context.Context) error {
	f.refreshMu.Lock()
	defer f.refreshMu.Unlock()
	cands, err := f.candidates(ctx)
	if err != nil {
		return err
	}
	known, err := f.cfg.Store.Nodes(ctx)
	if err != nil {
		return err
	}
	byURL := make(map[string]spaces.NodeHealth, len(known))
	for _, n := range known {
		byURL[n.URL] = n
	}
	results := make([]*spaces.NodeHealth, len(cands))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, c := range cands {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			prev, wasKnown := byURL[c.url]
			results[i] = f.probe(ctx, c, prev, wasKnown)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	now := f.cfg.Clock.Now()
	// One row per name: an online answer wins over an offline one (a node
	// that came back on a new address), else the first in URL order.
	best := make(map[string]int)
	var out []spaces.NodeHealth
	for _, r := range results {
		if r == nil {
			continue
		}
		key := strings.ToLower(r.Name)
		i, dup := best[key]
		switch {
		case !dup:
			best[key] = len(out)
			out = append(out, *r)
		case out[i].Status != spaces.NodeOnline && r.Status == spaces.NodeOnline:
			out[i] = *r
		}
	}
	for _, n := range known {
		if _, seen := best[strings.ToLower(n.Name)]; !seen && n.Status != spaces.NodeOffline {
			n.Status, n.Problem, n.CheckedAt = spaces.NodeOffline, "no longer found on the tailnet", now
			out = append(out, n)
		}
	}
	if err := f.cfg.Store.PutNodes(ctx, out); err != nil {
		return err
	}
	f.refreshed.Store(now.UnixMilli())
	return nil
}

func (f *Fleet) candidates(ctx context.Context) ([]candidate, error) {
	if len(f.cfg.Static) > 0 {
		out := make([]candidate, 0, len(f.cfg.Static))
		for _, s := range f.cfg.Static {
			if !strings.EqualFold(s.Name, f.cfg.Self) {
				out = append(out, candidate{name: s.Name, url: strings.TrimSuffix(s.URL, "/"), static: true, online: true})
			}
		}
		return out, nil
	}
	st, err := f.cfg.Peers.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading tailnet peers: %w", err)
	}
	var out []candidate
	for _, p := range st.Peer {
		if len(p.TailscaleIPs) == 0 {
			continue
		}
		// Prefer the IPv4 address: it is what people read in the console.
		ip := p.TailscaleIPs[0]
		for _, a := range p.TailscaleIPs {
			if a.Is4() {
				ip = a
				break
			}
		}
		// Only devices the policy names as nodes are asked: others
		// never see this node's probes, and cannot pose as a node.
		peer, err := f.cfg.WhoIs(ctx, ip.String())
		if err != nil || !peer.Access.Can(spaces.ActNode, "") {
			continue
		}
		url := "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(f.cfg.Port))
		out = append(out, candidate{name: p.HostName, url: url, online: p.Online})
	}
	slices.SortFunc(out, func(a, b candidate) int { return strings.Compare(a.url, b.url) })
	return out, nil
}

// probe asks one candidate for its health and capabilities. It returns
// nil for a device that is not a node and was never one.
func (f *Fleet) probe(ctx context.Context, c candidate, prev spaces.NodeHealth, wasKnown bool) *spaces.NodeHealth {
	now := f.cfg.Clock.Now()
	offline := func(problem string) *spaces.NodeHealth {
		if !wasKnown && len(f.cfg.Static) == 0 {
			return nil
		}
		n := prev
		if !wasKnown {
			n = spaces.NodeHealth{Name: c.name, URL: c.url}
		}
		n.Status, n.Problem, n.CheckedAt = spaces.NodeOffline, problem, now
		return &n
	}
	if !c.online {
		return offline("offline on the tailnet")
	}
	start := time.Now()
	var h api.Health
	if err := f.getJSON(ctx, c.url+"/api/health", &h); err != nil {
		return offline(err.Error())
	}
	latency := time.Since(start)
	if h.Status != "ok" || h.Node == "" {
		return offline("not a Clawdspace node")
	}
	name, problem := h.Node, ""
	if c.static && !strings.EqualFold(h.Node, c.name) {
		name, problem = c.name, "the node calls itself "+h.Node
	}
	if strings.EqualFold(name, f.cfg.Self) {
		if !c.static {
			f.cfg.Logger.Warn("another node has this node's name: give each node its own --hostname", "name", name, "url", c.url)
		}
		return nil
	}
	n := spaces.NodeHealth{
		Name: name, URL: c.url, Status: spaces.NodeOnline, Version: h.Version, Problem: problem,
		LatencyMs: latency.Milliseconds(), LastSeen: now, CheckedAt: now, Capabilities: prev.Capabilities,
	}
	var caps api.Capabilities
	if err := f.getJSON(ctx, c.url+"/api/system/capabilities", &caps); err != nil {
		n.Problem = strings.TrimPrefix(problem+"; ", "; ") + "capabilities: " + err.Error()
	} else {
		dc := caps.Domain()
		n.Capabilities = &dc
	}
	return &n
}

// getJSON GETs url as this node (by its tailnet identity, or with the key
// for configured nodes) and decodes a 200 answer.
func (f *Fleet) getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.ProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if !f.Discovers() && f.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+f.cfg.APIKey)
	}
	res, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("no answer within %s", f.cfg.ProbeTimeout)
		}
		return errors.New("unreachable")
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading answer: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		var e api.Error
		_ = json.Unmarshal(body, &e)
		return fmt.Errorf("HTTP %d %s", res.StatusCode, e.Error)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errors.New("answer is not JSON")
	}
	return nil
}

// Discovers reports whether the fleet is found among tailnet peers (not
// set by CLAWDSPACE_NODES).
func (f *Fleet) Discovers() bool { return len(f.cfg.Static) == 0 }

// Transport is the HTTP transport to other nodes, for forwarding.
func (f *Fleet) Transport() http.RoundTripper { return f.transport }

// StaticAddrs are the IP addresses of the configured (static) nodes: the
// node's own peers, which hold the key.
func (f *Fleet) StaticAddrs() map[string]bool {
	out := map[string]bool{}
	for _, n := range f.cfg.Static {
		u, err := url.Parse(n.URL)
		if err != nil {
			continue
		}
		if ip := net.ParseIP(u.Hostname()); ip != nil {
			out[ip.String()] = true
		}
	}
	return out
}
