package node_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/node"
	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// page sends a browser-like request: a signed-in session's cookie, form bodies
// url-encoded, and no redirects followed.
func page(t *testing.T, n *nodetest.Node, method, path string, form url.Values, headers ...string) *http.Response {
	t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, err := http.NewRequest(method, n.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.AddCookie(signedIn(t, n))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

// sessions holds one signed-in session cookie per test node.
var sessions sync.Map // node URL -> *http.Cookie

// signedIn returns the session cookie of a browser signed in to n with the
// key, signing in on first use.
func signedIn(t *testing.T, n *nodetest.Node) *http.Cookie {
	t.Helper()
	if ck, ok := sessions.Load(n.URL); ok {
		return ck.(*http.Cookie)
	}
	ck := signIn(t, n)
	sessions.Store(n.URL, ck)
	return ck
}

// signIn signs in to n with the sign-in form and returns the session cookie.
func signIn(t *testing.T, n *nodetest.Node) *http.Cookie {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.PostForm(n.URL+"/signin", url.Values{"key": {nodetest.Key}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	for _, ck := range res.Cookies() {
		if ck.Name == "clawdspace_session" && ck.Value != "" {
			return ck
		}
	}
	t.Fatalf("sign-in answered %d without a session cookie", res.StatusCode)
	return nil
}

func bodyOf(t *testing.T, res *http.Response) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

func TestDashboardSignIn(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) *http.Response {
		t.Helper()
		res, err := noRedirect.Get(n.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	tests := []struct {
		name     string
		path     string
		status   int
		want     string
		location string
	}{
		{name: "no key", path: "/", status: http.StatusUnauthorized, want: `data-testid="signin"`},
		{name: "wrong key", path: "/?key=wrong-key-0123456789", status: http.StatusUnauthorized, want: `data-testid="signin-wrong"`},
		{name: "unknown page", path: "/nowhere?key=" + nodetest.Key, status: http.StatusSeeOther, want: `href="/nowhere"`, location: "/nowhere"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := get(tt.path)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.status)
			}
			if body := bodyOf(t, res); !strings.Contains(body, tt.want) {
				t.Errorf("body lacks %s", tt.want)
			}
			if loc := res.Header.Get("Location"); loc != tt.location {
				t.Errorf("Location = %q, want %q", loc, tt.location)
			}
			if csp := res.Header.Get("Content-Security-Policy"); tt.status != http.StatusSeeOther && !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("CSP = %q", csp)
			}
		})
	}

	// The ?key= link sets the cookie and goes to the same address without
	// the key.
	res := get("/spaces/new?key=" + nodetest.Key + "&x=1")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/spaces/new?x=1" {
		t.Fatalf("?key= answered %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	var ck *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "clawdspace_session" {
			ck = c
		}
	}
	if ck == nil || len(ck.Value) < 40 || strings.Contains(ck.Value, nodetest.Key) || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" ||
		ck.MaxAge != int(node.SessionTTL/time.Second) {
		t.Fatalf("cookie = %+v, want a session token (not the key), HttpOnly, SameSite=Strict, for 12 h", ck)
	}
	// From another site the redirect would drop the SameSite=Strict
	// cookie, so the node moves on with a same-site refresh instead.
	req, _ := http.NewRequest(http.MethodGet, n.URL+"/?key="+nodetest.Key, nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	cross, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer cross.Body.Close()
	if cross.StatusCode != http.StatusOK || cross.Header.Get("Refresh") != "0; url=/" {
		t.Errorf("cross-site ?key= answered %d, Refresh %q", cross.StatusCode, cross.Header.Get("Refresh"))
	}

	// With the cookie, pages and the API answer.
	ok := page(t, n, http.MethodGet, "/", nil)
	if ok.StatusCode != http.StatusOK || !strings.Contains(bodyOf(t, ok), `data-testid="overview-live"`) {
		t.Errorf("overview with the cookie: %d", ok.StatusCode)
	}
	if api := page(t, n, http.MethodGet, "/api/spaces", nil); api.StatusCode != http.StatusOK {
		t.Errorf("API with the cookie: %d", api.StatusCode)
	}

	// The sign-in form sets the cookie too; a wrong key is refused.
	bad := page(t, n, http.MethodPost, "/signin", url.Values{"key": {"nope-nope-nope-nope"}})
	if bad.StatusCode != http.StatusUnauthorized {
		t.Errorf("sign-in with a wrong key: %d", bad.StatusCode)
	}
	good := page(t, n, http.MethodPost, "/signin", url.Values{"key": {nodetest.Key}})
	if good.StatusCode != http.StatusSeeOther || len(good.Cookies()) == 0 {
		t.Errorf("sign-in: %d, cookies %v", good.StatusCode, good.Cookies())
	}
}

// TestDashboardCrossSiteRefused: a page of another site cannot drive the
// node's forms with the browser's cookie.
func TestDashboardCrossSiteRefused(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "csrf")
	tests := []struct {
		name    string
		headers []string
	}{
		{name: "fetch metadata", headers: []string{"Sec-Fetch-Site", "cross-site"}},
		{name: "origin", headers: []string{"Origin", "https://evil.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/spaces/" + name + "/pause", "/spaces/" + name + "/destroy", "/templates"} {
				res := page(t, n, http.MethodPost, path, url.Values{"removeVolume": {"true"}, "yaml": {"name: x\n"}}, tt.headers...)
				if res.StatusCode != http.StatusForbidden {
					t.Errorf("cross-site POST %s answered %d, want 403", path, res.StatusCode)
				}
			}
		})
	}
	if sp := getSpace(t, n, name); sp.Status != "running" {
		t.Errorf("space is %s after refused requests", sp.Status)
	}
	// The same request from the node's own page goes through.
	res := page(t, n, http.MethodPost, "/spaces/"+name+"/pause", url.Values{"back": {"/spaces/" + name}}, "Sec-Fetch-Site", "same-origin")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/spaces/"+name+"?done=paused" {
		t.Errorf("same-origin pause: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if sp := getSpace(t, n, name); sp.Status != "paused" {
		t.Errorf("space is %s after pause", sp.Status)
	}
}

