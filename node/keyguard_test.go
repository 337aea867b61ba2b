package node_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/fleet"
	"github.com/adam91holt/clawdspace/node"
	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// TestWrongKeysBackOff: an address that sends wrong keys is answered 429
// with Retry-After after DefaultAuthFreeFailures of them, for a wait that
// doubles with each further failure; meanwhile no key from it is looked
// at (the right one neither, so the wait cannot test guesses); the
// refusals are audited as auth.denied, a bounded number of rows (issue 11
// item 8).
func TestWrongKeysBackOff(t *testing.T) {
	t.Parallel()
	clock := nodetest.NewFakeClock(time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC))
	n := nodetest.Start(t, nodetest.Options{Clock: clock})
	wrong := "wrong-key-0123456789"
	for i := range node.DefaultAuthFreeFailures + 1 {
		wantError(t, n.DoKey(t, wrong, http.MethodGet, "/api/spaces", nil), http.StatusUnauthorized, "Unauthorized: wrong API key")
		_ = i
	}
	// The last failure began a wait of DefaultAuthBackoff (1 s).
	for _, key := range []string{wrong, nodetest.Key} {
		r := n.DoKey(t, key, http.MethodGet, "/api/spaces", nil)
		wantErrorContains(t, r, http.StatusTooManyRequests, "Too many wrong API keys", "try again in 1 s")
		if got := r.Header.Get("Retry-After"); got != "1" {
			t.Errorf("Retry-After = %q, want 1", got)
		}
	}
	// ?key= links, the sign-in form and the dashboard wait too.
	wantErrorContains(t, n.DoKey(t, "", http.MethodGet, "/api/spaces?key="+url.QueryEscape(nodetest.Key), nil), http.StatusTooManyRequests, "Too many")
	r, err := http.PostForm(n.URL+"/signin", url.Values{"key": {nodetest.Key}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusTooManyRequests || !strings.Contains(bodyOf(t, r), `data-testid="signin-limited"`) || r.Header.Get("Retry-After") == "" {
		t.Errorf("sign-in while waiting: %d, Retry-After %q", r.StatusCode, r.Header.Get("Retry-After"))
	}
	// A request without a key is not a guess: 401 as ever.
	wantError(t, n.DoKey(t, "", http.MethodGet, "/api/spaces", nil), http.StatusUnauthorized, "Unauthorized: missing API key (send Authorization: Bearer KEY)")

	// The next failure after the wait doubles it.
	clock.Advance(time.Second)
	wantError(t, n.DoKey(t, wrong, http.MethodGet, "/api/spaces", nil), http.StatusUnauthorized, "Unauthorized: wrong API key")
	if r := n.DoKey(t, wrong, http.MethodGet, "/api/spaces", nil); r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "2" {
		t.Errorf("second wait: %d, Retry-After %q, want 429 and 2", r.Status, r.Header.Get("Retry-After"))
	}
	// Hammering while waiting writes few audit rows.
	for range 100 {
		n.DoKey(t, wrong, http.MethodGet, "/api/spaces", nil)
	}
	// After the wait the right key works and ends the failures.
	clock.Advance(2 * time.Second)
	if r := n.Do(t, http.MethodGet, "/api/spaces", nil); r.Status != http.StatusOK {
		t.Fatalf("right key after the wait: %d %s", r.Status, r.Body)
	}
	for range node.DefaultAuthFreeFailures {
		wantError(t, n.DoKey(t, wrong, http.MethodGet, "/api/spaces", nil), http.StatusUnauthorized, "Unauthorized: wrong API key")
	}
	if r := n.Do(t, http.MethodGet, "/api/spaces", nil); r.Status != http.StatusOK {
		t.Errorf("right key within the free failures: %d %s", r.Status, r.Body)
	}

	events, err := n.Service.Events(t.Context(), spaces.CallerAPIKey(), spaces.AuditQuery{Type: spaces.EventDenied, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	limited := 0
	for _, e := range events {
		if r, _ := e.Meta["reason"].(string); strings.Contains(r, "Too many wrong API keys") {
			limited++
		}
	}
	if limited == 0 || len(events) > 10 {
		t.Errorf("auth.denied rows: %d (of them %d rate limited), want a few, at least one saying so", len(events), limited)
	}
}

// TestStaticFleetPeersNotSlowedDown: the configured members of a static
// fleet hold the key; wrong keys sent from their address never make the
// node refuse them.
func TestStaticFleetPeersNotSlowedDown(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{AuthFreeFailures: 1, NoFleetLoop: true,
		Nodes: []fleet.StaticNode{{Name: "peer", URL: "http://127.0.0.1:1"}}})
	for range 5 {
		wantError(t, n.DoKey(t, "wrong-key-0123456789", http.MethodGet, "/api/spaces", nil), http.StatusUnauthorized, "Unauthorized: wrong API key")
	}
	if r := n.Do(t, http.MethodGet, "/api/spaces", nil); r.Status != http.StatusOK {
		t.Errorf("a static peer's address after wrong keys: %d %s", r.Status, r.Body)
	}
}
