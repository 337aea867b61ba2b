package node_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/fleet"
	"github.com/adam91holt/clawdspace/nodetest"
)

// A node that stops answering must not hold a fleet-wide list: it is
// listed under "errors" once FleetListTimeout passes, the others' spaces
// are still there.
func TestFleetListSkipsASlowNode(t *testing.T) {
	b := nodetest.Start(t, nodetest.Options{Hostname: "slow-b", Namespace: "lb"})
	target, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// b answers its health and capabilities (so it is online) but never
	// its list of spaces.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/spaces" {
			<-r.Context().Done()
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)
	a := nodetest.Start(t, nodetest.Options{Hostname: "slow-a", Namespace: "la", FleetListTimeout: time.Second,
		Nodes: []fleet.StaticNode{{Name: "slow-a", URL: "http://127.0.0.1:1"}, {Name: "slow-b", URL: slow.URL}}})
	if err := a.Fleet.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	mine := newSpace(t, a, "mine")
	r := a.Do(t, "GET", "/api/spaces?all=true", nil)
	wantCode(t, r, http.StatusOK, "fleet list with a node that does not answer")
	var v struct {
		Spaces []struct {
			Name, Node string
		} `json:"spaces"`
		Errors []struct {
			Node, Error string
		} `json:"errors"`
	}
	r.JSON(t, &v)
	if len(v.Errors) != 1 || v.Errors[0].Node != "slow-b" {
		t.Errorf("errors = %+v, want one for slow-b", v.Errors)
	}
	found := false
	for _, sp := range v.Spaces {
		found = found || sp.Name == mine
	}
	if !found {
		t.Errorf("spaces = %+v, want this node's %s", v.Spaces, mine)
	}
}
