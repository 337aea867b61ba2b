package views_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/a-h/templ"
	"golang.org/x/net/html"

	"github.com/adam91holt/clawdspace/views"
)

// doc is a rendered page, queried by data-testid as a person's eyes would
// find things: by what they are, not by markup details.
type doc struct {
	t    *testing.T
	root *html.Node
}

func render(t *testing.T, c templ.Component) doc {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		t.Fatalf("rendering: %v", err)
	}
	root, err := html.Parse(&buf)
	if err != nil {
		t.Fatalf("parsing: %v", err)
	}
	return doc{t: t, root: root}
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// all returns the elements with data-testid id.
func (d doc) all(id string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if v, ok := attr(n, "data-testid"); ok && v == id {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(d.root)
	return out
}

// one returns the single element with data-testid id.
func (d doc) one(id string) *html.Node {
	d.t.Helper()
	got := d.all(id)
	if len(got) != 1 {
		d.t.Fatalf("want one element with data-testid=%q, found %d", id, len(got))
	}
	return got[0]
}

func (d doc) none(id string) {
	d.t.Helper()
	if got := d.all(id); len(got) != 0 {
		d.t.Errorf("want no element with data-testid=%q, found %d", id, len(got))
	}
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

var now = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func chrome() views.Chrome {
	return views.Chrome{Node: "box", Version: "v1", User: "alice@example.com", Access: "operator"}
}

func TestOverviewLists(t *testing.T) {
	rows := []views.SpaceRow{
		{Name: "dev", ID: "abcdef012345", Status: "running", Memory: 2 << 30, CPUs: 1, Created: now.Add(-time.Hour), LastActivity: now.Add(-5 * time.Minute), CanExec: true, CanTerminal: true, CanDestroy: true},
		{Name: "old", ID: "0123456789ab", Status: "paused", Memory: 512 << 20, CPUs: 0.5, CanExec: true},
		{Name: "ro", ID: "999999999999", Status: "running", Memory: 1 << 30, CPUs: 1},
	}
	d := render(t, views.OverviewPage(views.Overview{Chrome: chrome(), Live: views.OverviewLive{
		Spaces: rows, Now: now, CanCreate: true,
		Stats: views.NodeStats{CPUs: 8, Load: [3]float64{1.5, 1, 0.5}, MemUsed: 1 << 30, MemTotal: 4 << 30, Running: 2, Paused: 1},
	}}))
	if got := text(d.one("signed-in")); !strings.Contains(got, "alice@example.com") {
		t.Errorf("signed-in = %q", got)
	}
	if got := len(d.all("space-row")); got != 3 {
		t.Fatalf("%d space rows, want 3", got)
	}
	tests := []struct {
		name  string
		id    string
		count int
	}{
		{name: "terminal only where allowed", id: "action-exec", count: 1},
		{name: "pause for the running space that may exec", id: "action-pause", count: 1},
		{name: "start for the paused space", id: "action-start", count: 1},
		{name: "destroy only where allowed", id: "action-destroy", count: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := len(d.all(tt.id)); got != tt.count {
				t.Errorf("%d elements %s, want %d", got, tt.id, tt.count)
			}
		})
	}
	// Status is a word and a shape, never colour alone.
	for _, b := range d.all("status") {
		st, _ := attr(b, "data-status")
		if got := text(b); !strings.Contains(got, st) || !strings.Contains(got, views.StatusIcon(st)) {
			t.Errorf("badge %q for status %s", got, st)
		}
	}
	if got := text(d.one("stat-memory")); got != "25%" {
		t.Errorf("memory = %q", got)
	}
	if got := text(d.one("stat-spaces")); got != "2 running" {
		t.Errorf("spaces = %q", got)
	}
	if got, _ := attr(d.one("updated-at"), "datetime"); got != "2026-11-27T10:00:00Z" {
		t.Errorf("updated-at = %q", got)
	}
	d.none("empty-spaces")
}

func TestOverviewEmpty(t *testing.T) {
	tests := []struct {
		name      string
		canCreate bool
		want      string
	}{
		{name: "may create", canCreate: true, want: "Create your first space"},
		{name: "may not create", canCreate: false, want: "ask its owner"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := render(t, views.OverviewLivePart(views.OverviewLive{Now: now, CanCreate: tt.canCreate}))
			if got := text(d.one("empty-spaces")); !strings.Contains(got, tt.want) {
				t.Errorf("empty state = %q, want it to say %q", got, tt.want)
			}
			d.none("spaces-table")
		})
	}
}

