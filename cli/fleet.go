package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/adam91holt/clawdspace/api"
)

// DefaultPort is where a node listens unless told otherwise.
const DefaultPort = "7777"

// discoveryTTL is how long a discovery is reused before nodes are asked again.
const discoveryTTL = 60 * time.Second

// probeTimeout bounds each discovery request, so a dead host costs little.
const probeTimeout = 3 * time.Second

// Node is a node the CLI knows.
type Node struct {
	Name   string `json:"name"`
	URL    string `json:"url"`
	Online bool   `json:"online"`
	// Error says why the node is offline.
	Error string `json:"error,omitempty"`
}

// Fleet finds nodes, the node that holds a space, and a node with a GPU.
type Fleet struct {
	cfg  *Config
	http *http.Client
	now  func() time.Time

	mu    sync.Mutex
	nodes []Node // memo of the last discovery in this process
}

// newFleet loads the configuration and returns the fleet it describes.
func newFleet(d *Deps) (*Fleet, error) {
	cfg, err := d.Config()
	if err != nil {
		return nil, err
	}
	hc := d.HTTP
	if hc == nil {
		hc = newHTTPClient()
	}
	return &Fleet{cfg: cfg, http: hc, now: d.now}, nil
}

// hostEntry is one configured node: an optional name and its URL.
type hostEntry struct {
	Name string
	URL  string
}

// NormalizeServer turns a host, host:port or URL into a node's base URL: a
// host without scheme or port means http://HOST:7777, and a trailing /api
// or / is dropped.
func NormalizeServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty server")
	}
	if !strings.Contains(s, "://") {
		host := s
		if h, p, err := net.SplitHostPort(s); err == nil {
			if p == "" {
				p = DefaultPort
			}
			host = net.JoinHostPort(h, p)
		} else {
			host = net.JoinHostPort(strings.Trim(s, "[]"), DefaultPort)
		}
		s = "http://" + host
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("%q is not a node address (use a name, HOST, HOST:PORT or http://HOST:PORT)", s)
	}
	u.Path = strings.TrimSuffix(strings.TrimRight(u.Path, "/"), "/api")
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimRight(u.String(), "/"), nil
}

// hostLabel is a node's host:port, the name of a node whose own name is not
// known.
func hostLabel(base string) string {
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		return u.Host
	}
	return base
}

// entries are the configured nodes: the default server first, then the
// hosts; 127.0.0.1:7777 when nothing is configured.
func (f *Fleet) entries() ([]hostEntry, error) {
	raw := append([]string{}, f.cfg.Hosts...)
	if f.cfg.Server != "" {
		raw = append([]string{f.cfg.Server}, raw...)
	}
	if len(raw) == 0 {
		raw = []string{"127.0.0.1"}
	}
	var out []hostEntry
	seen := map[string]bool{}
	for _, r := range raw {
		name, addr, ok := strings.Cut(r, "=")
		if !ok {
			name, addr = "", r
		}
		u, err := NormalizeServer(addr)
		if err != nil {
			return nil, fmt.Errorf("CLAWDSPACE_HOSTS: %w", err)
		}
		if !seen[u] {
			seen[u] = true
			out = append(out, hostEntry{Name: strings.ToLower(name), URL: u})
		}
	}
	return out, nil
}

// client returns a client for a node.
func (f *Fleet) client(n Node) *Client {
	return &Client{BaseURL: n.URL, Key: f.cfg.Key, Name: n.Name, HTTP: f.http}
}

type discoveryCache struct {
	Key   string    `json:"key"`
	At    time.Time `json:"at"`
	Nodes []Node    `json:"nodes"`
}

