package node_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/adam91holt/clawdspace/nodetest"
)

// protectedRoutes is every route but health, with a body where one is read.
var protectedRoutes = []struct {
	method, path string
	body         any
}{
	{"GET", "/api/system", nil},
	{"GET", "/api/system/capabilities", nil},
	{"GET", "/api/nodes", nil},
	{"GET", "/api/templates", nil},
	{"GET", "/api/templates/default", nil},
	{"PUT", "/api/templates", map[string]string{"yaml": "name: auth-probe\n"}},
	{"DELETE", "/api/templates/lan", nil},
	{"GET", "/api/spaces", nil},
	{"POST", "/api/spaces", map[string]string{"name": "auth-probe"}},
	{"GET", "/api/spaces/auth-probe", nil},
	{"DELETE", "/api/spaces/auth-probe?removeVolume=true", nil},
	{"POST", "/api/spaces/auth-probe/stop", nil},
	{"POST", "/api/spaces/auth-probe/start", nil},
	{"POST", "/api/spaces/auth-probe/exec", map[string]string{"command": "id"}},
	{"GET", "/api/spaces/auth-probe/stats", nil},
	{"GET", "/api/audit", nil},
	{"GET", "/api/openapi.json", nil},
	{"GET", "/api/no-such-route", nil},
	{"POST", "/mcp", map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": map[string]any{"name": "destroy_space", "arguments": map[string]any{"name": "auth-probe"}}}},
	{"GET", "/mcp", nil},
}

func TestHealthNeedsNoKey(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	res := n.DoKey(t, "", http.MethodGet, "/api/health", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("status = %d, want 200 (body %s)", res.Status, res.Body)
	}
	if !strings.Contains(string(res.Body), `"ok"`) {
		t.Errorf("body %s does not contain \"ok\"", res.Body)
	}
	if got := res.Map(t)["status"]; got != "ok" {
		t.Errorf("status field = %v, want ok", got)
	}
}

func TestEveryOtherRouteNeedsTheKey(t *testing.T) {
	t.Parallel()
	// 54 wrong keys from one address: past the backoff's free failures
	// (TestWrongKeysBackOff covers those).
	n := nodetest.Start(t, nodetest.Options{AuthFreeFailures: 1000})
	for _, r := range protectedRoutes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			tests := []struct {
				name string
				key  string
			}{
				{name: "no key", key: ""},
				{name: "wrong key", key: "not-the-key"},
				{name: "key with a suffix", key: nodetest.Key + "x"},
			}
			for _, tt := range tests {
				res := n.DoKey(t, tt.key, r.method, r.path, r.body)
				if res.Status != http.StatusUnauthorized {
					t.Errorf("%s: status = %d, want 401 (body %s)", tt.name, res.Status, res.Body)
					continue
				}
				wantError(t, res, http.StatusUnauthorized, "")
			}
			sep := "?"
			if strings.Contains(r.path, "?") {
				sep = "&"
			}
			res := n.DoKey(t, "", r.method, r.path+sep+"key=wrong", r.body)
			wantError(t, res, http.StatusUnauthorized, "")
		})
	}
	// Nothing the refused requests asked for happened.
	if _, ok := listSpaces(t, n)["auth-probe"]; ok {
		t.Error("an unauthenticated create made a space")
	}
	if res := n.Do(t, http.MethodGet, "/api/templates/lan", nil); res.Status != http.StatusOK {
		t.Errorf("an unauthenticated delete removed template lan: %d %s", res.Status, res.Body)
	}
}

func TestKeyInQuery(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	tests := []struct {
		name string
		path string
		want int
	}{
		{name: "right key", path: "/api/spaces?key=" + url.QueryEscape(nodetest.Key), want: http.StatusOK},
		{name: "right key, other params", path: "/api/audit?limit=5&key=" + url.QueryEscape(nodetest.Key), want: http.StatusOK},
		{name: "wrong key", path: "/api/spaces?key=nope", want: http.StatusUnauthorized},
		{name: "empty key", path: "/api/spaces?key=", want: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := n.DoKey(t, "", http.MethodGet, tt.path, nil)
			if res.Status != tt.want {
				t.Errorf("status = %d, want %d (body %s)", res.Status, tt.want, res.Body)
			}
		})
	}
}

func TestNoCORSHeaders(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	check := func(t *testing.T, what string, res nodetest.Response) {
		t.Helper()
		for _, h := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods"} {
			if v := res.Header.Get(h); v != "" {
				t.Errorf("%s: %s = %q, want none", what, h, v)
			}
		}
	}
	origin := []string{"Origin", "https://evil.example"}
	check(t, "health", n.DoKey(t, "", http.MethodGet, "/api/health", nil, origin...))
	for _, r := range protectedRoutes {
		if r.method != http.MethodGet {
			continue // state-changing routes are covered by the cross-origin test
		}
		check(t, r.path+" with key", n.Do(t, r.method, r.path, nil, origin...))
		check(t, r.path+" without key", n.DoKey(t, "", r.method, r.path, nil, origin...))
	}
	preflight := []string{
		"Origin", "https://evil.example",
		"Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization, content-type",
	}
	for _, path := range []string{"/api/spaces", "/api/health", "/api/spaces/x/exec"} {
		res := n.DoKey(t, "", http.MethodOptions, path, nil, preflight...)
		check(t, "OPTIONS "+path, res)
		if res.Status >= 200 && res.Status < 300 {
			t.Errorf("OPTIONS %s: status %d, want a refusal", path, res.Status)
		}
		check(t, "OPTIONS "+path+" with key", n.Do(t, http.MethodOptions, path, nil, preflight...))
	}
}

