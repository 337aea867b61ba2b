package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/adam91holt/clawdspace/nodetest"
)

// apiSpec checks real requests and answers against the OpenAPI document a
// node serves, so that its schemas cannot drift from the handlers.
type apiSpec struct {
	doc    *openapi3.T
	router routers.Router
	n      *nodetest.Node
	// seen are the operations checked so far, by operationId.
	seen map[string]bool
}

// fetchSpec reads GET /api/openapi.json from n and loads it.
func fetchSpec(t *testing.T, n *nodetest.Node) *apiSpec {
	t.Helper()
	res := n.Do(t, http.MethodGet, "/api/openapi.json", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("GET /api/openapi.json: status %d, body %.300s", res.Status, res.Body)
	}
	doc, err := openapi3.NewLoader().LoadFromData(res.Body)
	if err != nil {
		t.Fatalf("loading the served document: %v", err)
	}
	// Route by path alone: the document's server is the default address.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("routing the served document: %v", err)
	}
	return &apiSpec{doc: doc, router: router, n: n, seen: map[string]bool{}}
}

// do sends a request with key (none when empty) and checks it against the
// document: the answer always (its status must be documented), and the
// request too when the node accepted it.
func (a *apiSpec) do(t *testing.T, key, method, path string, body any, headers ...string) nodetest.Response {
	t.Helper()
	res := a.n.DoKey(t, key, method, path, body, headers...)
	a.check(t, method, path, body, headers, res)
	return res
}

func (a *apiSpec) check(t *testing.T, method, path string, body any, headers []string, res nodetest.Response) {
	t.Helper()
	var data []byte
	switch b := body.(type) {
	case nil:
	case string:
		data = []byte(b)
	case []byte:
		data = b
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(data))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	route, params, err := a.router.FindRoute(req)
	if err != nil {
		t.Errorf("%s %s: not an operation of the document: %v", method, path, err)
		return
	}
	a.seen[route.Operation.OperationID] = true
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	ctx := context.Background()
	if res.Status < 400 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			t.Errorf("%s %s: the node accepted a request the document refuses: %v", method, path, err)
		}
	}
	ndjson := strings.HasPrefix(res.Header.Get("Content-Type"), "application/x-ndjson")
	if ndjson {
		// One schema per line: kin-openapi decodes a body as one value.
		opts.ExcludeResponseBody = true
		a.checkLines(t, method+" "+path, res.Body)
	}
	err = openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: res.Status, Header: res.Header,
		Body: io.NopCloser(bytes.NewReader(res.Body)), Options: opts,
	})
	if err != nil {
		t.Errorf("%s %s: answer %d %.300s does not match the document: %v", method, path, res.Status, res.Body, err)
	}
}

// checkLines validates each NDJSON line of a streamed exec.
func (a *apiSpec) checkLines(t *testing.T, what string, body []byte) {
	t.Helper()
	schema := a.doc.Components.Schemas["ExecStreamLine"].Value
	for _, line := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
		var v any
		if err := json.Unmarshal(line, &v); err != nil {
			t.Errorf("%s: line %q is not JSON: %v", what, line, err)
			continue
		}
		if err := schema.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("%s: line %s does not match ExecStreamLine: %v", what, line, err)
		}
	}
}

