package node_test

import (
	"maps"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
)

var hex12 = regexp.MustCompile(`^[0-9a-f]{12}$`)

func TestCreateSpace(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	tests := []struct {
		name       string
		fields     map[string]any
		wantMemory int64
		wantCPUs   float64
	}{
		{name: "memory and cpus", fields: map[string]any{"memory": "512m", "cpus": 0.5}, wantMemory: 512 << 20, wantCPUs: 0.5},
		{name: "cpus as a string", fields: map[string]any{"memory": "256m", "cpus": "1"}, wantMemory: 256 << 20, wantCPUs: 1},
		{name: "bare number is megabytes", fields: map[string]any{"memory": "200", "cpus": 2}, wantMemory: 200 << 20, wantCPUs: 2},
		{name: "template defaults", fields: nil, wantMemory: 2 << 30, wantCPUs: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().Add(-time.Second)
			name := nodetest.Name(t, n.Engine, "create")
			sp := createSpace(t, n, name, tt.fields)
			wantSpaceShape(t, name, sp, before)
			if sp.Memory != tt.wantMemory {
				t.Errorf("memory = %d, want %d", sp.Memory, tt.wantMemory)
			}
			if sp.CPUs != tt.wantCPUs {
				t.Errorf("cpus = %v, want %v", sp.CPUs, tt.wantCPUs)
			}
			if sp.Image != nodetest.TestImage {
				t.Errorf("image = %q, want %q", sp.Image, nodetest.TestImage)
			}

			got := getSpace(t, n, name)
			wantSpaceShape(t, name, got, before)
			if got.ID != sp.ID || got.Memory != sp.Memory || got.CPUs != sp.CPUs || got.Image != sp.Image {
				t.Errorf("GET = %+v, want the created %+v", got, sp)
			}
			listed, ok := listSpaces(t, n)[name]
			if !ok {
				t.Fatalf("list does not contain %s", name)
			}
			wantSpaceShape(t, name, listed, before)
			if listed.ID != sp.ID || listed.Memory != sp.Memory || listed.CPUs != sp.CPUs {
				t.Errorf("listed = %+v, want the created %+v", listed, sp)
			}
			h := inspect(t, n, name).HostConfig
			if h.Memory != tt.wantMemory || h.NanoCPUs != int64(tt.wantCPUs*1e9) {
				t.Errorf("container limits = %d bytes, %d nanocpus; want %d, %d", h.Memory, h.NanoCPUs, tt.wantMemory, int64(tt.wantCPUs*1e9))
			}
		})
	}
}

// wantSpaceShape checks the Space object of the contract.
func wantSpaceShape(t *testing.T, name string, sp spaceDoc, notBefore time.Time) {
	t.Helper()
	if sp.Name != name {
		t.Errorf("name = %q, want %q", sp.Name, name)
	}
	if !hex12.MatchString(sp.ID) {
		t.Errorf("id = %q, want 12 hex characters", sp.ID)
	}
	if sp.Status != "running" {
		t.Errorf("status = %q, want running", sp.Status)
	}
	for field, v := range map[string]string{"created": sp.Created, "started": sp.Started, "lastActivity": sp.LastActivity} {
		ts := parseISO(t, field, v)
		if ts.Before(notBefore.Add(-time.Second)) || ts.After(time.Now().Add(time.Minute)) {
			t.Errorf("%s = %s, not around now", field, v)
		}
	}
	if sp.Image == "" {
		t.Error("image is empty")
	}
	if sp.Memory <= 0 || sp.CPUs <= 0 {
		t.Errorf("memory = %d, cpus = %v; want positive", sp.Memory, sp.CPUs)
	}
	if sp.Volume.Name != "clawdspace-vol-"+name || sp.Volume.Mountpoint != "/workspace" {
		t.Errorf("volume = %+v, want {clawdspace-vol-%s /workspace}", sp.Volume, name)
	}
}

