package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"tailscale.com/ipn/ipnstate"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
)

// memStore is a NodeStore in memory.
type memStore struct {
	mu    sync.Mutex
	nodes []spaces.NodeHealth
}

func (m *memStore) Nodes(context.Context) ([]spaces.NodeHealth, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]spaces.NodeHealth(nil), m.nodes...), nil
}

func (m *memStore) PutNodes(_ context.Context, nodes []spaces.NodeHealth) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nodes = append([]spaces.NodeHealth(nil), nodes...)
	return nil
}

// noPeers is a tailnet without other devices.
type noPeers struct{}

func (noPeers) Status(context.Context) (*ipnstate.Status, error) { return &ipnstate.Status{}, nil }

// grants gives the node role to the hosts in nodes.
func grants(nodes ...string) func(context.Context, string) (spaces.Caller, error) {
	return func(_ context.Context, addr string) (spaces.Caller, error) {
		for _, n := range nodes {
			if n == addr {
				acc, _ := spaces.AccessFrom([]spaces.Grant{{Role: "node"}})
				return spaces.Caller{Addr: addr, Access: acc}, nil
			}
		}
		return spaces.Caller{Addr: addr}, nil
	}
}

func member(name, host string, online bool, free uint64, gpu bool) spaces.NodeHealth {
	n := spaces.NodeHealth{Name: name, URL: "http://" + host + ":7777", Status: spaces.NodeOffline,
		Capabilities: &spaces.NodeCapabilities{MemoryFree: free, GPU: gpu}}
	if online {
		n.Status = spaces.NodeOnline
	}
	return n
}

