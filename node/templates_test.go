package node_test

import (
	"database/sql"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/adam91holt/clawdspace/nodetest"
)

type templateSummaryDoc struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

func listTemplates(t *testing.T, n *nodetest.Node) []templateSummaryDoc {
	t.Helper()
	res := n.Do(t, http.MethodGet, "/api/templates", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("GET /api/templates: %d %s", res.Status, res.Body)
	}
	var doc struct {
		Templates []templateSummaryDoc `json:"templates"`
	}
	res.JSON(t, &doc)
	return doc.Templates
}

func templateNames(list []templateSummaryDoc) []string {
	out := make([]string, len(list))
	for i, tpl := range list {
		out[i] = tpl.Name
	}
	return out
}

func TestBuiltinTemplates(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	list := listTemplates(t, n)
	if got := templateNames(list); !slices.Equal(got, []string{"default", "gpu", "lan", "offline"}) {
		t.Fatalf("templates = %v, want the four built-ins sorted", got)
	}
	for _, tpl := range list {
		if tpl.Description == "" {
			t.Errorf("template %s has no description", tpl.Name)
		}
	}
	tests := []struct {
		name     string
		wantYAML []string
	}{
		{name: "default", wantYAML: []string{"name: default", "memory: 2g", "mode: internet", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16"}},
		{name: "gpu", wantYAML: []string{"name: gpu", "managed: true", "gpu: true", "memory: 8g"}},
		{name: "offline", wantYAML: []string{"name: offline", "mode: none"}},
		{name: "lan", wantYAML: []string{"name: lan", "mode: lan"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := n.Do(t, http.MethodGet, "/api/templates/"+tt.name, nil)
			if res.Status != http.StatusOK {
				t.Fatalf("status %d, body %s", res.Status, res.Body)
			}
			var doc struct{ Name, YAML string }
			res.JSON(t, &doc)
			if doc.Name != tt.name {
				t.Errorf("name = %q, want %q", doc.Name, tt.name)
			}
			for _, w := range tt.wantYAML {
				if !strings.Contains(doc.YAML, w) {
					t.Errorf("yaml does not contain %q:\n%s", w, doc.YAML)
				}
			}
			// The YAML a GET returns is accepted back as it is.
			if res := n.Do(t, http.MethodPut, "/api/templates", map[string]string{"yaml": doc.YAML}); res.Status != http.StatusOK {
				t.Errorf("PUT of the GET yaml: %d %s", res.Status, res.Body)
			}
		})
	}
}

func TestPutTemplate(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	src := `name: My-Tpl
description: a test template
resources:
  memory: 512m
  cpus: 1.5
  image: ` + nodetest.TestImage + `
security:
  writableRootfs: true
network:
  mode: lan
  blockCidrs: [10.0.0.0/8, "fd00::/8"]
workspace:
  defaultRepoDest: code
`
	res := n.Do(t, http.MethodPut, "/api/templates", map[string]string{"yaml": src})
	if res.Status != http.StatusOK {
		t.Fatalf("PUT: %d %s", res.Status, res.Body)
	}
	var doc struct {
		Template struct {
			Name        string `json:"name"`
			Description string `json:"description"`
			Resources   struct {
				Memory string  `json:"memory"`
				CPUs   float64 `json:"cpus"`
				Image  string  `json:"image"`
			} `json:"resources"`
			Network struct {
				Mode       string   `json:"mode"`
				BlockCIDRs []string `json:"blockCidrs"`
			} `json:"network"`
		} `json:"template"`
	}
	res.JSON(t, &doc)
	got := doc.Template
	if got.Name != "my-tpl" || got.Description != "a test template" || got.Resources.Memory != "512m" ||
		got.Resources.CPUs != 1.5 || got.Resources.Image != nodetest.TestImage || got.Network.Mode != "lan" ||
		!slices.Equal(got.Network.BlockCIDRs, []string{"10.0.0.0/8", "fd00::/8"}) {
		t.Errorf("template = %+v", got)
	}
	if names := templateNames(listTemplates(t, n)); !slices.Equal(names, []string{"default", "gpu", "lan", "my-tpl", "offline"}) {
		t.Errorf("templates = %v, want my-tpl in sorted order", names)
	}

	// Names are case-insensitive everywhere.
	for _, name := range []string{"my-tpl", "MY-TPL", "My-Tpl"} {
		res := n.Do(t, http.MethodGet, "/api/templates/"+name, nil)
		if res.Status != http.StatusOK {
			t.Errorf("GET %s: %d %s", name, res.Status, res.Body)
			continue
		}
		if got := res.Map(t)["name"]; got != "my-tpl" {
			t.Errorf("GET %s: name = %v, want my-tpl", name, got)
		}
	}
	// A PUT of another case replaces it rather than adding one.
	if res := n.Do(t, http.MethodPut, "/api/templates", map[string]string{"yaml": "name: MY-TPL\ndescription: replaced\n"}); res.Status != http.StatusOK {
		t.Fatalf("PUT upper case: %d %s", res.Status, res.Body)
	}
	list := listTemplates(t, n)
	if names := templateNames(list); !slices.Equal(names, []string{"default", "gpu", "lan", "my-tpl", "offline"}) {
		t.Errorf("templates = %v after the upper-case PUT", names)
	}
	for _, tpl := range list {
		if tpl.Name == "my-tpl" && tpl.Description != "replaced" {
			t.Errorf("description = %q, want replaced", tpl.Description)
		}
	}
	if res := n.Do(t, http.MethodDelete, "/api/templates/My-TPL", nil); res.Status != http.StatusOK || res.Map(t)["message"] != "OK" {
		t.Errorf("DELETE My-TPL: %d %s", res.Status, res.Body)
	}
	wantError(t, n.Do(t, http.MethodGet, "/api/templates/my-tpl", nil), http.StatusNotFound, "Template not found")
}

func TestPutTemplateRefusesBadYAML(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	tests := []struct {
		name    string
		body    any
		wantMsg []string // each must appear in the error, case-insensitive
	}{
		{name: "invalid yaml", body: map[string]string{"yaml": "name: [unclosed\n"}, wantMsg: []string{"yaml"}},
		{name: "not a mapping", body: map[string]string{"yaml": "- a\n- b\n"}, wantMsg: []string{"yaml"}},
		{name: "unknown key", body: map[string]string{"yaml": "name: x\nbogus: 1\n"}, wantMsg: []string{"bogus"}},
		{name: "unknown nested key", body: map[string]string{"yaml": "name: x\nresources:\n  disk: 1g\n"}, wantMsg: []string{"disk"}},
		{name: "bad name", body: map[string]string{"yaml": "name: -bad\n"}, wantMsg: []string{"name"}},
		{name: "name with a slash", body: map[string]string{"yaml": "name: a/b\n"}, wantMsg: []string{"name"}},
		{name: "no name", body: map[string]string{"yaml": "description: nameless\n"}, wantMsg: []string{"name"}},
		{name: "name too long", body: map[string]string{"yaml": "name: " + strings.Repeat("a", 65) + "\n"}, wantMsg: []string{"name"}},
		{name: "description too long", body: map[string]string{"yaml": "name: x\ndescription: " + strings.Repeat("d", 201) + "\n"}, wantMsg: []string{"description"}},
		{name: "bad memory", body: map[string]string{"yaml": "name: x\nresources:\n  memory: 2x\n"}, wantMsg: []string{"memory"}},
		{name: "cpus 0", body: map[string]string{"yaml": "name: x\nresources:\n  cpus: 0\n"}, wantMsg: []string{"cpus"}},
		{name: "cpus -1", body: map[string]string{"yaml": "name: x\nresources:\n  cpus: -1\n"}, wantMsg: []string{"cpus"}},
		{name: "cpus 65", body: map[string]string{"yaml": "name: x\nresources:\n  cpus: 65\n"}, wantMsg: []string{"cpus"}},
		{name: "network mode bogus", body: map[string]string{"yaml": "name: x\nnetwork:\n  mode: bogus\n"}, wantMsg: []string{"network.mode", "bogus"}},
		{name: "blockCidrs nope", body: map[string]string{"yaml": "name: x\nnetwork:\n  blockCidrs: [nope]\n"}, wantMsg: []string{"blockCidrs", "nope"}},
		{name: "bad repo dest", body: map[string]string{"yaml": "name: x\nworkspace:\n  defaultRepoDest: ../up\n"}, wantMsg: []string{"defaultRepoDest"}},
		// Issue 11 item 7: the image rule of create holds when a template is saved.
		{name: "image --privileged", body: map[string]string{"yaml": "name: x\nresources:\n  image: --privileged\n"}, wantMsg: []string{"image", "--privileged"}},
		{name: "image with a space", body: map[string]string{"yaml": "name: x\nresources:\n  image: \"alpine --privileged\"\n"}, wantMsg: []string{"image"}},
		{name: "image with shell metacharacters", body: map[string]string{"yaml": "name: x\nresources:\n  image: \"alpine;rm -rf /\"\n"}, wantMsg: []string{"image"}},
		{name: "image with a command substitution", body: map[string]string{"yaml": "name: x\nresources:\n  image: \"$(id)\"\n"}, wantMsg: []string{"image"}},
		{name: "two documents", body: map[string]string{"yaml": "name: x\n---\nname: y\n"}, wantMsg: []string{"yaml"}},
		{name: "empty yaml", body: map[string]string{"yaml": ""}, wantMsg: []string{"yaml"}},
		{name: "no yaml field", body: map[string]string{}, wantMsg: []string{"yaml"}},
		{name: "yaml not a string", body: map[string]any{"yaml": 42}, wantMsg: []string{"yaml"}},
		{name: "malformed JSON", body: `{"yaml": `, wantMsg: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErrorContains(t, n.Do(t, http.MethodPut, "/api/templates", tt.body), http.StatusBadRequest, tt.wantMsg...)
		})
	}
	if names := templateNames(listTemplates(t, n)); !slices.Equal(names, []string{"default", "gpu", "lan", "offline"}) {
		t.Errorf("templates = %v: a refused PUT stored something", names)
	}
}

func TestMissingTemplate(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	for _, name := range []string{"no-such-template", "NO-SUCH", "bad%20name", strings.Repeat("t", 70)} {
		wantError(t, n.Do(t, http.MethodGet, "/api/templates/"+name, nil), http.StatusNotFound, "Template not found")
		wantError(t, n.Do(t, http.MethodDelete, "/api/templates/"+name, nil), http.StatusNotFound, "Template not found")
	}
	// A deleted template is gone for spaces too.
	if res := n.Do(t, http.MethodDelete, "/api/templates/lan", nil); res.Status != http.StatusOK {
		t.Fatalf("DELETE lan: %d %s", res.Status, res.Body)
	}
	wantError(t, n.Do(t, http.MethodDelete, "/api/templates/lan", nil), http.StatusNotFound, "Template not found")
	wantErrorContains(t, n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": "never-made", "template": "lan"}), http.StatusNotFound, "template")
}

// TestStoredTemplateWithBadImage: a template saved before images were
// checked at save is still listed and shown (not a 500), and a create
// from it is refused like any bad image.
func TestStoredTemplateWithBadImage(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	db, err := sql.Open("sqlite", filepath.Join(n.DataDir, "clawdspace.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), `INSERT INTO templates (name, yaml, managed, updated_at) VALUES ('old', ?, 0, 0)`,
		"name: old\nresources:\n  image: --privileged\n"); err != nil {
		t.Fatal(err)
	}
	if r := n.Do(t, http.MethodGet, "/api/templates/old", nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "--privileged") {
		t.Errorf("GET /api/templates/old = %d %s, want 200 showing the image", r.Status, r.Body)
	}
	if names := templateNames(listTemplates(t, n)); !slices.Contains(names, "old") {
		t.Errorf("templates = %v, want old listed", names)
	}
	wantErrorContains(t, n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": "never-made", "template": "old"}),
		http.StatusBadRequest, "image", "--privileged")
}