func TestCreateSpaceRefusesBadInput(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	// valid in a body is replaced by a fresh valid name, so that a case the
	// node wrongly accepts cannot spoil the next one.
	const valid = "$NAME"
	tests := []struct {
		name    string
		body    any
		want    int
		wantMsg string // substring of the error, case-insensitive
	}{
		{name: "empty name", body: map[string]any{"name": ""}, want: 400, wantMsg: "name"},
		{name: "no name", body: map[string]any{"memory": "64m"}, want: 400, wantMsg: "name"},
		{name: "name with a space", body: map[string]any{"name": "a b"}, want: 400, wantMsg: "name"},
		{name: "name with dots and slash", body: map[string]any{"name": "../x"}, want: 400, wantMsg: "name"},
		{name: "name with a slash", body: map[string]any{"name": "a/b"}, want: 400, wantMsg: "name"},
		{name: "name with a leading dash", body: map[string]any{"name": "-x"}, want: 400, wantMsg: "name"},
		{name: "name of 70 characters", body: map[string]any{"name": strings.Repeat("a", 70)}, want: 400, wantMsg: "name"},
		{name: "name with a dot", body: map[string]any{"name": "a.b"}, want: 400, wantMsg: "name"},
		{name: "memory 2x", body: map[string]any{"name": valid, "memory": "2x"}, want: 400, wantMsg: "memory"},
		{name: "memory 0", body: map[string]any{"name": valid, "memory": "0"}, want: 400, wantMsg: "memory"},
		{name: "memory -1", body: map[string]any{"name": valid, "memory": "-1"}, want: 400, wantMsg: "memory"},
		{name: "memory 1t", body: map[string]any{"name": valid, "memory": "1t"}, want: 400, wantMsg: "memory"},
		{name: "memory 1.5g", body: map[string]any{"name": valid, "memory": "1.5g"}, want: 400, wantMsg: "memory"},
		{name: "memory of the wrong type", body: map[string]any{"name": valid, "memory": true}, want: 400, wantMsg: "memory"},
		{name: "cpus 0", body: map[string]any{"name": valid, "memory": "64m", "cpus": 0}, want: 400, wantMsg: "cpus"},
		{name: "cpus -1", body: map[string]any{"name": valid, "memory": "64m", "cpus": -1}, want: 400, wantMsg: "cpus"},
		{name: "cpus 65", body: map[string]any{"name": valid, "memory": "64m", "cpus": 65}, want: 400, wantMsg: "cpus"},
		{name: "cpus 3 above the host", body: map[string]any{"name": valid, "memory": "64m", "cpus": 3}, want: 400, wantMsg: "cpus"},
		{name: "cpus not a number", body: map[string]any{"name": valid, "memory": "64m", "cpus": "lots"}, want: 400, wantMsg: "cpus"},
		{name: "unknown template", body: map[string]any{"name": valid, "template": "no-such-template"}, want: 404, wantMsg: "template"},
		{name: "gpu without a GPU", body: map[string]any{"name": valid, "gpu": true}, want: 400, wantMsg: "gpu"},
		{name: "gpu template without a GPU", body: map[string]any{"name": valid, "template": "gpu"}, want: 400},
		{name: "env name invalid", body: map[string]any{"name": valid, "memory": "64m", "env": map[string]string{"1X": "y"}}, want: 400, wantMsg: "env"},
		{name: "missing image", body: map[string]any{"name": valid, "memory": "64m", "image": "clawdspace-test:does-not-exist"}, want: 400, wantMsg: "image"},
		{name: "malformed JSON", body: `{"name": "x",`, want: 400},
		{name: "JSON array", body: `[1,2]`, want: 400},
		{name: "name of the wrong type", body: `{"name": 42}`, want: 400, wantMsg: "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, name := tt.body, ""
			if m, ok := body.(map[string]any); ok && m["name"] == valid {
				name = nodetest.Name(t, n.Engine, "bad")
				m = maps.Clone(m)
				m["name"] = name
				body = m
			}
			res := n.Do(t, http.MethodPost, "/api/spaces", body)
			wantErrorContains(t, res, tt.want, tt.wantMsg)
			if name != "" {
				wantNothingLeft(t, n, name)
			}
		})
	}
}

func TestCreateFromBrokenImageLeavesNothing(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := nodetest.Name(t, n.Engine, "broken")
	res := n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": name, "memory": "64m", "image": nodetest.BrokenImage})
	if res.Status < 400 || res.Status >= 500 {
		t.Errorf("status = %d, want a 4xx (body %s)", res.Status, res.Body)
	} else {
		wantError(t, res, res.Status, "")
	}
	wantNothingLeft(t, n, name)
	if res := n.Do(t, http.MethodGet, "/api/spaces/"+name, nil); res.Status != http.StatusNotFound {
		t.Errorf("GET after the failed create: status %d, want 404 (body %s)", res.Status, res.Body)
	}
}