// TestPlace: "auto" takes the online, trusted node that fits with the
// most free memory, this node on ties, and refuses when none fits.
func TestPlace(t *testing.T) {
	self := member("self", "100.64.0.1", true, 100, false)
	tests := []struct {
		name    string
		others  []spaces.NodeHealth
		gpu     bool
		want    string
		wantErr string
	}{
		{name: "more free memory wins", others: []spaces.NodeHealth{member("big", "100.64.0.2", true, 200, false)}, want: "big"},
		{name: "this node wins ties", others: []spaces.NodeHealth{member("same", "100.64.0.2", true, 100, false)}, want: "self"},
		{name: "offline nodes are skipped", others: []spaces.NodeHealth{member("down", "100.64.0.2", false, 900, false)}, want: "self"},
		{name: "untrusted nodes are skipped", others: []spaces.NodeHealth{member("rogue", "100.64.0.9", true, 900, false)}, want: "self"},
		{name: "a GPU is wanted", others: []spaces.NodeHealth{member("small-gpu", "100.64.0.2", true, 1, true)}, gpu: true, want: "small-gpu"},
		{name: "no GPU anywhere", others: []spaces.NodeHealth{member("big", "100.64.0.2", true, 900, false)}, gpu: true, wantErr: "No online node has a GPU"},
		{name: "untrusted GPU", others: []spaces.NodeHealth{member("rogue", "100.64.0.9", true, 900, true)}, gpu: true, wantErr: "No online node has a GPU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(t.Context(), Config{Store: &memStore{nodes: tt.others}, Self: "self", Peers: noPeers{}, WhoIs: grants("100.64.0.2")})
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Place(t.Context(), self, tt.gpu)
			if tt.wantErr != "" {
				if !errors.Is(err, spaces.ErrConflict) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Place = %q, %v; want a conflict %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Place = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestCanVouch: requests go to other nodes with a key or a tailnet
// identity of this node's own tailnet, and only one hop.
func TestCanVouch(t *testing.T) {
	f := &Fleet{}
	tests := []struct {
		name string
		c    spaces.Caller
		ok   bool
	}{
		{name: "api key", c: spaces.CallerAPIKey(), ok: true},
		{name: "tailnet person", c: spaces.Caller{Kind: spaces.KindPerson, Actor: "alice@example.com", Addr: "100.64.0.5"}, ok: true},
		{name: "tagged device", c: spaces.Caller{Kind: spaces.KindTagged, Actor: "tag:ci", Addr: "100.64.0.6"}, ok: true},
		{name: "vouched for by another node", c: spaces.Caller{Kind: spaces.KindVouched, Actor: "alice@example.com", Addr: "100.64.0.5", Via: "n1"}},
		{name: "local caller without address", c: spaces.CallerLocal()},
		{name: "the node's own work", c: spaces.CallerAutoSleep()},
		{name: "nobody", c: spaces.Caller{Addr: "100.64.0.5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.CanVouch(tt.c)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, spaces.ErrForbidden)) {
				t.Fatalf("CanVouch = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestStaticFleetRefreshAndCall: configured nodes are probed with the
// key, found online with their capabilities or offline with the reason,
// this node is never listed, and another node's refusals come back as
// domain errors with its message.
func TestStaticFleetRefreshAndCall(t *testing.T) {
	const key = "fleet-test-key"
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/health":
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok", "version": "v9", "node": "b"})
		case r.Header.Get("Authorization") != "Bearer "+key:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"Unauthorized"}`))
		case r.URL.Path == "/api/system/capabilities":
			_ = json.NewEncoder(w).Encode(api.Capabilities{CPUs: 4, MemoryFree: 42})
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"Space not found: x"}`))
		}
	}))
	t.Cleanup(b.Close)
	f, err := New(t.Context(), Config{Store: &memStore{}, Self: "a", APIKey: key, Static: []StaticNode{
		{Name: "a", URL: "http://127.0.0.1:2"}, {Name: "b", URL: b.URL + "/"}, {Name: "gone", URL: "http://127.0.0.1:1"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	if err := f.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	nodes, updated, err := f.Nodes(t.Context())
	if err != nil || updated.IsZero() || len(nodes) != 2 {
		t.Fatalf("Nodes = %+v, %v, %v; want b and gone, refreshed", nodes, updated, err)
	}
	got, err := f.Online(t.Context(), "B")
	if err != nil || got.Version != "v9" || got.Capabilities == nil || got.Capabilities.MemoryFree != 42 || got.URL != b.URL {
		t.Fatalf("Online(B) = %+v, %v", got, err)
	}
	if gone, err := f.Online(t.Context(), "gone"); !errors.Is(err, spaces.ErrUnavailable) || gone.Problem != "unreachable" {
		t.Fatalf("Online(gone) = %+v, %v; want offline, unreachable", gone, err)
	}
	if _, err := f.Online(t.Context(), "a"); !errors.Is(err, spaces.ErrNotFound) {
		t.Fatalf("Online(self) = %v, want not found", err)
	}
	creds := http.Header{"Authorization": {"Bearer " + key}}
	var out map[string]any
	err = f.Call(t.Context(), got, creds, http.MethodGet, "/api/spaces/x", nil, &out)
	if !errors.Is(err, spaces.ErrNotFound) || !strings.Contains(err.Error(), "Space not found: x") {
		t.Fatalf("Call = %v, want the node's not found", err)
	}
	if err := f.Call(t.Context(), got, nil, http.MethodGet, "/api/spaces/x", nil, &out); !errors.Is(err, spaces.ErrUnauthorized) {
		t.Fatalf("Call without key = %v, want unauthorized", err)
	}
	if visited := visitOnline(t, f, nodes); len(visited) != 1 || visited[0] != "b" {
		t.Fatalf("EachOnline visited %v, want [b]", visited)
	}
	u, _ := url.Parse(b.URL)
	if addrs := f.StaticAddrs(); !addrs[u.Hostname()] {
		t.Fatalf("StaticAddrs = %v, want %s", addrs, u.Hostname())
	}
}

// TestEachOnlineTrustsNow: a fleet-wide call goes only to online nodes
// that hold the node role now, whatever the cache says.
func TestEachOnlineTrustsNow(t *testing.T) {
	nodes := []spaces.NodeHealth{
		member("peer", "100.64.0.2", true, 1, false),
		member("down", "100.64.0.3", false, 1, false),
		member("lost-role", "100.64.0.4", true, 1, false),
	}
	f, err := New(t.Context(), Config{Store: &memStore{nodes: nodes}, Self: "self", Peers: noPeers{}, WhoIs: grants("100.64.0.2", "100.64.0.3")})
	if err != nil {
		t.Fatal(err)
	}
	if visited := visitOnline(t, f, nodes); len(visited) != 1 || visited[0] != "peer" {
		t.Fatalf("EachOnline visited %v, want [peer]", visited)
	}
	if _, err := f.Online(t.Context(), "lost-role"); !errors.Is(err, spaces.ErrForbidden) {
		t.Fatalf("Online(lost-role) = %v, want forbidden", err)
	}
}

// visitOnline returns the names of the nodes EachOnline calls its
// function for.
func visitOnline(t *testing.T, f *Fleet, nodes []spaces.NodeHealth) []string {
	t.Helper()
	var mu sync.Mutex
	var visited []string
	f.EachOnline(t.Context(), nodes, func(n spaces.NodeHealth) {
		mu.Lock()
		defer mu.Unlock()
		visited = append(visited, n.Name)
	})
	return visited
}