func TestCrossOriginStateChangesRefused(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	tpl := "name: xorigin-probe\n"
	tests := []struct {
		name    string
		headers []string
		want    int
	}{
		{name: "Sec-Fetch-Site cross-site", headers: []string{"Sec-Fetch-Site", "cross-site"}, want: http.StatusForbidden},
		{name: "Sec-Fetch-Site same-site", headers: []string{"Sec-Fetch-Site", "same-site"}, want: http.StatusForbidden},
		{name: "Origin of another site", headers: []string{"Origin", "https://evil.example"}, want: http.StatusForbidden},
		{name: "Origin of another port", headers: []string{"Origin", "http://127.0.0.1:1"}, want: http.StatusForbidden},
		{name: "no browser headers", headers: nil, want: http.StatusOK},
		{name: "same origin", headers: []string{"Origin", n.URL}, want: http.StatusOK},
		{name: "Sec-Fetch-Site same-origin", headers: []string{"Sec-Fetch-Site", "same-origin"}, want: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// DELETE first so every case starts without the template.
			n.Do(t, http.MethodDelete, "/api/templates/xorigin-probe", nil)
			res := n.Do(t, http.MethodPut, "/api/templates", map[string]string{"yaml": tpl}, tt.headers...)
			if res.Status != tt.want {
				t.Fatalf("PUT template: status = %d, want %d (body %s)", res.Status, tt.want, res.Body)
			}
			exists := n.Do(t, http.MethodGet, "/api/templates/xorigin-probe", nil).Status == http.StatusOK
			if wantExists := tt.want == http.StatusOK; exists != wantExists {
				t.Errorf("template exists = %v, want %v", exists, wantExists)
			}
			if tt.want == http.StatusForbidden {
				wantError(t, res, http.StatusForbidden, "")
			}
		})
	}

	t.Run("create space", func(t *testing.T) {
		name := nodetest.Name(t, n.Engine, "xorigin")
		body := map[string]any{"name": name, "memory": "64m"}
		res := n.Do(t, http.MethodPost, "/api/spaces", body, "Sec-Fetch-Site", "cross-site")
		wantError(t, res, http.StatusForbidden, "")
		if containerExists(t, n, name) {
			t.Fatal("a cross-site create made a container")
		}
		res = n.Do(t, http.MethodDelete, "/api/spaces/"+name, nil, "Origin", "https://evil.example")
		wantError(t, res, http.StatusForbidden, "")
		createSpace(t, n, name, map[string]any{"memory": "64m"})
		for _, path := range []string{"/exec", "/stop", "/start"} {
			res := n.Do(t, http.MethodPost, "/api/spaces/"+name+path, map[string]string{"command": "id"}, "Sec-Fetch-Site", "cross-site")
			wantError(t, res, http.StatusForbidden, "")
		}
		res = n.Do(t, http.MethodDelete, "/api/spaces/"+name, nil, "Sec-Fetch-Site", "cross-site")
		wantError(t, res, http.StatusForbidden, "")
		if !containerExists(t, n, name) {
			t.Error("a cross-site delete removed the space")
		}
		// Reads stay possible from anywhere: they change nothing.
		if res := n.Do(t, http.MethodGet, "/api/spaces/"+name, nil, "Sec-Fetch-Site", "cross-site"); res.Status != http.StatusOK {
			t.Errorf("cross-site GET: status %d, want 200", res.Status)
		}
	})
}

func TestAuthDisabled(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{AuthDisabled: true})
	for _, path := range []string{"/api/spaces", "/api/templates", "/api/audit", "/api/system/capabilities"} {
		if res := n.DoKey(t, "", http.MethodGet, path, nil); res.Status != http.StatusOK {
			t.Errorf("GET %s without a key: status %d, want 200 (body %s)", path, res.Status, res.Body)
		}
	}
	res := n.DoKey(t, "", http.MethodPut, "/api/templates", map[string]string{"yaml": "name: local-probe\n"})
	if res.Status != http.StatusOK {
		t.Fatalf("PUT template without a key: status %d (body %s)", res.Status, res.Body)
	}
	if res := n.DoKey(t, "", http.MethodDelete, "/api/templates/local-probe", nil); res.Status != http.StatusOK {
		t.Fatalf("DELETE template without a key: status %d (body %s)", res.Status, res.Body)
	}
	events := auditEvents(t, n, "")
	if len(events) != 2 {
		t.Fatalf("got %d events, want 2: %+v", len(events), events)
	}
	for _, e := range events {
		if e.Actor != "local" {
			t.Errorf("%s event: actor = %q, want local", e.Type, e.Actor)
		}
	}
}
