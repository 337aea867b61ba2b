package node_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/adam91holt/clawdspace/nodetest"
)

// TestExecBinaryOutput: bytes that are not UTF-8 cannot travel in a JSON
// string, so the exact bytes come back base64-encoded beside it.
func TestExecBinaryOutput(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := nodetest.Name(t, n.Engine, "binary")
	if r := n.Do(t, "POST", "/api/spaces", map[string]any{"name": name}); r.Status != http.StatusCreated {
		t.Fatalf("create = %d %s", r.Status, r.Body)
	}
	var out struct {
		Stdout, StdoutBase64, StderrBase64 string
	}
	n.Do(t, "POST", "/api/spaces/"+name+"/exec", map[string]any{"command": `printf 'a\377\376b'`}).JSON(t, &out)
	if out.StdoutBase64 != "Yf/+Yg==" || out.StderrBase64 != "" {
		t.Fatalf("exec = %+v, want stdoutBase64 Yf/+Yg== only", out)
	}
	out.StdoutBase64 = ""
	n.Do(t, "POST", "/api/spaces/"+name+"/exec", map[string]any{"command": `printf 'héllo'`}).JSON(t, &out)
	if out.Stdout != "héllo" || out.StdoutBase64 != "" {
		t.Fatalf("UTF-8 output = %+v", out)
	}
}

// TestDeniedRequestsAreAudited: a refused request leaves an auth.denied row
// with the reason, at most one per host per interval.
func TestDeniedRequestsAreAudited(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	for range 3 {
		if r := n.DoKey(t, "wrong-key", "GET", "/api/spaces", nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("wrong key = %d", r.Status)
		}
	}
	var body struct {
		Events []struct {
			Type, Actor string
			Meta        map[string]any
		}
	}
	n.Do(t, "GET", "/api/audit", nil).JSON(t, &body)
	denied := 0
	for _, e := range body.Events {
		if e.Type == "auth.denied" {
			denied++
			if e.Actor != "anonymous" || e.Meta["path"] != "/api/spaces" || !strings.Contains(e.Meta["reason"].(string), "wrong API key") {
				t.Errorf("denial event = %+v", e)
			}
			for _, v := range e.Meta {
				if s, ok := v.(string); ok && strings.Contains(s, "wrong-key") {
					t.Errorf("the presented key was recorded: %+v", e.Meta)
				}
			}
		}
	}
	if denied != 1 {
		t.Fatalf("%d auth.denied events for three quick refusals, want 1", denied)
	}
}

// TestRootPage: the dashboard at / asks a browser without a key to sign
// in, and says nothing about the spaces; with the key it is the overview.
func TestRootPage(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	r := n.DoKey(t, "", "GET", "/", nil)
	if r.Status != http.StatusUnauthorized || !strings.Contains(string(r.Body), "Sign in to this node") {
		t.Fatalf("GET / without a key = %d %s", r.Status, r.Body)
	}
	if strings.Contains(string(r.Body), `data-testid="spaces-table"`) {
		t.Errorf("the sign-in page shows spaces")
	}
	r = n.Do(t, "GET", "/", nil)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `data-testid="overview-live"`) {
		t.Fatalf("GET / with the key = %d %s", r.Status, r.Body)
	}
}

// TestCreateCPUsNotGiven: null, "" and a missing cpus all mean "from the
// template"; 0 is refused.
func TestCreateCPUsNotGiven(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	for _, body := range []string{`"cpus":null`, `"cpus":""`, `"memory":"64m"`} {
		name := nodetest.Name(t, n.Engine, "cpus")
		r := n.Do(t, "POST", "/api/spaces", `{"name":"`+name+`",`+body+`}`)
		if r.Status != http.StatusCreated {
			t.Fatalf("%s: create = %d %s", body, r.Status, r.Body)
		}
		if cpus := r.Map(t)["space"].(map[string]any)["cpus"]; cpus != float64(1) {
			t.Errorf("%s: cpus = %v, want the default template's 1", body, cpus)
		}
	}
	if r := n.Do(t, "POST", "/api/spaces", `{"name":"zero","cpus":0}`); r.Status != http.StatusBadRequest {
		t.Errorf("cpus 0 = %d %s", r.Status, r.Body)
	}
}

// TestAuthDisabledChecksHost: with auth off, a request whose Host is not a
// loopback name (a DNS-rebound page) is refused.
func TestAuthDisabledChecksHost(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{AuthDisabled: true})
	if r := n.DoKey(t, "", "GET", "/api/spaces", nil); r.Status != http.StatusOK {
		t.Fatalf("loopback host = %d %s", r.Status, r.Body)
	}
	r := n.DoKey(t, "", "POST", "/api/spaces/x/exec", map[string]any{"command": "true"},
		"Host", "attacker.example", "Origin", "http://attacker.example", "Sec-Fetch-Site", "same-origin")
	if r.Status != http.StatusForbidden {
		t.Fatalf("rebound host = %d %s", r.Status, r.Body)
	}
}