// cacheKey changes when the hosts or the key change, so a fixed key or a
// new host is seen at once.
func (f *Fleet) cacheKey(es []hostEntry) string {
	h := sha256.New()
	for _, e := range es {
		fmt.Fprintf(h, "%s=%s\n", e.Name, e.URL)
	}
	fmt.Fprintf(h, "key=%s", f.cfg.Key)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Nodes returns the known nodes with their names and whether they answer,
// from the cache when it is fresh and refresh is false.
func (f *Fleet) Nodes(ctx context.Context, refresh bool) ([]Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nodes != nil && !refresh {
		return f.nodes, nil
	}
	es, err := f.entries()
	if err != nil {
		return nil, err
	}
	key := f.cacheKey(es)
	if !refresh {
		if c, ok := f.readCache(); ok && c.Key == key && f.now().Sub(c.At) < discoveryTTL && f.now().Sub(c.At) >= 0 {
			f.nodes = c.Nodes
			return f.nodes, nil
		}
	}
	nodes := f.discover(ctx, es)
	f.nodes = nodes
	f.writeCache(discoveryCache{Key: key, At: f.now(), Nodes: nodes})
	return nodes, nil
}

func (f *Fleet) readCache() (discoveryCache, bool) {
	var c discoveryCache
	if f.cfg.CacheFile == "" {
		return c, false
	}
	b, err := os.ReadFile(f.cfg.CacheFile)
	if err != nil || json.Unmarshal(b, &c) != nil {
		return c, false
	}
	return c, true
}

// writeCache keeps a discovery; a cache that cannot be written only costs
// time, so errors are ignored.
func (f *Fleet) writeCache(c discoveryCache) {
	if f.cfg.CacheFile == "" {
		return
	}
	b, err := json.Marshal(c)
	if err != nil {
		return
	}
	if os.MkdirAll(filepath.Dir(f.cfg.CacheFile), 0o700) != nil {
		return
	}
	tmp := f.cfg.CacheFile + fmt.Sprintf(".%d.tmp", os.Getpid())
	if os.WriteFile(tmp, b, 0o600) == nil {
		_ = os.Rename(tmp, f.cfg.CacheFile)
	}
}

// discover probes every entry in parallel: /api/health says whether it
// runs, its self entry in /api/nodes (else /api/system's hostname) gives its
// name, and other online nodes in /api/nodes join the list.
func (f *Fleet) discover(ctx context.Context, es []hostEntry) []Node {
	type result struct {
		self  Node
		fleet []Node
	}
	res := make([]result, len(es))
	var wg sync.WaitGroup
	for i, e := range es {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i].self, res[i].fleet = f.probe(ctx, e)
		}()
	}
	wg.Wait()
	var nodes []Node
	seen := map[string]bool{}
	add := func(n Node) {
		if seen[n.URL] {
			return
		}
		seen[n.URL] = true
		nodes = append(nodes, n)
	}
	for _, r := range res {
		add(r.self)
	}
	for _, r := range res {
		for _, n := range r.fleet {
			add(n)
		}
	}
	// Two nodes may report the same host name (two nodes on one machine).
	used := map[string]int{}
	for i := range nodes {
		base := nodes[i].Name
		used[base]++
		if used[base] > 1 {
			nodes[i].Name = fmt.Sprintf("%s-%d", base, used[base])
		}
	}
	return nodes
}

func (f *Fleet) probe(ctx context.Context, e hostEntry) (Node, []Node) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	n := Node{Name: e.Name, URL: e.URL}
	c := &Client{BaseURL: e.URL, Key: f.cfg.Key, HTTP: f.http}
	var health api.Health
	if err := c.Do(ctx, http.MethodGet, "/health", nil, nil, &health); err != nil {
		n.Error = err.Error()
	} else if health.Status != "ok" {
		n.Error = fmt.Sprintf("%s does not look like a Clawdspace node", e.URL)
	} else {
		n.Online = true
	}
	if n.Name == "" {
		n.Name = hostLabel(e.URL)
	}
	if !n.Online {
		return n, nil
	}
	var fleet api.NodeList
	var others []Node
	named := e.Name != ""
	if err := c.Do(ctx, http.MethodGet, "/nodes", nil, nil, &fleet); err == nil {
		for _, o := range fleet.Nodes {
			switch {
			case o.Self:
				if !named && o.Name != "" {
					n.Name, named = strings.ToLower(o.Name), true
				}
			case o.URL != "" && o.Status == "online":
				if u, err := NormalizeServer(o.URL); err == nil {
					others = append(others, Node{Name: strings.ToLower(o.Name), URL: u, Online: true})
				}
			}
		}
	}
	if !named {
		// Only the hostname: the rest of an older node's answer need
		// not decode as this node's.
		var sys struct {
			Hostname string `json:"hostname"`
		}
		if err := c.Do(ctx, http.MethodGet, "/system", nil, nil, &sys); err == nil && sys.Hostname != "" {
			n.Name = strings.ToLower(sys.Hostname)
		}
	}
	return n, others
}