// TestDashboardCreateErrors: the form shows the API's own messages next to
// the fields they are about.
func TestDashboardCreateErrors(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	tests := []struct {
		name   string
		form   url.Values
		status int
		field  string
	}{
		{name: "bad name", form: url.Values{"name": {"-dash"}}, status: http.StatusBadRequest, field: "error-name"},
		{name: "bad memory", form: url.Values{"name": {"ok"}, "memory": {"lots"}}, status: http.StatusBadRequest, field: "error-memory"},
		{name: "cpus not a number", form: url.Values{"name": {"ok"}, "cpus": {"many"}}, status: http.StatusBadRequest, field: "error-cpus"},
		{name: "too many cpus", form: url.Values{"name": {"ok"}, "cpus": {"99"}}, status: http.StatusBadRequest, field: "error-cpus"},
		{name: "gpu on a node without", form: url.Values{"name": {"ok"}, "gpu": {"true"}}, status: http.StatusBadRequest, field: "error-gpu"},
		{name: "unknown template", form: url.Values{"name": {"ok"}, "template": {"nope"}}, status: http.StatusNotFound, field: "error-template"},
		{name: "bad repo", form: url.Values{"name": {"ok"}, "repoUrl": {"ftp://x"}}, status: http.StatusBadRequest, field: "error-repo"},
		{name: "branch without repo", form: url.Values{"name": {"ok"}, "repoBranch": {"main"}}, status: http.StatusBadRequest, field: "error-repo"},
		{name: "env file outside the workspace", form: url.Values{"name": {"ok"}, "envFileText": {"A=1"}, "envFilePath": {"/etc/x"}}, status: http.StatusBadRequest, field: "error-envpath"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := page(t, n, http.MethodPost, "/spaces/new", tt.form)
			body := bodyOf(t, res)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.status)
			}
			if !strings.Contains(body, `data-testid="`+tt.field+`"`) {
				i := strings.Index(body, "field-error")
				t.Errorf("no %s in the form; errors shown: %s", tt.field, body[max(0, i):min(len(body), i+300)])
			}
		})
	}
}

// TestDashboardAuditPaging checks that the audit page filters in the store
// and pages back through every matching event, however old.
func TestDashboardAuditPaging(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	t0 := time.Now().Add(-time.Hour)
	// 1200 events: every third is alice's exec, so her oldest are far
	// beyond the newest thousand.
	for i := range 1200 {
		e := spaces.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Space: "paged", Type: spaces.EventCreate, Actor: "bob"}
		if i%3 == 0 {
			e.Type, e.Actor = spaces.EventExec, "alice@example.com"
		}
		if err := n.Store.Record(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	rows := regexp.MustCompile(`data-testid="event-row"`)
	next := regexp.MustCompile(`href="(/audit\?[^"]*before=\d+[^"]*)"[^>]*data-testid="page-next"`)
	path := "/audit?type=space.exec&actor=ALICE"
	seen := 0
	for pages := 0; path != ""; pages++ {
		body := bodyOf(t, page(t, n, "GET", path, nil))
		if strings.Contains(body, ">bob<") {
			t.Fatalf("page %s shows bob's events", path)
		}
		seen += len(rows.FindAllString(body, -1))
		path = ""
		if m := next.FindStringSubmatch(body); m != nil {
			path = html.UnescapeString(m[1])
		}
		if pages > 20 {
			t.Fatal("paging does not end")
		}
	}
	if seen != 400 {
		t.Fatalf("paged through %d of alice's 400 events", seen)
	}
	// The API takes the same filters.
	r := n.Do(t, "GET", "/api/audit?type=space.exec&actor=alice&limit=1000", nil)
	var v struct{ Events []spaces.Event }
	r.JSON(t, &v)
	if len(v.Events) != 400 {
		t.Fatalf("API: %d events, want 400", len(v.Events))
	}
	if r := n.Do(t, "GET", "/api/audit?before=x", nil); r.Status != 400 {
		t.Fatalf("before=x: %d", r.Status)
	}
}