// TestOpenAPIServed checks that a node serves the document it embeds to
// an authenticated caller, and refuses a caller without a key.
func TestOpenAPIServed(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	want, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	res := n.Do(t, http.MethodGet, "/api/openapi.json", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("status %d, body %.300s", res.Status, res.Body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if !bytes.Equal(res.Body, want) {
		t.Error("the served document is not node/openapi.json")
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	res.JSON(t, &doc)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	wantError(t, n.DoKey(t, "", http.MethodGet, "/api/openapi.json", nil), http.StatusUnauthorized, "")
	wantError(t, n.DoKey(t, "wrong-key-0123456789", http.MethodGet, "/api/openapi.json", nil), http.StatusUnauthorized, "")
	if res := n.DoKey(t, "", http.MethodGet, "/api/openapi.json?key="+nodetest.Key, nil); res.Status != http.StatusOK {
		t.Errorf("with ?key=: status %d", res.Status)
	}
}

// TestOpenAPIAnswers drives every route of a real node and checks each
// request and answer, errors included, against the served document.
func TestOpenAPIAnswers(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	a := fetchSpec(t, n)
	k := nodetest.Key
	get := func(path string) nodetest.Response {
		t.Helper()
		return a.do(t, k, http.MethodGet, path, nil)
	}

	// The node.
	a.do(t, "", http.MethodGet, "/api/health", nil)
	get("/api/openapi.json")
	get("/api/system")
	get("/api/system/capabilities")
	get("/api/nodes")
	a.do(t, "", http.MethodGet, "/api/spaces", nil)
	get("/api/spaces/nope-not-here?node=no-such-node")

	// Templates.
	get("/api/templates")
	get("/api/templates/default")
	get("/api/templates/nope-not-here")
	tmpl := "t-openapi-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	yaml := "name: " + tmpl + "\ndescription: tiny\nresources:\n  memory: 256m\n  cpus: 0.5\nsecurity:\n  writableRootfs: false\nnetwork:\n  mode: none\nworkspace:\n  defaultRepoDest: src\n"
	a.do(t, k, http.MethodPut, "/api/templates", map[string]any{"yaml": yaml})
	a.do(t, k, http.MethodPut, "/api/templates", map[string]any{"yaml": "name: -bad\n"})
	a.do(t, k, http.MethodPut, "/api/templates", "[1]")
	a.do(t, k, http.MethodDelete, "/api/templates/"+tmpl, nil)
	a.do(t, k, http.MethodDelete, "/api/templates/"+tmpl, nil)

	// Spaces.
	name := nodetest.Name(t, n.Engine, "openapi")
	res := a.do(t, k, http.MethodPost, "/api/spaces", map[string]any{"name": name, "memory": "128m", "cpus": 0.5, "env": map[string]string{"GREETING": "hi"}})
	if res.Status != http.StatusCreated {
		t.Fatalf("create: status %d, body %s", res.Status, res.Body)
	}
	a.do(t, k, http.MethodPost, "/api/spaces", map[string]any{"name": name, "memory": "128m"})
	a.do(t, k, http.MethodPost, "/api/spaces", map[string]any{"name": "bad name"})
	a.do(t, k, http.MethodPost, "/api/spaces", map[string]any{"name": "x", "template": "nope-not-here"})
	get("/api/spaces")
	get("/api/spaces?all=true")
	get("/api/spaces?all=maybe")
	sp := "/api/spaces/" + name
	get(sp)
	get("/api/spaces/nope-not-here")
	get(sp + "/stats")
	get(sp + "/observability")

	// Exec: JSON, bytes that are not UTF-8, a timeout, argv, a stream, errors.
	a.do(t, k, http.MethodPost, sp+"/exec", map[string]any{"command": "echo hi; echo err >&2; exit 3"})
	a.do(t, k, http.MethodPost, sp+"/exec", map[string]any{"command": `printf "a\377b"`})
	a.do(t, k, http.MethodPost, sp+"/exec", map[string]any{"command": "sleep 5", "timeoutMs": 200})
	a.do(t, k, http.MethodPost, sp+"/exec", map[string]any{"command": []string{"cat"}, "stdinBase64": "AAEC/w==", "maxOutputBytes": 2})
	res = a.do(t, k, http.MethodPost, sp+"/exec?stream=true", map[string]any{"command": `echo one; echo two >&2; printf "\377"; exit 2`})
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-ndjson") {
		t.Errorf("stream: Content-Type %q", ct)
	}
	a.do(t, k, http.MethodPost, sp+"/exec", map[string]any{"command": ""})
	a.do(t, k, http.MethodPost, sp+"/exec", map[string]any{"command": "true", "timeoutMs": 0})
	a.do(t, k, http.MethodPost, "/api/spaces/nope-not-here/exec", map[string]any{"command": "true"})

	// Files.
	a.do(t, k, http.MethodPut, sp+"/file?path=/notes/todo.txt", map[string]any{"contentBase64": "YnV5IG1pbGsK"})
	a.do(t, k, http.MethodPut, sp+"/file?path=/data/raw.bin", []byte{0, 1, 2, 255}, "Content-Type", "application/octet-stream")
	a.do(t, k, http.MethodPut, sp+"/file?path=/notes/x", map[string]any{"contentBase64": "%%%"})
	a.do(t, k, http.MethodPost, sp+"/mkdir", map[string]any{"path": "/empty/dir"})
	a.do(t, k, http.MethodPost, sp+"/mkdir?path=/other", nil)
	get(sp + "/files")
	get(sp + "/files?path=/notes")
	get(sp + "/files?path=/nope")
	get(sp + "/files?path=/a/../b")
	get(sp + "/file?path=/notes/todo.txt")
	get(sp + "/file?path=/notes/todo.txt&maxBytes=3")
	get(sp + "/file?path=/data/raw.bin&raw=true")
	get(sp + "/file?path=/notes/todo.txt&maxBytes=-1")
	a.do(t, k, http.MethodDelete, sp+"/file?path=/empty", nil)
	a.do(t, k, http.MethodDelete, sp+"/file?path=/empty&recursive=true", nil)
	a.do(t, k, http.MethodDelete, sp+"/file?path=/nope", nil)

	// Git push: refused fields, and git that is missing or fails.
	a.do(t, k, http.MethodPost, sp+"/git/push", map[string]any{"remote": "--upload-pack=x"})
	a.do(t, k, http.MethodPost, sp+"/git/push", map[string]any{"repoPath": "/notes"})

	// Terminal: a refusal before the upgrade, then a real WebSocket.
	get(sp + "/terminal")
	get(sp + "/terminal?cols=0")
	a.checkTerminal(t, sp+"/terminal?cols=100&rows=30")
	// The SSH tunnel: a refusal before the upgrade, then a real WebSocket.
	get("/api/ssh")
	a.checkTerminal(t, "/api/ssh")

	// Ports: the list, a forward refused without a tailnet, bad input,
	// and the tunnel (refused before the upgrade, then a real one to
	// busybox's httpd).
	a.do(t, k, http.MethodPost, sp+"/exec", map[string]any{"command": []string{"httpd", "-p", "3000", "-h", "/tmp"}})
	get(sp + "/ports")
	get("/api/spaces/nope-not-here/ports")
	a.do(t, k, http.MethodPost, sp+"/ports", map[string]any{"port": 3000})
	a.do(t, k, http.MethodPost, sp+"/ports", map[string]any{"port": 0})
	a.do(t, k, http.MethodDelete, sp+"/ports/3000", nil)
	a.do(t, k, http.MethodDelete, sp+"/ports/abc", nil)
	get(sp + "/ports/3000/connect")
	a.checkUpgrade(t, sp+"/ports/3000/connect", "the port tunnel")

	// Lifecycle and audit.
	a.do(t, k, http.MethodPost, sp+"/stop", nil)
	a.do(t, k, http.MethodPost, sp+"/start", "")
	// Checkpoints, restore and forks.
	want := func(res nodetest.Response, status int) {
		t.Helper()
		if res.Status != status {
			t.Errorf("status %d, want %d: %s", res.Status, status, res.Body)
		}
	}
	want(a.do(t, k, http.MethodPost, sp+"/checkpoints", map[string]any{"name": "one"}), http.StatusCreated)
	want(a.do(t, k, http.MethodPost, sp+"/checkpoints", map[string]any{"name": "one"}), http.StatusConflict)
	want(a.do(t, k, http.MethodPost, sp+"/checkpoints", map[string]any{"name": "bad name"}), http.StatusBadRequest)
	want(a.do(t, k, http.MethodPost, sp+"/checkpoints", nil), http.StatusCreated)
	want(get(sp+"/checkpoints"), http.StatusOK)
	want(get("/api/spaces/nope-not-here/checkpoints"), http.StatusNotFound)
	want(a.do(t, k, http.MethodPost, sp+"/checkpoints/one/restore", nil), http.StatusOK)
	want(a.do(t, k, http.MethodPost, sp+"/checkpoints/one/restore?force=maybe", nil), http.StatusBadRequest)
	want(a.do(t, k, http.MethodPost, sp+"/checkpoints/nope/restore", nil), http.StatusNotFound)
	fork := nodetest.Name(t, n.Engine, "openapi-fork")
	want(a.do(t, k, http.MethodPost, "/api/spaces", map[string]any{"name": fork, "from": name + "@one"}), http.StatusCreated)
	want(a.do(t, k, http.MethodPost, "/api/spaces", map[string]any{"name": fork + "x", "from": name, "memory": "1g"}), http.StatusBadRequest)
	want(a.do(t, k, http.MethodDelete, "/api/spaces/"+fork+"?removeVolume=true", nil), http.StatusOK)
	want(a.do(t, k, http.MethodDelete, sp+"/checkpoints/one", nil), http.StatusOK)
	want(a.do(t, k, http.MethodDelete, sp+"/checkpoints/one", nil), http.StatusNotFound)

	// Export and import.
	openapi3filter.RegisterBodyDecoder("application/x-tar", openapi3filter.FileBodyDecoder)
	archive := a.do(t, k, http.MethodGet, sp+"/export?checkpoint=1", nil)
	want(archive, http.StatusOK)
	want(a.do(t, k, http.MethodGet, sp+"/export?checkpoint=nope", nil), http.StatusNotFound)
	imported := nodetest.Name(t, n.Engine, "openapi-imp")
	want(a.do(t, k, http.MethodPost, "/api/spaces/import?name="+imported, archive.Body, "Content-Type", "application/x-tar"), http.StatusCreated)
	want(a.do(t, k, http.MethodPost, "/api/spaces/import?name="+imported, archive.Body, "Content-Type", "application/x-tar"), http.StatusConflict)
	want(a.do(t, k, http.MethodPost, "/api/spaces/import?name="+imported+"x", []byte("not an archive"), "Content-Type", "application/x-tar"), http.StatusBadRequest)
	want(a.do(t, k, http.MethodDelete, "/api/spaces/"+imported+"?removeVolume=true", nil), http.StatusOK)
	get("/api/audit?space=" + name + "&limit=50")
	get("/api/audit?limit=2")
	get("/api/audit?limit=0")
	a.do(t, k, http.MethodDelete, sp+"?removeVolume=maybe", nil)
	a.do(t, k, http.MethodDelete, sp+"?removeVolume=true", nil)
	a.do(t, k, http.MethodDelete, sp, nil)

	// A route added later gets its answers checked here too.
	for path, item := range a.doc.Paths.Map() {
		for method, op := range item.Operations() {
			if !a.seen[op.OperationID] {
				t.Errorf("%s %s (%s) was not checked against a real answer", method, path, op.OperationID)
			}
		}
	}
}

// checkTerminal opens the terminal WebSocket and checks the 101 answer.
func (a *apiSpec) checkTerminal(t *testing.T, pathQuery string) {
	t.Helper()
	a.checkUpgrade(t, pathQuery, "the terminal")
}

// checkUpgrade opens a WebSocket route and checks the 101 answer.
func (a *apiSpec) checkUpgrade(t *testing.T, pathQuery, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	h := http.Header{"Authorization": {"Bearer " + nodetest.Key}}
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(a.n.URL, "http")+pathQuery, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Errorf("opening %s: %v", what, err)
		return
	}
	c.Close(websocket.StatusNormalClosure, "")
	res := nodetest.Response{Status: resp.StatusCode, Header: resp.Header}
	a.check(t, http.MethodGet, pathQuery, nil, []string{"Upgrade", "websocket", "Connection", "Upgrade",
		"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version", "13"}, res)
}
