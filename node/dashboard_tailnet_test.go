package node_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/tailnet"
)

// TestDashboardViewerOnTailnet: a person with the viewer role sees pages
// but no terminal, file browser or links to sections they may not use,
// and every page or form beyond reading answers 403.
func TestDashboardViewerOnTailnet(t *testing.T) {
	ctl := nodetest.StartControl(t)
	n := nodetest.Start(t, nodetest.Options{Tailnet: ctl, Hostname: "pages", Namespace: "pv"})
	dev := ctl.Join(t, "viewer-laptop")
	nodetest.WaitForPeers(t, n.TS, dev)
	ctl.Grant(t, dev, []*tailnet.Node{n.TS}, spaces.Grant{Role: "viewer"})
	name := newSpace(t, n, "viewed")
	client := dev.HTTPClient()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	do := func(method, path string, form url.Values) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, "http://"+n.TS.Addr()+":7777"+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	status, body := do("GET", "/spaces/"+name, nil)
	if status != http.StatusOK {
		t.Fatalf("space page for a viewer: %d", status)
	}
	for _, id := range []string{"terminal", "files", "upload-form", "action-pause", "action-destroy", "nav-create", "nav-audit"} {
		if got := byTestID(t, body, id); len(got) != 0 {
			t.Errorf("a viewer's space page has %s", id)
		}
	}
	if got := byTestID(t, body, "space-details"); len(got) != 1 {
		t.Errorf("a viewer's space page lacks the details")
	}

	refused := []struct {
		method, path string
		form         url.Values
	}{
		{"GET", "/spaces/" + name + "/file?path=%2Fworkspace%2Fa.txt", nil},
		{"POST", "/spaces/" + name + "/file", url.Values{"path": {"/workspace/a.txt"}, "content": {"x"}}},
		{"POST", "/spaces/" + name + "/files/delete", url.Values{"path": {"/workspace/a.txt"}}},
		{"POST", "/spaces/" + name + "/files/mkdir", url.Values{"dir": {"/workspace"}, "name": {"x"}}},
		{"POST", "/spaces/" + name + "/files/upload", url.Values{}},
		{"GET", "/spaces/new", nil},
		{"POST", "/spaces/new", url.Values{"name": {"nope"}}},
		{"POST", "/templates", url.Values{"yaml": {"name: nope\n"}}},
		{"GET", "/templates/new", nil},
		{"GET", "/audit", nil},
		{"POST", "/spaces/" + name + "/pause", url.Values{}},
		{"GET", "/spaces/" + name + "/destroy", nil},
	}
	for _, tt := range refused {
		if status, body := do(tt.method, tt.path, tt.form); status != http.StatusForbidden || !strings.Contains(body, "Not allowed") {
			t.Errorf("%s %s for a viewer: %d, want a 403 page", tt.method, tt.path, status)
		}
	}
	// What a viewer may read stays open.
	for _, path := range []string{"/", "/fleet", "/templates", "/audit?space=" + name} {
		if status, _ := do("GET", path, nil); status != http.StatusOK {
			t.Errorf("GET %s for a viewer: %d", path, status)
		}
	}
	if _, body := do("GET", "/fleet", nil); !strings.Contains(body, `data-can-exec="false"`) || !strings.Contains(body, `data-can-destroy="false"`) {
		t.Errorf("the fleet page offers a viewer actions")
	}
	if sp := getSpace(t, n, name); sp.Status != "running" {
		t.Errorf("refused requests changed the space: %s", sp.Status)
	}
	// The pages refuse through the domain: each refusal is audited with
	// the action, the device and the door it came through.
	events, err := n.Store.Events(t.Context(), spaces.AuditQuery{Type: spaces.EventDenied, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range events {
		if e.Meta["door"] == string(spaces.DoorDashboard) && e.Meta["device"] == "viewer-laptop" {
			seen[e.Meta["action"].(string)+" "+e.Space] = true
		}
	}
	for _, want := range []string{"files " + name, "create nope", "create ", "templates ", "admin ", "exec " + name, "destroy " + name} {
		if !seen[want] {
			t.Errorf("no auth.denied row from the dashboard for %q; rows: %v", want, seen)
		}
	}
}