// online returns the nodes that answer, discovering again once when none
// did (a node started since the cache was written).
func (f *Fleet) online(ctx context.Context) ([]Node, error) {
	for _, refresh := range []bool{false, true} {
		nodes, err := f.Nodes(ctx, refresh)
		if err != nil {
			return nil, err
		}
		var up []Node
		for _, n := range nodes {
			if n.Online {
				up = append(up, n)
			}
		}
		if len(up) > 0 {
			return up, nil
		}
		if refresh || len(nodes) == 0 {
			return nil, noNodeError(nodes)
		}
	}
	return nil, errors.New("unreachable")
}

func noNodeError(nodes []Node) error {
	if len(nodes) == 1 {
		return errors.New(nodes[0].Error)
	}
	var why []string
	for _, n := range nodes {
		why = append(why, n.Error)
	}
	return fmt.Errorf("no Clawdspace node answers (%s); set CLAWDSPACE_HOSTS or --server", strings.Join(why, "; "))
}

// Target returns the node that server names (a node name, host, host:port
// or URL), or the default node when server is empty: CLAWDSPACE_SERVER, else
// the first configured node that answers.
func (f *Fleet) Target(ctx context.Context, server string) (*Client, error) {
	if server == "" {
		server = f.cfg.Server
	}
	if server == "" {
		up, err := f.online(ctx)
		if err != nil {
			return nil, err
		}
		return f.client(up[0]), nil
	}
	if strings.Contains(server, "://") {
		u, err := NormalizeServer(server)
		if err != nil {
			return nil, &UsageError{Err: fmt.Errorf("--server: %w", err)}
		}
		return f.client(Node{Name: f.nameOf(u), URL: u}), nil
	}
	es, err := f.entries()
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		if e.Name != "" && strings.EqualFold(e.Name, server) {
			return f.client(Node{Name: e.Name, URL: e.URL}), nil
		}
	}
	nodes, err := f.Nodes(ctx, false)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if strings.EqualFold(n.Name, server) {
			return f.client(n), nil
		}
	}
	u, err := NormalizeServer(server)
	if err != nil {
		return nil, &UsageError{Err: fmt.Errorf("--server: %w", err)}
	}
	return f.client(Node{Name: f.nameOf(u), URL: u}), nil
}

// nameOf names a URL from the last discovery in this process, else by its
// host:port.
func (f *Fleet) nameOf(u string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.nodes {
		if n.URL == u {
			return n.Name
		}
	}
	if c, ok := f.readCache(); ok {
		for _, n := range c.Nodes {
			if n.URL == u {
				return n.Name
			}
		}
	}
	return hostLabel(u)
}

