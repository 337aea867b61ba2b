package node_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// auditEvents returns the audit events of the API; query is appended as is.
func auditEvents(t testing.TB, n *nodetest.Node, query string) []eventDoc {
	t.Helper()
	res := n.Do(t, http.MethodGet, "/api/audit"+query, nil)
	if res.Status != http.StatusOK {
		t.Fatalf("GET /api/audit%s: status %d, body %s", query, res.Status, res.Body)
	}
	var doc struct {
		Events []eventDoc `json:"events"`
	}
	res.JSON(t, &doc)
	return doc.Events
}

func eventTypes(events []eventDoc) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Type
	}
	return out
}

func TestAuditRecordsEveryAction(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := nodetest.Name(t, n.Engine, "audit")
	const secret = "s3cr3t-value-that-must-not-leak"
	createSpace(t, n, name, map[string]any{"memory": "64m", "env": map[string]string{"API_TOKEN": secret, "OTHER": "plain-" + secret}})
	if out := execIn(t, n, name, "echo $API_TOKEN"); out.Stdout != secret+"\n" {
		t.Errorf("env did not reach the space: %+v", out)
	}
	for _, step := range []struct{ method, path string }{
		{http.MethodPost, "/api/spaces/" + name + "/stop"},
		{http.MethodPost, "/api/spaces/" + name + "/start"},
		{http.MethodDelete, "/api/spaces/" + name + "?removeVolume=true"},
	} {
		if res := n.Do(t, step.method, step.path, nil); res.Status != http.StatusOK {
			t.Fatalf("%s %s: %d %s", step.method, step.path, res.Status, res.Body)
		}
	}
	if res := n.Do(t, http.MethodPut, "/api/templates", map[string]string{"yaml": "name: audit-tpl\n"}); res.Status != http.StatusOK {
		t.Fatalf("PUT template: %d %s", res.Status, res.Body)
	}
	if res := n.Do(t, http.MethodDelete, "/api/templates/audit-tpl", nil); res.Status != http.StatusOK {
		t.Fatalf("DELETE template: %d %s", res.Status, res.Body)
	}

	res := n.Do(t, http.MethodGet, "/api/audit", nil)
	if strings.Contains(string(res.Body), secret) {
		t.Errorf("the audit log shows an env value: %s", res.Body)
	}
	events := auditEvents(t, n, "")
	want := []struct {
		typ   string
		space string
	}{
		{spaces.EventCreate, name},
		{spaces.EventExec, name},
		{spaces.EventPause, name},
		{spaces.EventStart, name},
		{spaces.EventDestroy, name},
		{spaces.EventTemplateUpsert, ""},
		{spaces.EventTemplateDelete, ""},
	}
	if len(events) != len(want) {
		t.Fatalf("events %v, want %d", eventTypes(events), len(want))
	}
	var last time.Time
	for i, e := range events {
		if e.Type != want[i].typ || e.Space != want[i].space {
			t.Errorf("event %d = %s on %q, want %s on %q", i, e.Type, e.Space, want[i].typ, want[i].space)
		}
		if e.Actor != "api-key" {
			t.Errorf("event %d (%s): actor = %q, want api-key", i, e.Type, e.Actor)
		}
		ts := parseISO(t, "ts", e.TS)
		if ts.Before(last) {
			t.Errorf("event %d (%s) at %s is before the one before it: not oldest first", i, e.Type, e.TS)
		}
		last = ts
	}
	create := events[0]
	keys, _ := create.Meta["envKeys"].([]any)
	if fmt.Sprint(keys) != "[API_TOKEN OTHER]" {
		t.Errorf("create meta envKeys = %v, want [API_TOKEN OTHER] (meta %v)", create.Meta["envKeys"], create.Meta)
	}
	if got := events[5].Meta["template"]; got != "audit-tpl" {
		t.Errorf("template.upsert meta template = %v, want audit-tpl", got)
	}
	if got := events[1].Meta["command"]; !strings.Contains(fmt.Sprint(got), "echo $API_TOKEN") {
		t.Errorf("exec meta command = %v", got)
	}
}

func TestAuditQuery(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	// Many rows, written straight to the node's store: the query is what is tested.
	base := time.Now().Add(-time.Hour)
	const total = 250
	for i := range total {
		space := "alpha"
		if i%2 == 1 {
			space = "beta"
		}
		err := n.Store.Record(t.Context(), spaces.Event{
			Time: base.Add(time.Duration(i) * time.Second), Space: space, Type: spaces.EventExec,
			Actor: "api-key", Meta: map[string]any{"seq": i},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	seq := func(e eventDoc) int { f, _ := e.Meta["seq"].(float64); return int(f) }
	tests := []struct {
		name      string
		query     string
		wantLen   int
		wantFirst int
		wantLast  int
		wantSpace string
	}{
		{name: "default limit 200", query: "", wantLen: 200, wantFirst: 50, wantLast: 249},
		{name: "limit 5", query: "?limit=5", wantLen: 5, wantFirst: 245, wantLast: 249},
		{name: "limit 1", query: "?limit=1", wantLen: 1, wantFirst: 249, wantLast: 249},
		{name: "limit 1000", query: "?limit=1000", wantLen: total, wantFirst: 0, wantLast: 249},
		{name: "space filter", query: "?space=alpha&limit=3", wantLen: 3, wantFirst: 244, wantLast: 248, wantSpace: "alpha"},
		{name: "space filter default limit", query: "?space=beta", wantLen: 125, wantFirst: 1, wantLast: 249, wantSpace: "beta"},
		{name: "unknown space", query: "?space=" + url.QueryEscape("nobody"), wantLen: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := auditEvents(t, n, tt.query)
			if len(events) != tt.wantLen {
				kinds := map[string]int{}
				for _, e := range events {
					kinds[e.Type+" "+e.Space]++
				}
				t.Fatalf("got %d events, want %d: %v", len(events), tt.wantLen, kinds)
			}
			if tt.wantLen == 0 {
				return
			}
			if f, l := seq(events[0]), seq(events[len(events)-1]); f != tt.wantFirst || l != tt.wantLast {
				t.Errorf("first/last seq = %d/%d, want %d/%d", f, l, tt.wantFirst, tt.wantLast)
			}
			for i, e := range events {
				if i > 0 && seq(e) <= seq(events[i-1]) {
					t.Fatalf("events not oldest first at %d: %d after %d", i, seq(e), seq(events[i-1]))
				}
				if tt.wantSpace != "" && e.Space != tt.wantSpace {
					t.Fatalf("event %d of space %q, want %q", i, e.Space, tt.wantSpace)
				}
				parseISO(t, "ts", e.TS)
				if e.Type == "" || e.Actor != "api-key" {
					t.Fatalf("event %d = %+v", i, e)
				}
			}
		})
	}

	bad := []struct {
		name  string
		query string
	}{
		{name: "limit 0", query: "?limit=0"},
		{name: "limit 1001", query: "?limit=1001"},
		{name: "limit -1", query: "?limit=-1"},
		{name: "limit x", query: "?limit=x"},
		{name: "limit 1.5", query: "?limit=1.5"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			wantErrorContains(t, n.Do(t, http.MethodGet, "/api/audit"+tt.query, nil), http.StatusBadRequest, "limit")
		})
	}
}
