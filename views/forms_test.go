package views_test

import (
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/adam91holt/clawdspace/views"
)

// rawText is the text of n exactly as the browser holds it (for a
// textarea: its value).
func rawText(n *html.Node) string {
	var b strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	}
	return b.String()
}

// TestTextKeepsLeadingNewline: HTML drops one newline right after
// <textarea> and <pre>, so a text that starts with one must survive a
// round trip through the page.
func TestTextKeepsLeadingNewline(t *testing.T) {
	const text = "\n\nfirst line after two blank ones\n"
	tests := []struct {
		name string
		page func() doc
		id   string
	}{
		{name: "file editor", id: "file-content", page: func() doc {
			return render(t, views.FileView(views.FilePage{Chrome: chrome(), Space: "dev", Path: "/workspace/a", Dir: "/workspace", Text: text, Editable: true}))
		}},
		{name: "template editor", id: "template-yaml", page: func() doc {
			return render(t, views.TemplateEdit(views.TemplatePage{Chrome: chrome(), Name: "x", YAML: text, CanEdit: true}))
		}},
		{name: "env file", id: "field-envfile", page: func() doc {
			return render(t, views.CreatePage(views.Create{Chrome: chrome(), Values: views.CreateValues{EnvFileText: text}}))
		}},
		{name: "shell history", id: "history", page: func() doc {
			return render(t, views.ObservePart(views.Observe{HasHistory: true, History: text}))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rawText(tt.page().one(tt.id)); got != text {
				t.Errorf("text = %q, want %q", got, text)
			}
		})
	}
}

// TestFileBrowserCarriesAbsolutePaths: a folder named workspace at the
// top is /workspace/workspace; every form field and link carries that,
// never the short /workspace that means the top.
func TestFileBrowserCarriesAbsolutePaths(t *testing.T) {
	f := views.Files{
		Path: "/workspace/workspace", Parent: "/workspace",
		Crumbs:  []views.Crumb{{Name: "workspace", Path: "/workspace"}, {Name: "workspace", Path: "/workspace/workspace"}},
		Entries: []views.FileEntry{{Name: "a.txt", Path: "/workspace/workspace/a.txt", Type: "file", Size: 1}},
	}
	d := render(t, views.FileBrowser("dev", f, now))
	var values []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "input" {
			if name, _ := attr(n, "name"); name == "path" || name == "dir" {
				v, _ := attr(n, "value")
				values = append(values, name+"="+v)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(d.root)
	want := []string{"path=/workspace/workspace/a.txt", "dir=/workspace/workspace", "dir=/workspace/workspace", "path=/workspace/workspace/"}
	if strings.Join(values, " ") != strings.Join(want, " ") {
		t.Errorf("form fields = %v, want %v", values, want)
	}
	if href, _ := attr(d.one("file-open"), "href"); href != "/spaces/dev/file?path=%2Fworkspace%2Fworkspace%2Fa.txt" {
		t.Errorf("open link = %q", href)
	}
	if got := text(d.one("files-up")); got != "⬑ Up to /" {
		t.Errorf("up link says %q", got)
	}
	fp := render(t, views.FileView(views.FilePage{Chrome: chrome(), Space: "dev", Path: "/workspace/workspace/a.txt", Dir: "/workspace/workspace", Editable: true}))
	if got := text(fp.one("file-path")); got != "/workspace/a.txt" {
		t.Errorf("file page shows %q", got)
	}
	for _, n := range fp.all("file-download") {
		if href, _ := attr(n, "href"); !strings.HasSuffix(href, "path=%2Fworkspace%2Fworkspace%2Fa.txt") {
			t.Errorf("download link = %q", href)
		}
	}
}

// TestNavShowsWhatTheUserMayUse: no links to sections that answer 403.
func TestNavShowsWhatTheUserMayUse(t *testing.T) {
	viewer := render(t, views.TemplatesList(views.TemplatesPage{Chrome: chrome()}))
	for _, id := range []string{"nav-create", "nav-audit", "new-template"} {
		viewer.none(id)
	}
	c := chrome()
	c.CanCreate, c.CanAudit = true, true
	admin := render(t, views.TemplatesList(views.TemplatesPage{Chrome: c, CanEdit: true}))
	for _, id := range []string{"nav-create", "nav-audit", "new-template"} {
		admin.one(id)
	}
}

// TestAuditNothingMatches: filters that match nothing say so.
func TestAuditNothingMatches(t *testing.T) {
	d := render(t, views.AuditView(views.AuditPage{Chrome: chrome(), Type: "space.exec", Filtered: true}))
	d.one("events-none-match")
	d.none("events-empty")
	d = render(t, views.AuditView(views.AuditPage{Chrome: chrome()}))
	d.one("events-empty")
}
