package node

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/adam91holt/clawdspace/spaces"
)

// loadOpenAPI parses and validates the embedded document with kin-openapi,
// which checks an OpenAPI 3.1 document in full: structure, $refs, path
// parameters, and every example against its schema (JSON Schema 2020-12).
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openAPIDoc)
	if err != nil {
		t.Fatalf("loading node/openapi.json: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation(), openapi3.EnableMultiError()); err != nil {
		t.Fatalf("node/openapi.json is not a valid OpenAPI 3.1 document: %v", err)
	}
	return doc
}

// TestOpenAPIRoutes checks that the document describes exactly the routes
// that routes() registers: every pattern is an operation, and every
// operation is a pattern.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	var s Server
	s.routes()
	if len(s.apiRoutes) == 0 {
		t.Fatal("routes() recorded no API routes")
	}
	var ops []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	for _, p := range s.apiRoutes {
		if !slices.Contains(ops, p) {
			t.Errorf("route %q is not an operation of node/openapi.json", p)
		}
	}
	for _, op := range ops {
		if !slices.Contains(s.apiRoutes, op) {
			t.Errorf("node/openapi.json describes %q, which is not a route of routes()", op)
		}
	}
}

// TestOpenAPIOperations checks what every operation must say: its
// actions (known ones), the errors of authentication, and a body schema
// for every JSON answer.
func TestOpenAPIOperations(t *testing.T) {
	doc := loadOpenAPI(t)
	known := spaces.Actions()
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			if op.OperationID == "" || op.Summary == "" || op.Description == "" {
				t.Errorf("%s: needs an operationId, a summary and a description", name)
			}
			open := op.Security != nil && len(*op.Security) == 0
			if open != (path == "/api/health") {
				t.Errorf("%s: only /api/health may be open (security: [])", name)
			}
			if open {
				continue
			}
			acts, ok := op.Extensions["x-clawdspace-actions"].([]any)
			if !ok {
				t.Errorf("%s: x-clawdspace-actions is missing", name)
			}
			for _, a := range acts {
				if s, _ := a.(string); !slices.Contains(known, spaces.Action(s)) {
					t.Errorf("%s: unknown action %v", name, a)
				}
			}
			if !strings.Contains(op.Description, "**Action:**") {
				t.Errorf("%s: the description does not say which action it needs", name)
			}
			for _, status := range []int{401, 403, 429, 500} {
				if op.Responses.Status(status) == nil {
					t.Errorf("%s: no %d answer", name, status)
				}
			}
			for code, r := range op.Responses.Map() {
				for mt, c := range r.Value.Content {
					if c.Schema == nil {
						t.Errorf("%s: answer %s (%s) has no schema", name, code, mt)
					}
				}
			}
		}
	}
}