func TestCreateKeepsAnExistingSpace(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "dup")
	before := inspect(t, n, name)
	res := n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": name, "memory": "64m"})
	wantError(t, res, http.StatusConflict, "Space already exists")
	after := inspect(t, n, name)
	if after.ID != before.ID || after.HostConfig.Memory != before.HostConfig.Memory {
		t.Errorf("the refused create changed the container: %s/%d -> %s/%d", before.ID, before.HostConfig.Memory, after.ID, after.HostConfig.Memory)
	}
	if !volumeExists(t, n, name) {
		t.Error("the refused create removed the volume")
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{MaxBodyBytes: 256})
	big := `{"name":"x","env":{"A":"` + strings.Repeat("a", 4096) + `"}}`
	tests := []struct {
		name, method, path string
	}{
		{name: "create", method: http.MethodPost, path: "/api/spaces"},
		{name: "exec", method: http.MethodPost, path: "/api/spaces/whatever/exec"},
		{name: "template", method: http.MethodPut, path: "/api/templates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, n.Do(t, tt.method, tt.path, big), http.StatusRequestEntityTooLarge, "")
		})
	}
	// A body under the limit is still read.
	wantErrorContains(t, n.Do(t, http.MethodPost, "/api/spaces", `{"name":"a b"}`), http.StatusBadRequest, "name")
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	tests := []struct {
		name, method, path string
		want               int
	}{
		{name: "unknown route", method: http.MethodGet, path: "/api/nope", want: http.StatusNotFound},
		{name: "unknown space sub-route", method: http.MethodGet, path: "/api/spaces/x/nope", want: http.StatusNotFound},
		{name: "deep unknown route", method: http.MethodPost, path: "/api/a/b/c/d", want: http.StatusNotFound},
		{name: "PATCH spaces", method: http.MethodPatch, path: "/api/spaces", want: http.StatusMethodNotAllowed},
		{name: "DELETE spaces", method: http.MethodDelete, path: "/api/spaces", want: http.StatusMethodNotAllowed},
		{name: "GET exec", method: http.MethodGet, path: "/api/spaces/x/exec", want: http.StatusMethodNotAllowed},
		{name: "PUT space", method: http.MethodPut, path: "/api/spaces/x", want: http.StatusMethodNotAllowed},
		{name: "POST audit", method: http.MethodPost, path: "/api/audit", want: http.StatusMethodNotAllowed},
		{name: "POST template by name", method: http.MethodPost, path: "/api/templates/default", want: http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := n.Do(t, tt.method, tt.path, nil)
			wantError(t, res, tt.want, "")
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want JSON", ct)
			}
			if tt.want == http.StatusMethodNotAllowed && res.Header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
		})
	}
}

func TestMissingSpaceIs404(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	missing := nodetest.Name(t, n.Engine, "missing")
	for _, name := range []string{missing, "a.b", strings.Repeat("z", 70)} {
		tests := []struct {
			name, method, path string
			body               any
		}{
			{name: "get", method: http.MethodGet, path: "/api/spaces/" + name},
			{name: "delete", method: http.MethodDelete, path: "/api/spaces/" + name},
			{name: "delete with volume", method: http.MethodDelete, path: "/api/spaces/" + name + "?removeVolume=true"},
			{name: "stop", method: http.MethodPost, path: "/api/spaces/" + name + "/stop"},
			{name: "start", method: http.MethodPost, path: "/api/spaces/" + name + "/start"},
			{name: "exec", method: http.MethodPost, path: "/api/spaces/" + name + "/exec", body: map[string]any{"command": "true"}},
			{name: "exec argv", method: http.MethodPost, path: "/api/spaces/" + name + "/exec", body: map[string]any{"command": []string{"true"}}},
			{name: "stats", method: http.MethodGet, path: "/api/spaces/" + name + "/stats"},
		}
		for _, tt := range tests {
			t.Run(tt.name+" "+name[:min(len(name), 12)], func(t *testing.T) {
				wantError(t, n.Do(t, tt.method, tt.path, tt.body), http.StatusNotFound, "Space not found")
			})
		}
	}
	wantNothingLeft(t, n, missing)
}

// TestContainerThatIsNotASpace checks that a container that merely carries
// the space prefix, without the clawdspace.kind=space label, is no space:
// every route answers 404 and leaves it alone.
func TestContainerThatIsNotASpace(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := nodetest.Name(t, n.Engine, "foreign")
	cname := "clawdspace-" + name
	rawCleanup(t, n, cname, "")
	created, err := n.Raw().ContainerCreate(t.Context(), client.ContainerCreateOptions{
		Name:   cname,
		Config: &container.Config{Image: nodetest.TestImage, Cmd: []string{"sleep", "infinity"}, Labels: map[string]string{"owner": "someone-else"}},
	})
	if err != nil {
		t.Fatalf("creating the foreign container: %v", err)
	}
	if _, err := n.Raw().ContainerStart(t.Context(), created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("starting the foreign container: %v", err)
	}
	tests := []struct {
		name, method, path string
		body               any
	}{
		{name: "get", method: http.MethodGet, path: "/api/spaces/" + name},
		{name: "stop", method: http.MethodPost, path: "/api/spaces/" + name + "/stop"},
		{name: "start", method: http.MethodPost, path: "/api/spaces/" + name + "/start"},
		{name: "exec", method: http.MethodPost, path: "/api/spaces/" + name + "/exec", body: map[string]any{"command": "true"}},
		{name: "stats", method: http.MethodGet, path: "/api/spaces/" + name + "/stats"},
		{name: "delete", method: http.MethodDelete, path: "/api/spaces/" + name + "?removeVolume=true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, n.Do(t, tt.method, tt.path, tt.body), http.StatusNotFound, "Space not found")
			res, err := n.Raw().ContainerInspect(t.Context(), cname, client.ContainerInspectOptions{})
			if err != nil {
				t.Fatalf("the foreign container is gone after %s: %v", tt.name, err)
			}
			if st := res.Container.State.Status; st != "running" {
				t.Errorf("the foreign container is %s after %s, want running", st, tt.name)
			}
		})
	}
	if _, ok := listSpaces(t, n)[name]; ok {
		t.Error("the foreign container is listed as a space")
	}
}
