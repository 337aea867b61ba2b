package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"tailscale.com/tailcfg"

	"github.com/adam91holt/clawdspace/fleet"
	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/tailnet"
)

// caller makes requests from one tailnet device.
type caller struct {
	dev *tailnet.Node
	c   *http.Client
}

func newCaller(dev *tailnet.Node) caller { return caller{dev: dev, c: dev.HTTPClient()} }

func (c caller) do(t *testing.T, n *nodetest.Node, method, path string, body any, headers ...string) nodetest.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+n.TS.Addr()+":7777"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := c.c.Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, n.Name, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return nodetest.Response{Status: res.StatusCode, Header: res.Header, Body: data}
}

func wantCode(t *testing.T, r nodetest.Response, want int, what string) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.Status, want, r.Body)
	}
}

// lastEvent returns the newest audit event of type typ on n.
func lastEvent(t *testing.T, n *nodetest.Node, space, typ string) spaces.Event {
	t.Helper()
	evs, err := n.Store.Events(t.Context(), spaces.AuditQuery{Space: space, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Type == typ {
			return evs[i]
		}
	}
	t.Fatalf("no %s event for space %q on %s; events: %+v", typ, space, n.Name, evs)
	return spaces.Event{}
}

// TestFleet runs three real tsnet nodes and two people's devices on one
// in-process tailnet: a person with a grant manages spaces on any node
// through any node, a person without one is refused and audited.
func TestFleet(t *testing.T) {
	ctl := nodetest.StartControl(t)
	var nodes []*nodetest.Node
	for i, ns := range []string{"fa", "fb", "fc"} {
		nodes = append(nodes, nodetest.Start(t, nodetest.Options{
			Tailnet: ctl, Hostname: "node-" + string(rune('1'+i)), Namespace: ns,
		}))
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	alice, bob := newCaller(ctl.Join(t, "alice-laptop")), newCaller(ctl.Join(t, "bob-laptop"))
	nodetest.WaitForPeers(t, n1.TS, n2.TS, n3.TS, alice.dev, bob.dev)
	serving := []*tailnet.Node{n1.TS, n2.TS, n3.TS}
	for _, n := range nodes {
		ctl.Grant(t, n.TS, serving, spaces.Grant{Role: "node"})
	}
	ctl.Grant(t, alice.dev, serving, spaces.Grant{Role: "operator"})

	t.Run("discovery", func(t *testing.T) {
		// The first refreshes ran before the grants: the nodes knew no
		// devices with the node role yet.
		for _, n := range nodes {
			if err := n.Fleet.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		r := alice.do(t, n1, "GET", "/api/nodes", nil)
		wantCode(t, r, 200, "nodes")
		var v struct {
			Nodes []struct {
				Name         string `json:"name"`
				URL          string `json:"url"`
				Status       string `json:"status"`
				Self         bool   `json:"self"`
				Capabilities *struct {
					Arch   string `json:"arch"`
					CPUs   int    `json:"cpus"`
					Spaces *int   `json:"spaces"`
				} `json:"capabilities"`
			} `json:"nodes"`
			LastUpdatedAt int64 `json:"lastUpdatedAt"`
		}
		r.JSON(t, &v)
		got := map[string]string{}
		for _, n := range v.Nodes {
			got[n.Name] = n.Status
			if n.Capabilities == nil || n.Capabilities.Arch == "" || n.Capabilities.CPUs == 0 {
				t.Errorf("node %s: capabilities missing: %s", n.Name, r.Body)
			}
			if !n.Self && (n.Capabilities == nil || n.Capabilities.Spaces == nil) {
				t.Errorf("node %s: spaces count missing: %s", n.Name, r.Body)
			}
		}
		if len(v.Nodes) != 3 || got["node-1"] != "online" || got["node-2"] != "online" || got["node-3"] != "online" || !v.Nodes[0].Self {
			t.Fatalf("nodes = %s, want node-1 (self), node-2 and node-3 online", r.Body)
		}
		if v.LastUpdatedAt <= 0 {
			t.Errorf("lastUpdatedAt = %d", v.LastUpdatedAt)
		}
		// The answer comes from SQLite: the rows are there for a restart.
		stored, err := n1.Store.Nodes(t.Context())
		if err != nil || len(stored) != 2 {
			t.Fatalf("stored nodes = %+v, %v; want node-2 and node-3", stored, err)
		}
	})

	name := nodetest.Name(t, n2.Engine, "fleet")
	t.Run("manage a space on another node through this one", func(t *testing.T) {
		r := alice.do(t, n1, "POST", "/api/spaces?node=node-2", map[string]any{"name": name})
		wantCode(t, r, 201, "create on node-2 via node-1")
		if _, err := n2.Service.Get(t.Context(), spaces.CallerAPIKey(), name); err != nil {
			t.Fatalf("space not on node-2: %v", err)
		}
		if _, err := n1.Service.Get(t.Context(), spaces.CallerAPIKey(), name); err == nil {
			t.Fatal("space also on node-1")
		}
		r = alice.do(t, n3, "POST", "/api/spaces/"+name+"/exec?node=node-2", map[string]any{"command": "echo hello from $(hostname)"})
		wantCode(t, r, 200, "exec via node-3")
		if !strings.Contains(string(r.Body), "hello from") {
			t.Fatalf("exec output %s", r.Body)
		}
		// Streaming exec travels through the proxy too.
		r = alice.do(t, n1, "POST", "/api/spaces/"+name+"/exec?node=node-2", map[string]any{"command": "echo streamed", "stream": true})
		wantCode(t, r, 200, "streaming exec")
		if !strings.Contains(string(r.Body), "streamed") {
			t.Fatalf("streamed output %s", r.Body)
		}
		// The target recorded the person, with the node that vouched.
		ev := lastEvent(t, n2, name, spaces.EventExec)
		if !strings.HasPrefix(ev.Actor, "user-") || ev.Meta["device"] != "alice-laptop" || ev.Meta["via"] != "node-1" {
			t.Fatalf("exec audit on node-2 = %+v, want alice's login, device alice-laptop, via node-1", ev)
		}
	})

	t.Run("all nodes' spaces", func(t *testing.T) {
		r := alice.do(t, n3, "GET", "/api/spaces?all=true", nil)
		wantCode(t, r, 200, "all spaces")
		var v struct {
			Spaces []struct {
				Name string `json:"name"`
				Node string `json:"node"`
			} `json:"spaces"`
			Errors []any `json:"errors"`
		}
		r.JSON(t, &v)
		found := false
		for _, sp := range v.Spaces {
			found = found || (sp.Name == name && sp.Node == "node-2")
		}
		if !found || len(v.Errors) != 0 {
			t.Fatalf("all=true: %s, want %s on node-2 and no errors", r.Body, name)
		}
	})

	t.Run("forwarding goes one hop", func(t *testing.T) {
		r := alice.do(t, n1, "GET", "/api/spaces?node=node-2&all=true", nil)
		wantCode(t, r, 200, "all=true forwarded")
		if strings.Contains(string(r.Body), `"node":`) || !strings.Contains(string(r.Body), name) {
			t.Fatalf("node-2 answered %s: want its own list, not a fleet-wide one", r.Body)
		}
	})

	t.Run("the dashboard knows the person", func(t *testing.T) {
		r := alice.do(t, n1, "GET", "/", nil)
		wantCode(t, r, 200, "overview on the tailnet, no key")
		if !strings.Contains(string(r.Body), "(alice-laptop)") || !strings.Contains(string(r.Body), "@fake-control.example.net") {
			t.Fatalf("overview does not show who is signed in: %s", r.Body)
		}
		r = bob.do(t, n1, "GET", "/", nil)
		wantCode(t, r, 403, "overview for a person without a grant")
	})

	t.Run("browser checks on the tailnet", func(t *testing.T) {
		// A page whose name was pointed at the node (DNS rebinding) is
		// not the node, whatever it says about its origin.
		rebind := nodetest.Name(t, n1.Engine, "rebind")
		r := alice.do(t, n1, "POST", "/api/spaces", map[string]any{"name": rebind},
			"Host", "evil.example:7777", "Origin", "http://evil.example:7777", "Sec-Fetch-Site", "same-origin")
		wantCode(t, r, 403, "rebound host")
		// The node's MagicDNS names are its own.
		r = alice.do(t, n1, "GET", "/api/spaces", nil, "Host", n1.TS.DNSName()+":7777")
		wantCode(t, r, 200, "MagicDNS name")
		// A terminal forwarded from another origin's page is refused by
		// the node the browser talks to.
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		_, res, err := websocket.Dial(ctx, "ws://"+n1.TS.Addr()+":7777/api/spaces/"+name+"/terminal?node=node-2",
			&websocket.DialOptions{HTTPClient: alice.c, HTTPHeader: http.Header{"Origin": {"http://evil.example"}}})
		if err == nil || res == nil || res.StatusCode != 403 {
			t.Fatalf("cross-origin forwarded terminal: %v, %v; want 403", err, res)
		}
	})

	t.Run("terminal through another node", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		conn, res, err := websocket.Dial(ctx, "ws://"+n1.TS.Addr()+":7777/api/spaces/"+name+"/terminal?node=node-2",
			&websocket.DialOptions{HTTPClient: alice.c})
		if err != nil {
			t.Fatalf("terminal via node-1: %v (%v)", err, res)
		}
		defer conn.CloseNow()
		msg, _ := json.Marshal(map[string]string{"type": "input", "data": "echo term-$((6*7))\n"})
		if err := conn.Write(ctx, websocket.MessageText, msg); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		for !strings.Contains(out.String(), "term-42") {
			_, b, err := conn.Read(ctx)
			if err != nil {
				t.Fatalf("reading terminal: %v; got %q", err, out.String())
			}
			out.Write(b)
		}
		conn.Close(websocket.StatusNormalClosure, "")
	})

	t.Run("auto placement", func(t *testing.T) {
		auto := "t-auto-" + strings.TrimPrefix(name, "t-fleet-")
		for _, n := range nodes {
			eng := n.Engine
			t.Cleanup(func() { _ = eng.Remove(context.Background(), auto, true) })
		}
		r := alice.do(t, n1, "POST", "/api/spaces", map[string]any{"name": auto, "node": "auto"})
		wantCode(t, r, 201, "auto create")
		on := 0
		for _, n := range nodes {
			if _, err := n.Service.Get(t.Context(), spaces.CallerAPIKey(), auto); err == nil {
				on++
			}
		}
		if on != 1 {
			t.Fatalf("auto space is on %d nodes, want 1", on)
		}
		// A GPU space goes to a node with a GPU, or nowhere.
		gpuNodes := 0
		for _, n := range nodes {
			if n.Service.HasGPU() {
				gpuNodes++
			}
		}
		if gpuNodes == 0 {
			r = alice.do(t, n1, "POST", "/api/spaces", map[string]any{"name": auto + "-gpu", "node": "auto", "gpu": true})
			wantCode(t, r, 409, "auto create with a GPU on a fleet without one")
		}
	})

	t.Run("a person without a grant is refused and audited", func(t *testing.T) {
		r := bob.do(t, n1, "GET", "/api/spaces", nil)
		wantCode(t, r, 403, "bob lists")
		ev := lastEvent(t, n1, "", spaces.EventDenied)
		if !strings.HasPrefix(ev.Actor, "user-") || ev.Meta["device"] != "bob-laptop" || ev.Meta["reason"] == "" {
			t.Fatalf("denial audit = %+v, want bob's login, device and a reason", ev)
		}
		r = bob.do(t, n1, "POST", "/api/spaces/"+name+"/exec?node=node-2", map[string]any{"command": "id"})
		wantCode(t, r, 403, "bob execs through node-1")
		ev = lastEvent(t, n2, name, spaces.EventDenied)
		if ev.Meta["device"] != "bob-laptop" || ev.Meta["via"] != "node-1" {
			t.Fatalf("denial audit on node-2 = %+v", ev)
		}
	})

	t.Run("a device with grants but no node role cannot vouch", func(t *testing.T) {
		r := alice.do(t, n2, "GET", "/api/spaces", nil, "Clawdspace-Forwarded-For", bob.dev.Addr())
		wantCode(t, r, 403, "alice claims to forward for bob")
		if !strings.Contains(string(r.Body), "may not forward") {
			t.Fatalf("body %s", r.Body)
		}
	})

	t.Run("a forged forwarded identity is refused", func(t *testing.T) {
		r := bob.do(t, n2, "POST", "/api/spaces/"+name+"/exec", map[string]any{"command": "id"},
			"Clawdspace-Forwarded-For", alice.dev.Addr())
		wantCode(t, r, 403, "bob claims to forward for alice")
		if !strings.Contains(string(r.Body), "may not forward") {
			t.Fatalf("body %s", r.Body)
		}
		ev := lastEvent(t, n2, "", spaces.EventDenied)
		if ev.Meta["device"] != "bob-laptop" || !strings.Contains(ev.Meta["reason"].(string), "forward") {
			t.Fatalf("forgery audit = %+v", ev)
		}
	})

	t.Run("the API key travels with forwarded requests", func(t *testing.T) {
		r := bob.do(t, n1, "GET", "/api/spaces/"+name+"?node=node-2", nil, "Authorization", "Bearer "+nodetest.Key)
		wantCode(t, r, 200, "bob with the key, via node-1")
		r = bob.do(t, n1, "GET", "/api/spaces/"+name+"?node=node-2", nil, "Authorization", "Bearer wrong-key-0123456789")
		wantCode(t, r, 401, "bob with a wrong key")
	})

	t.Run("only devices with the node role get forwarded requests", func(t *testing.T) {
		// The policy takes node-3's role away on node-1 (only).
		ctl.Grant(t, n3.TS, []*tailnet.Node{n1.TS})
		nodetest.WaitUntil(t, "node-1 to stop trusting node-3", func() bool {
			r := alice.do(t, n1, "GET", "/api/spaces?node=node-3", nil)
			return r.Status == 403 && strings.Contains(string(r.Body), "not a trusted node")
		})
		// Given back, node-3 is found again.
		ctl.Grant(t, n3.TS, []*tailnet.Node{n1.TS}, spaces.Grant{Role: "node"})
		if err := n1.Fleet.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
		r := alice.do(t, n1, "GET", "/api/spaces?node=node-3", nil)
		wantCode(t, r, 200, "node-3 trusted again")
	})

	t.Run("a node going away turns offline", func(t *testing.T) {
		n3.Stop()
		if err := n1.Fleet.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
		r := alice.do(t, n1, "GET", "/api/nodes", nil)
		var v struct {
			Nodes []struct{ Name, Status string } `json:"nodes"`
		}
		r.JSON(t, &v)
		got := map[string]string{}
		for _, n := range v.Nodes {
			got[n.Name] = n.Status
		}
		if got["node-3"] != "offline" || got["node-2"] != "online" {
			t.Fatalf("nodes after node-3 left: %s", r.Body)
		}
		r = alice.do(t, n1, "GET", "/api/spaces?node=node-3", nil)
		wantCode(t, r, 503, "forward to an offline node")
	})
}

// TestTailnetGrants checks grants given to every caller at once, changed
// while the node runs, and the trusted-tailnet opt-in.
func TestTailnetGrants(t *testing.T) {
	ctl := nodetest.StartControl(t)
	n := nodetest.Start(t, nodetest.Options{Tailnet: ctl, Hostname: "solo", Namespace: "fg"})
	open := nodetest.Start(t, nodetest.Options{Tailnet: ctl, Hostname: "open", Namespace: "fh", TrustTailnet: true})
	carol := newCaller(ctl.Join(t, "carol-phone"))
	nodetest.WaitForPeers(t, n.TS, open.TS, carol.dev)

	r := carol.do(t, n, "GET", "/api/spaces", nil)
	wantCode(t, r, 403, "no grant")
	r = carol.do(t, n, "GET", "/api/health", nil)
	wantCode(t, r, 200, "health needs no identity")

	setGlobal := func(g ...spaces.Grant) {
		t.Helper()
		raw := make([]tailcfg.RawMessage, 0, len(g))
		for _, x := range g {
			b, _ := json.Marshal(x)
			raw = append(raw, tailcfg.RawMessage(b))
		}
		ctl.Server.SetGlobalAppCaps(tailcfg.PeerCapMap{spaces.CapabilityName: raw})
	}
	// A viewer may look but not act; the change applies without a restart.
	setGlobal(spaces.Grant{Role: "viewer"})
	nodetest.WaitUntil(t, "the viewer grant to arrive", func() bool {
		return carol.do(t, n, "GET", "/api/spaces", nil).Status == 200
	})
	name := nodetest.Name(t, n.Engine, "grant")
	r = carol.do(t, n, "POST", "/api/spaces", map[string]any{"name": name})
	wantCode(t, r, 403, "viewer creates")
	ev := lastEvent(t, n, name, spaces.EventDenied)
	if ev.Meta["device"] != "carol-phone" || !strings.Contains(ev.Meta["reason"].(string), "may not create") {
		t.Fatalf("denial audit = %+v", ev)
	}
	// Operators on some spaces only: patterns decide, and the list hides
	// the others.
	setGlobal(spaces.Grant{Role: "operator", Spaces: []string{"t-grant-*"}})
	nodetest.WaitUntil(t, "the operator grant to arrive", func() bool {
		return carol.do(t, n, "POST", "/api/spaces", map[string]any{"name": name}).Status == 201
	})
	other := nodetest.Name(t, n.Engine, "other")
	if _, err := n.Service.Create(t.Context(), spaces.CallerAPIKey(), spaces.CreateRequest{Name: other}); err != nil {
		t.Fatal(err)
	}
	r = carol.do(t, n, "POST", "/api/spaces/"+other+"/exec", map[string]any{"command": "true"})
	wantCode(t, r, 403, "exec outside the grant's spaces")
	r = carol.do(t, n, "GET", "/api/spaces", nil)
	if strings.Contains(string(r.Body), other) || !strings.Contains(string(r.Body), name) {
		t.Fatalf("list shows %s, want %s only", r.Body, name)
	}
	r = carol.do(t, n, "PUT", "/api/templates", map[string]any{"yaml": "name: x\n"})
	wantCode(t, r, 403, "operator edits templates")
	r = carol.do(t, n, "GET", "/api/templates/default", nil)
	wantCode(t, r, 200, "a grant limited to some spaces reads a template")
	// Grants taken away apply to the next request.
	setGlobal()
	nodetest.WaitUntil(t, "the grant to go", func() bool {
		return carol.do(t, n, "GET", "/api/spaces", nil).Status == 403
	})
	// On a trusted tailnet, every device has full access.
	r = carol.do(t, open, "GET", "/api/audit", nil)
	wantCode(t, r, 200, "trusted tailnet")

	// A device that answers like a node but holds no node role is not
	// probed, listed or sent requests; on the trusted tailnet it is.
	for _, x := range []*nodetest.Node{n, open} {
		if err := x.Fleet.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.Fleet.Lookup(t.Context(), "open"); err == nil {
		t.Fatal("node open discovered by solo, which does not give it the node role")
	}
	r = carol.do(t, n, "GET", "/api/spaces?node=open", nil, "Authorization", "Bearer "+nodetest.Key)
	wantCode(t, r, 404, "forwarding to a device without the node role")
	if _, err := open.Fleet.Lookup(t.Context(), "solo"); err != nil {
		t.Fatalf("the trusting node did not discover solo: %v", err)
	}
}

// TestStaticFleet checks CLAWDSPACE_NODES without a tailnet: nodes listed
// by URL, sharing the API key.
func TestStaticFleet(t *testing.T) {
	b := nodetest.Start(t, nodetest.Options{Hostname: "static-b", Namespace: "sb"})
	a := nodetest.Start(t, nodetest.Options{Hostname: "static-a", Namespace: "sa",
		Nodes: []fleet.StaticNode{{Name: "static-a", URL: "http://127.0.0.1:1"}, {Name: "static-b", URL: b.URL}}})
	if err := a.Fleet.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := a.Do(t, "GET", "/api/nodes", nil)
	var v struct {
		Nodes []struct {
			Name, Status string
			Capabilities *struct {
				CPUs int `json:"cpus"`
			} `json:"capabilities"`
		} `json:"nodes"`
	}
	r.JSON(t, &v)
	if len(v.Nodes) != 2 || v.Nodes[1].Name != "static-b" || v.Nodes[1].Status != "online" ||
		v.Nodes[1].Capabilities == nil || v.Nodes[1].Capabilities.CPUs == 0 {
		t.Fatalf("nodes = %s, want self and static-b online with capabilities (self listed once)", r.Body)
	}
	name := nodetest.Name(t, b.Engine, "static")
	r = a.Do(t, "POST", "/api/spaces?node=static-b", map[string]any{"name": name})
	wantCode(t, r, 201, "create through the static fleet")
	r = a.Do(t, "GET", "/api/spaces?all=true", nil)
	if !strings.Contains(string(r.Body), `"node":"static-b"`) {
		t.Fatalf("all=true: %s", r.Body)
	}
	// The dashboard's form makes a space on another node and answers with
	// a page of its own that links to the space on that node (the CSP's
	// form-action 'self' blocks a redirect to another origin); the node's
	// refusals show in the form.
	form := func(v url.Values) nodetest.Response {
		t.Helper()
		return a.Do(t, "POST", "/spaces/new", v.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	}
	other := nodetest.Name(t, b.Engine, "form")
	a.HTTP.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r = form(url.Values{"node": {"static-b"}, "name": {other}, "template": {"default"}})
	if r.Status != http.StatusCreated || r.Header.Get("Location") != "" ||
		!strings.Contains(string(r.Body), `href="`+b.URL+"/spaces/"+other+`"`) || !strings.Contains(string(r.Body), "Created "+other+" on static-b") {
		t.Fatalf("form create on static-b: %d %q %s", r.Status, r.Header.Get("Location"), r.Body)
	}
	if _, err := b.Service.Get(t.Context(), spaces.CallerAPIKey(), other); err != nil {
		t.Fatalf("space not on static-b: %v", err)
	}
	r = form(url.Values{"node": {"static-b"}, "name": {other}, "template": {"default"}})
	if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), "Space already exists") {
		t.Fatalf("form create of an existing space on static-b: %d %s", r.Status, r.Body)
	}

	b.Stop()
	if err := a.Fleet.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	r = a.Do(t, "GET", "/api/nodes", nil)
	r.JSON(t, &v)
	if v.Nodes[1].Status != "offline" {
		t.Fatalf("after static-b stopped: %s", r.Body)
	}

	// The health survives a restart: before any probe, the node answers
	// from what it stored.
	a.Stop()
	again := nodetest.Start(t, nodetest.Options{Hostname: "static-a", Namespace: "sa", DataDir: a.DataDir, NoFleetLoop: true,
		Nodes: []fleet.StaticNode{{Name: "static-b", URL: b.URL}}})
	r = again.Do(t, "GET", "/api/nodes", nil)
	var after struct {
		Nodes []struct {
			Name, Status, LastSeen string
			Capabilities           *struct {
				CPUs int `json:"cpus"`
			} `json:"capabilities"`
		} `json:"nodes"`
		LastUpdatedAt int64 `json:"lastUpdatedAt"`
	}
	r.JSON(t, &after)
	if len(after.Nodes) != 2 || after.Nodes[1].Name != "static-b" || after.Nodes[1].Status != "offline" ||
		after.Nodes[1].LastSeen == "" || after.Nodes[1].Capabilities == nil || after.LastUpdatedAt <= 0 {
		t.Fatalf("after a restart, before any probe: %s", r.Body)
	}
}