func TestCreateShowsErrorsByField(t *testing.T) {
	d := render(t, views.CreatePage(views.Create{
		Chrome:    chrome(),
		Templates: []views.Option{{Value: "default", Label: "default"}, {Value: "lan", Label: "lan"}},
		Values:    views.CreateValues{Name: "dev", Memory: "lots", Template: "lan"},
		Errors:    map[string]string{"memory": `memory "lots" must be a number`},
	}))
	if got := text(d.one("error-memory")); !strings.Contains(got, "must be a number") {
		t.Errorf("memory error = %q", got)
	}
	field := d.one("field-memory")
	if v, _ := attr(field, "aria-invalid"); v != "true" {
		t.Errorf("memory field is not marked invalid")
	}
	if v, _ := attr(field, "aria-describedby"); v != "err-memory" {
		t.Errorf("memory field not tied to its error: %q", v)
	}
	if v, _ := attr(field, "value"); v != "lots" {
		t.Errorf("memory field lost its value: %q", v)
	}
	if v, _ := attr(d.one("field-name"), "aria-invalid"); v != "" {
		t.Errorf("name field marked invalid")
	}
	d.none("error-name")
	d.none("form-error")
	// Every input has a label.
	for _, id := range []string{"f-name", "f-template", "f-memory", "f-cpus", "f-gpu", "f-image", "f-repo", "f-branch", "f-dest", "f-envtext", "f-envpath"} {
		if !hasLabel(d.root, id) {
			t.Errorf("no label for #%s", id)
		}
	}
}

