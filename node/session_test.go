package node_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/node"
	"github.com/adam91holt/clawdspace/nodetest"
)

// getWith sends GET path with the session cookie ck (none when nil) and
// returns the status and the new session cookie it set, if any.
func getWith(t *testing.T, n *nodetest.Node, path string, ck *http.Cookie) (int, *http.Cookie) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, n.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ck != nil {
		req.AddCookie(ck)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	for _, nc := range res.Cookies() {
		if nc.Name == "clawdspace_session" {
			return res.StatusCode, nc
		}
	}
	return res.StatusCode, nil
}

// TestDashboardSessions: the cookie holds a random session token, not the
// key; sign-out ends it on the node; it expires 12 h after its last use
// and its token is replaced every 15 minutes (issue 11 item 9).
func TestDashboardSessions(t *testing.T) {
	t.Parallel()
	clock := nodetest.NewFakeClock(time.Now())
	n := nodetest.Start(t, nodetest.Options{Clock: clock})

	a, b := signIn(t, n), signIn(t, n)
	if a.Value == b.Value || strings.Contains(a.Value, nodetest.Key) {
		t.Fatalf("session tokens %q and %q: want two random tokens, not the key", a.Value, b.Value)
	}
	for _, path := range []string{"/", "/api/spaces"} {
		if st, _ := getWith(t, n, path, a); st != http.StatusOK {
			t.Errorf("GET %s with a session: %d", path, st)
		}
	}
	// A cookie holding the key itself (as earlier versions set) is no
	// session.
	if st, _ := getWith(t, n, "/api/spaces", &http.Cookie{Name: "clawdspace_key", Value: nodetest.Key}); st != http.StatusUnauthorized {
		t.Errorf("the key as a cookie: %d, want 401", st)
	}
	// A page clears that old cookie.
	req0, _ := http.NewRequest(http.MethodGet, n.URL+"/", nil)
	req0.AddCookie(b)
	req0.AddCookie(&http.Cookie{Name: "clawdspace_key", Value: nodetest.Key})
	res0, err := http.DefaultTransport.RoundTrip(req0)
	if err != nil {
		t.Fatal(err)
	}
	res0.Body.Close()
	cleared := false
	for _, c := range res0.Cookies() {
		cleared = cleared || (c.Name == "clawdspace_key" && c.MaxAge < 0)
	}
	if res0.StatusCode != http.StatusOK || !cleared {
		t.Errorf("a page with the old key cookie: %d, cleared %v; want 200 and the cookie cleared", res0.StatusCode, cleared)
	}
	if st, _ := getWith(t, n, "/api/spaces", &http.Cookie{Name: "clawdspace_session", Value: nodetest.Key}); st != http.StatusUnauthorized {
		t.Errorf("the key as a session token: %d, want 401", st)
	}

	// Sign-out ends the session on the node: a copy of the cookie is
	// worthless afterwards. The other session lives on.
	req, _ := http.NewRequest(http.MethodPost, n.URL+"/signout", nil)
	req.AddCookie(a)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if st, _ := getWith(t, n, "/api/spaces", a); st != http.StatusUnauthorized {
		t.Errorf("a signed-out session: %d, want 401", st)
	}
	if st, _ := getWith(t, n, "/", a); st != http.StatusUnauthorized {
		t.Errorf("a signed-out session's page: %d, want the sign-in page (401)", st)
	}
	if st, _ := getWith(t, n, "/api/spaces", b); st != http.StatusOK {
		t.Errorf("the other session after a sign-out: %d", st)
	}

	// Rotation: after 15 minutes a request gets a new token; the old one
	// works a minute more, for requests under way.
	clock.Advance(node.SessionRotate)
	st, c := getWith(t, n, "/", b)
	if st != http.StatusOK || c == nil || c.Value == b.Value {
		t.Fatalf("after %s: %d with cookie %v, want a new token", node.SessionRotate, st, c)
	}
	if st, _ := getWith(t, n, "/api/spaces", b); st != http.StatusOK {
		t.Errorf("the old token at once after rotation: %d", st)
	}
	clock.Advance(2 * time.Minute)
	if st, _ := getWith(t, n, "/api/spaces", b); st != http.StatusUnauthorized {
		t.Errorf("the old token 2 minutes after rotation: %d, want 401", st)
	}

	// Sliding expiry: used every 11 hours it lives on; 12 h unused ends it.
	for range 3 {
		clock.Advance(11 * time.Hour)
		var nc *http.Cookie
		st, nc = getWith(t, n, "/api/spaces", c)
		if st != http.StatusOK {
			t.Fatalf("a session used 11 h after its last use: %d", st)
		}
		if nc != nil {
			c = nc
		}
	}
	clock.Advance(node.SessionTTL)
	if st, _ := getWith(t, n, "/api/spaces", c); st != http.StatusUnauthorized {
		t.Errorf("a session unused for 12 h: %d, want 401", st)
	}
}

// TestNewKeyEndsSessions: sessions are stored on the node (they survive a
// restart) and end when the node's API key changes.
func TestNewKeyEndsSessions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := nodetest.Start(t, nodetest.Options{DataDir: dir})
	ck := signIn(t, n)
	n.Stop()

	same := nodetest.Start(t, nodetest.Options{DataDir: dir})
	if st, _ := getWith(t, same, "/api/spaces", ck); st != http.StatusOK {
		t.Errorf("after a restart with the same key: %d, want the session kept", st)
	}
	same.Stop()

	other := nodetest.Start(t, nodetest.Options{DataDir: dir, APIKey: "another-key-9876543210zyxwvu"})
	if st, _ := getWith(t, other, "/api/spaces", ck); st != http.StatusUnauthorized {
		t.Errorf("after the key changed: %d, want 401", st)
	}
	if st, _ := getWith(t, other, "/", ck); st != http.StatusUnauthorized {
		t.Errorf("a page after the key changed: %d, want the sign-in page", st)
	}
}