// findInFleet asks one node for the spaces of its fleet (?all=true) and
// returns a client for the node that has name: directly when this CLI
// reaches that node, else through the node asked (Client.Via). nil when
// the list does not say (an older node, or the space is not there): the
// caller then asks every node.
func (f *Fleet) findInFleet(ctx context.Context, up []Node, name string) *Client {
	asked := f.client(up[0])
	var out struct {
		Spaces []struct {
			Name string `json:"name"`
			Node string `json:"node"`
		} `json:"spaces"`
	}
	if err := asked.Do(ctx, http.MethodGet, "/spaces", url.Values{"all": {"true"}}, nil, &out); err != nil {
		return nil
	}
	for _, s := range out.Spaces {
		if s.Name != name || s.Node == "" {
			continue
		}
		for _, n := range up {
			if strings.EqualFold(n.Name, s.Node) {
				return f.client(n)
			}
		}
		asked.Name, asked.Via = strings.ToLower(s.Node), s.Node
		return asked
	}
	return nil
}

// FindSpace returns the node that holds the space: the one server names,
// or the one the fleet's list says (one request, see findInFleet), else
// the one of the known nodes that has it, asking them all in parallel.
func (f *Fleet) FindSpace(ctx context.Context, server, name string) (*Client, error) {
	if server != "" {
		return f.Target(ctx, server)
	}
	up, err := f.online(ctx)
	if err != nil {
		return nil, err
	}
	if len(up) == 1 {
		return f.client(up[0]), nil
	}
	if c := f.findInFleet(ctx, up, name); c != nil {
		return c, nil
	}
	errs := make([]error, len(up))
	var wg sync.WaitGroup
	for i, n := range up {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f.client(n).GetSpace(ctx, name)
		}()
	}
	wg.Wait()
	var names, problems []string
	for i, n := range up {
		if errs[i] == nil {
			return f.client(n), nil
		}
		names = append(names, n.Name)
		if !IsNotFound(errs[i]) {
			problems = append(problems, errs[i].Error())
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("space %q not found on %s (%s)", name, strings.Join(names, ", "), strings.Join(problems, "; "))
	}
	return nil, fmt.Errorf("space %q not found on any node (%s)", name, strings.Join(names, ", "))
}

// Capabilities are a node's capabilities as `servers --json` shows them.
type Capabilities struct {
	GPU       bool    `json:"gpu"`
	GPUName   string  `json:"gpuName,omitempty"`
	GPUMemory string  `json:"gpuMemory,omitempty"`
	Arch      string  `json:"arch"`
	Platform  string  `json:"platform"`
	CPUs      int     `json:"cpus"`
	Memory    float64 `json:"memory"`
}

// nodeCaps is one node's capabilities, or why they could not be had.
type nodeCaps struct {
	Node      Node
	Caps      *Capabilities
	LatencyMs int64
	Err       error
}

// capabilities asks each node for its capabilities in parallel.
func (f *Fleet) capabilities(ctx context.Context, nodes []Node) []nodeCaps {
	out := make([]nodeCaps, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, 2*probeTimeout)
			defer cancel()
			start := time.Now()
			var c api.Capabilities
			err := f.client(n).Do(ctx, http.MethodGet, "/system/capabilities", nil, nil, &c)
			out[i] = nodeCaps{Node: n, LatencyMs: time.Since(start).Milliseconds(), Err: err}
			if err == nil {
				out[i].Caps = capabilitiesOf(c)
			}
		}()
	}
	wg.Wait()
	return out
}

// capabilitiesOf is what the CLI shows of a node's capabilities.
func capabilitiesOf(c api.Capabilities) *Capabilities {
	return &Capabilities{GPU: c.GPU, GPUName: c.GPUName, GPUMemory: c.GPUMemory, Arch: c.Arch, Platform: c.Platform,
		CPUs: c.CPUs, Memory: float64(c.Memory)}
}

// GPUNode returns the first known node that reports a GPU.
func (f *Fleet) GPUNode(ctx context.Context) (*Client, error) {
	up, err := f.online(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, nc := range f.capabilities(ctx, up) {
		if nc.Caps != nil && nc.Caps.GPU {
			return f.client(nc.Node), nil
		}
		names = append(names, nc.Node.Name)
	}
	return nil, fmt.Errorf("no node with a GPU among %s (add one to CLAWDSPACE_HOSTS or use --server)", strings.Join(names, ", "))
}