func hasLabel(n *html.Node, id string) bool {
	if n.Type == html.ElementNode && n.Data == "label" {
		if v, _ := attr(n, "for"); v == id {
			return true
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if hasLabel(c, id) {
			return true
		}
	}
	return false
}

func TestSpacePage(t *testing.T) {
	sp := views.SpaceRow{Name: "dev", ID: "abcdef012345", Status: "running", CanExec: true, CanTerminal: true, CanFiles: true, CanDestroy: true}
	tests := []struct {
		name    string
		space   views.SpaceRow
		files   views.Files
		present []string
		absent  []string
	}{
		{
			name:  "files listed",
			space: sp,
			files: views.Files{Path: "/src", Parent: "/", Crumbs: []views.Crumb{{Name: "workspace", Path: "/"}, {Name: "src", Path: "/src"}},
				Entries: []views.FileEntry{{Name: "lib", Path: "/src/lib", Type: "dir"}, {Name: "main.go", Path: "/src/main.go", Type: "file", Size: 10}}},
			present: []string{"terminal", "terminal-connect", "files-table", "files-up", "upload-form", "mkdir-form", "cpu-chart", "mem-chart"},
			absent:  []string{"files-paused", "files-empty"},
		},
		{
			name:    "paused space lists nothing",
			space:   func() views.SpaceRow { s := sp; s.Status = "paused"; return s }(),
			files:   views.Files{Paused: true, Path: "/"},
			present: []string{"files-paused", "action-start"},
			absent:  []string{"files-table", "upload-form", "action-pause"},
		},
		{
			name:    "viewer sees no terminal or files",
			space:   views.SpaceRow{Name: "dev", ID: "abcdef012345", Status: "running"},
			present: []string{"space-details", "events-empty"},
			absent:  []string{"terminal", "files", "action-pause", "action-destroy"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := render(t, views.SpaceView(views.SpacePage{Chrome: chrome(), Space: tt.space, Files: tt.files, Now: now}))
			for _, id := range tt.present {
				if len(d.all(id)) == 0 {
					t.Errorf("missing %s", id)
				}
			}
			for _, id := range tt.absent {
				d.none(id)
			}
		})
	}
	d := render(t, views.FileBrowser("dev", views.Files{Path: "/", Crumbs: []views.Crumb{{Name: "workspace", Path: "/"}},
		Entries: []views.FileEntry{{Name: "a b.txt", Path: "/a b.txt", Type: "file", Size: 3}}}, now))
	href, _ := attr(d.one("file-download"), "href")
	if href != "/api/spaces/dev/file?raw=true&path=%2Fa+b.txt" {
		t.Errorf("download link = %q", href)
	}
}

func TestAuditPager(t *testing.T) {
	d := render(t, views.AuditView(views.AuditPage{
		Chrome: chrome(), Space: "dev", PrevURL: "/audit?space=dev", NextURL: "/audit?before=2&space=dev", Now: now,
		Types: []string{"space.create", "space.exec"}, Type: "space.exec",
		Events: []views.Event{{ID: 2, Time: now, Space: "dev", Type: "space.exec", Actor: "alice", Meta: `{"command":"ls"}`}},
	}))
	if got := len(d.all("event-row")); got != 1 {
		t.Errorf("%d rows", got)
	}
	d.one("page-prev")
	d.one("page-next")
	if v, _ := attr(d.one("filter-space"), "value"); v != "dev" {
		t.Errorf("space filter = %q", v)
	}
}

func TestSignInSaysHowToGetIn(t *testing.T) {
	d := render(t, views.SignInPage(views.SignIn{Chrome: views.Chrome{Title: "Sign in"}, Problem: "wrong"}))
	d.one("signin-wrong")
	if got := text(d.one("signin")); !strings.Contains(got, "api-key") || !strings.Contains(got, "?key=") {
		t.Errorf("sign-in page does not say how to get in: %q", got)
	}
	d.none("signed-in")
}

func TestPortsPanel(t *testing.T) {
	fwd := &views.ForwardRow{Port: 3000, NodePort: 3000, URL: "http://box.tail-scale.ts.net:3000/", State: "serving"}
	listening := []views.PortRow{
		{Port: 3000, Address: "0.0.0.0", Forward: fwd},
		{Port: 5432, Address: "127.0.0.1", Loopback: true},
	}
	tests := []struct {
		name    string
		ports   views.Ports
		present []string
		absent  []string
	}{
		{
			name:    "operator on a tailnet node",
			ports:   views.Ports{Space: "dev", Detected: true, Listening: listening, Served: true, CanForward: true},
			present: []string{"ports-table", "port-link", "port-forward", "port-unforward"},
			absent:  []string{"ports-local", "ports-unknown", "ports-error"},
		},
		{
			name:    "viewer sees the ports and links, no buttons",
			ports:   views.Ports{Space: "dev", Detected: true, Listening: listening, Served: true},
			present: []string{"ports-table", "port-link"},
			absent:  []string{"port-forward", "port-unforward"},
		},
		{
			name:    "node without a tailnet points at clawdspace forward",
			ports:   views.Ports{Space: "dev", Detected: true, Listening: listening[1:], CanForward: true},
			present: []string{"ports-table", "ports-local"},
			absent:  []string{"port-forward", "port-link"},
		},
		{
			name: "paused space with a forward that failed",
			ports: views.Ports{Space: "dev", Served: true, CanForward: true,
				Forwards: []views.ForwardRow{{Port: 8080, NodePort: 40000, State: "failed", Error: "listening on node port 40000: address in use"}}},
			present: []string{"ports-unknown", "ports-table", "port-forwarded", "port-unforward"},
			absent:  []string{"port-link"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := render(t, views.PortsPanel(tt.ports))
			for _, id := range tt.present {
				if len(d.all(id)) == 0 {
					t.Errorf("missing %s", id)
				}
			}
			for _, id := range tt.absent {
				d.none(id)
			}
		})
	}
	d := render(t, views.PortsPanel(views.Ports{Space: "dev", Detected: true, Listening: listening, Served: true, CanForward: true}))
	if href, _ := attr(d.one("port-link"), "href"); href != fwd.URL {
		t.Errorf("forward link = %q", href)
	}
	if got := text(d.all("port-row")[1]); !strings.Contains(got, "loopback") {
		t.Errorf("loopback port row = %q", got)
	}
	d = render(t, views.PortsPanel(views.Ports{Space: "dev", Served: true, Forwards: []views.ForwardRow{{Port: 8080, NodePort: 40000, State: "failed", Error: "address in use"}}}))
	if got := text(d.one("port-forwarded")); !strings.Contains(got, "failed") || !strings.Contains(got, "address in use") {
		t.Errorf("failed forward shows %q", got)
	}
}
