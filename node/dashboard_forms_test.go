package node_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/adam91holt/clawdspace/nodetest"
)

// byTestID returns the elements of a page with data-testid id.
func byTestID(t *testing.T, body, id string) []*html.Node {
	t.Helper()
	root, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		for _, a := range n.Attr {
			if a.Key == "data-testid" && a.Val == id {
				out = append(out, n)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(root)
	return out
}

func attrOf(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// putFile writes a file of a space through the API.
func putFile(t *testing.T, n *nodetest.Node, space, p, content string) {
	t.Helper()
	r := n.Do(t, "PUT", "/api/spaces/"+space+"/file?path="+url.QueryEscape(p), map[string]string{"contentBase64": base64.StdEncoding.EncodeToString([]byte(content))})
	wantCode(t, r, http.StatusOK, "writing "+p)
}

func fileText(t *testing.T, n *nodetest.Node, space, p string) (string, int) {
	t.Helper()
	r := n.Do(t, "GET", "/api/spaces/"+space+"/file?raw=true&path="+url.QueryEscape(p), nil)
	return string(r.Body), r.Status
}

// TestDashboardWorkspaceFolder: a top-level folder named workspace is
// /workspace/workspace. Browsing, saving and deleting in it act on its
// files, not on the files of the same name one level up.
func TestDashboardWorkspaceFolder(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "wsdir")
	putFile(t, n, name, "/workspace/workspace/foo.txt", "inner\n")
	putFile(t, n, name, "/workspace/foo.txt", "outer\n")

	// Browse into the folder: its row carries the full path.
	body := bodyOf(t, page(t, n, "GET", "/spaces/"+name+"?path="+url.QueryEscape("/workspace/workspace"), nil))
	var paths []string
	for _, row := range byTestID(t, body, "file-row") {
		paths = append(paths, attrOf(row, "data-path"))
	}
	if strings.Join(paths, ",") != "/workspace/workspace/foo.txt" {
		t.Fatalf("rows in /workspace/workspace: %v", paths)
	}
	var del string
	for _, in := range byTestID(t, body, "file-delete-confirm") {
		for c := in.Parent.FirstChild; c != nil; c = c.NextSibling {
			if c.Data == "input" && attrOf(c, "name") == "path" {
				del = attrOf(c, "value")
			}
		}
	}

	// Save through the editor form of that file.
	edit := bodyOf(t, page(t, n, "GET", "/spaces/"+name+"/file?path="+url.QueryEscape("/workspace/workspace/foo.txt"), nil))
	var savePath string
	for _, f := range byTestID(t, edit, "edit-form") {
		for c := f.FirstChild; c != nil; c = c.NextSibling {
			if c.Data == "input" && attrOf(c, "name") == "path" {
				savePath = attrOf(c, "value")
			}
		}
	}
	res := page(t, n, "POST", "/spaces/"+name+"/file", url.Values{"path": {savePath}, "content": {"inner, saved\n"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save: %d %s", res.StatusCode, bodyOf(t, res))
	}
	if got, _ := fileText(t, n, name, "/workspace/workspace/foo.txt"); got != "inner, saved\n" {
		t.Errorf("the inner file holds %q after the save", got)
	}
	if got, _ := fileText(t, n, name, "/workspace/foo.txt"); got != "outer\n" {
		t.Errorf("the outer file holds %q after saving the inner one", got)
	}

	// Delete with the form's own field.
	res = page(t, n, "POST", "/spaces/"+name+"/files/delete", url.Values{"path": {del}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete %q: %d %s", del, res.StatusCode, bodyOf(t, res))
	}
	if _, st := fileText(t, n, name, "/workspace/workspace/foo.txt"); st != http.StatusNotFound {
		t.Errorf("the inner file answers %d after its delete", st)
	}
	if got, st := fileText(t, n, name, "/workspace/foo.txt"); st != http.StatusOK || got != "outer\n" {
		t.Errorf("deleting the inner file hit the outer one: %d %q", st, got)
	}
}

// TestDashboardEditKeepsLeadingNewline: a file that starts with a blank
// line comes back unchanged from the editor (HTML drops the first newline
// after <textarea>).
func TestDashboardEditKeepsLeadingNewline(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "nl")
	const content = "\nfirst line after a blank one\n"
	putFile(t, n, name, "/workspace/nl.txt", content)
	body := bodyOf(t, page(t, n, "GET", "/spaces/"+name+"/file?path="+url.QueryEscape("/workspace/nl.txt"), nil))
	areas := byTestID(t, body, "file-content")
	if len(areas) != 1 {
		t.Fatal("no editor")
	}
	var value strings.Builder
	for c := areas[0].FirstChild; c != nil; c = c.NextSibling {
		value.WriteString(c.Data)
	}
	if value.String() != content {
		t.Fatalf("the editor holds %q, want %q", value.String(), content)
	}
	// Save what the browser would send back (CRLF line ends).
	res := page(t, n, "POST", "/spaces/"+name+"/file", url.Values{"path": {"/workspace/nl.txt"}, "content": {strings.ReplaceAll(value.String(), "\n", "\r\n")}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save: %d", res.StatusCode)
	}
	if got, _ := fileText(t, n, name, "/workspace/nl.txt"); got != content {
		t.Errorf("after a save the file holds %q, want %q", got, content)
	}
}

// TestDashboardFormTooLarge: a form over the node's body limit is 413
// with a message that says so, and changes nothing.
func TestDashboardFormTooLarge(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{MaxBodyBytes: 4 << 10})
	name := newSpace(t, n, "big")
	putFile(t, n, name, "/workspace/keep.txt", "kept\n")
	big := strings.Repeat("x", 8<<10)
	tests := []struct {
		name string
		path string
		form url.Values
	}{
		{name: "file save", path: "/spaces/" + name + "/file", form: url.Values{"path": {"/workspace/keep.txt"}, "content": {big}}},
		{name: "create", path: "/spaces/new", form: url.Values{"name": {"x"}, "envFileText": {big}}},
		{name: "template", path: "/templates", form: url.Values{"yaml": {"name: big\ndescription: " + big}}},
		{name: "mkdir", path: "/spaces/" + name + "/files/mkdir", form: url.Values{"dir": {"/workspace"}, "name": {big}}},
		{name: "delete", path: "/spaces/" + name + "/files/delete", form: url.Values{"path": {"/workspace/keep.txt"}, "pad": {big}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := page(t, n, "POST", tt.path, tt.form)
			body := bodyOf(t, res)
			if res.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d, want 413", res.StatusCode)
			}
			if !strings.Contains(body, "larger than this node") {
				t.Errorf("the page does not say the form is too large")
			}
		})
	}
	if got, _ := fileText(t, n, name, "/workspace/keep.txt"); got != "kept\n" {
		t.Errorf("the file holds %q after refused forms", got)
	}
}

// TestDashboardGetHasNoSideEffectsFromOtherSites: a link from another
// site opens the page but neither connects the terminal nor wakes a
// paused space by listing its files.
func TestDashboardGetHasNoSideEffectsFromOtherSites(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "link")
	autoconnect := func(headers ...string) string {
		t.Helper()
		body := bodyOf(t, page(t, n, "GET", "/spaces/"+name+"?terminal=1", nil, headers...))
		term := byTestID(t, body, "terminal")
		if len(term) != 1 {
			t.Fatal("no terminal on the page")
		}
		return attrOf(term[0], "data-autoconnect")
	}
	if got := autoconnect("Sec-Fetch-Site", "cross-site"); got != "false" {
		t.Errorf("a cross-site link connects the terminal (%s)", got)
	}
	if got := autoconnect("Sec-Fetch-Site", "same-origin"); got != "true" {
		t.Errorf("the overview's Terminal button does not connect (%s)", got)
	}
	wantCode(t, n.Do(t, "POST", "/api/spaces/"+name+"/stop", nil), http.StatusOK, "pause")
	body := bodyOf(t, page(t, n, "GET", "/spaces/"+name+"?files=1", nil, "Sec-Fetch-Site", "cross-site"))
	if len(byTestID(t, body, "files-paused")) != 1 {
		t.Errorf("a cross-site link listed a paused space's files")
	}
	if sp := getSpace(t, n, name); sp.Status != "paused" {
		t.Errorf("a cross-site link woke the space: %s", sp.Status)
	}
	body = bodyOf(t, page(t, n, "GET", "/spaces/"+name+"?files=1", nil, "Sec-Fetch-Site", "same-origin"))
	if len(byTestID(t, body, "files-paused")) != 0 {
		t.Errorf("list them anyway did not list")
	}
}

// TestDashboardTemplateErrorKeepsContext: a refused save of a template
// stays that template's page (name, Delete), with the text kept.
func TestDashboardTemplateErrorKeepsContext(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	wantCode(t, n.Do(t, "PUT", "/api/templates", map[string]string{"yaml": "name: ctx-tpl\n"}), http.StatusOK, "template")
	bad := "name: ctx-tpl\nnetwork:\n  mode: moon\n"
	res := page(t, n, "POST", "/templates", url.Values{"editing": {"ctx-tpl"}, "yaml": {bad}})
	body := bodyOf(t, res)
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d", res.StatusCode)
	}
	if !strings.Contains(body, "Template ctx-tpl") || len(byTestID(t, body, "template-delete")) != 1 || len(byTestID(t, body, "template-error")) != 1 {
		t.Errorf("the refused save lost the template's page: %s", body)
	}
	res = page(t, n, "POST", "/templates", url.Values{"yaml": {bad}})
	if body := bodyOf(t, res); !strings.Contains(body, "New template") || len(byTestID(t, body, "template-delete")) != 0 {
		t.Errorf("a refused new template is not a new template's page")
	}
}
