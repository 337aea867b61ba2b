package node_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
)

// spaceDoc is the Space object of the wire contract as clients decode it.
type spaceDoc struct {
	Name         string  `json:"name"`
	ID           string  `json:"id"`
	Status       string  `json:"status"`
	Created      string  `json:"created"`
	Started      string  `json:"started"`
	Image        string  `json:"image"`
	Memory       int64   `json:"memory"`
	CPUs         float64 `json:"cpus"`
	LastActivity string  `json:"lastActivity"`
	Volume       struct {
		Name       string `json:"name"`
		Mountpoint string `json:"mountpoint"`
	} `json:"volume"`
}

// execDoc is the answer of the exec route.
type execDoc struct {
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	ExitCode  int    `json:"exitCode"`
	Truncated bool   `json:"truncated"`
}

// eventDoc is one audit event.
type eventDoc struct {
	TS    string         `json:"ts"`
	Space string         `json:"space"`
	Type  string         `json:"type"`
	Actor string         `json:"actor"`
	Meta  map[string]any `json:"meta"`
	// Source is node or space.
	Source string `json:"source"`
}

// createSpace creates a space with the given extra request fields and fails
// the test unless the node answers 201.
func createSpace(t testing.TB, n *nodetest.Node, name string, fields map[string]any) spaceDoc {
	t.Helper()
	body := map[string]any{"name": name}
	for k, v := range fields {
		body[k] = v
	}
	res := n.Do(t, http.MethodPost, "/api/spaces", body)
	if res.Status != http.StatusCreated {
		t.Fatalf("creating space %s: status %d, body %s", name, res.Status, res.Body)
	}
	var doc struct {
		Space spaceDoc `json:"space"`
	}
	res.JSON(t, &doc)
	return doc.Space
}

// newSpace makes a unique name and creates a small space with it.
func newSpace(t testing.TB, n *nodetest.Node, base string) string {
	t.Helper()
	name := nodetest.Name(t, n.Engine, base)
	createSpace(t, n, name, map[string]any{"memory": "128m"})
	return name
}

// getSpace returns a space through the API.
func getSpace(t testing.TB, n *nodetest.Node, name string) spaceDoc {
	t.Helper()
	res := n.Do(t, http.MethodGet, "/api/spaces/"+name, nil)
	if res.Status != http.StatusOK {
		t.Fatalf("getting space %s: status %d, body %s", name, res.Status, res.Body)
	}
	var doc struct {
		Space spaceDoc `json:"space"`
	}
	res.JSON(t, &doc)
	return doc.Space
}

// listSpaces returns the spaces of the list route by name.
func listSpaces(t testing.TB, n *nodetest.Node) map[string]spaceDoc {
	t.Helper()
	res := n.Do(t, http.MethodGet, "/api/spaces", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("listing spaces: status %d, body %s", res.Status, res.Body)
	}
	var doc struct {
		Spaces []spaceDoc `json:"spaces"`
	}
	res.JSON(t, &doc)
	out := make(map[string]spaceDoc, len(doc.Spaces))
	for _, s := range doc.Spaces {
		out[s.Name] = s
	}
	return out
}

// execIn runs command (a string or an argv slice) and fails the test unless
// the node answers 200.
func execIn(t testing.TB, n *nodetest.Node, name string, command any) execDoc {
	t.Helper()
	res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", map[string]any{"command": command})
	if res.Status != http.StatusOK {
		t.Fatalf("exec %v in %s: status %d, body %s", command, name, res.Status, res.Body)
	}
	var out execDoc
	res.JSON(t, &out)
	return out
}

// wantError checks the status and that the body is a JSON error object; when
// msg is not empty the error must equal it.
func wantError(t testing.TB, res nodetest.Response, status int, msg string) {
	t.Helper()
	if res.Status != status {
		t.Errorf("status = %d, want %d (body %s)", res.Status, status, res.Body)
		return
	}
	var e map[string]any
	if err := json.Unmarshal(res.Body, &e); err != nil {
		t.Errorf("body %q is not JSON: %v", res.Body, err)
		return
	}
	got, ok := e["error"].(string)
	if !ok || got == "" {
		t.Errorf("body %s has no error message", res.Body)
		return
	}
	if msg != "" && got != msg {
		t.Errorf("error = %q, want %q", got, msg)
	}
}

// wantErrorContains is wantError with a message that must contain each of parts.
func wantErrorContains(t testing.TB, res nodetest.Response, status int, parts ...string) {
	t.Helper()
	wantError(t, res, status, "")
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(res.Body, &e) != nil {
		return
	}
	for _, p := range parts {
		if !strings.Contains(strings.ToLower(e.Error), strings.ToLower(p)) {
			t.Errorf("error %q does not mention %q", e.Error, p)
		}
	}
}

// inspect returns the Docker view of a space's container.
func inspect(t testing.TB, n *nodetest.Node, name string) container.InspectResponse {
	t.Helper()
	res, err := n.Raw().ContainerInspect(t.Context(), "clawdspace-"+name, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspecting container of %s: %v", name, err)
	}
	return res.Container
}

// containerExists reports whether the space's container exists.
func containerExists(t testing.TB, n *nodetest.Node, name string) bool {
	t.Helper()
	_, err := n.Raw().ContainerInspect(context.Background(), "clawdspace-"+name, client.ContainerInspectOptions{})
	return found(t, err)
}

// volumeExists reports whether the space's volume exists.
func volumeExists(t testing.TB, n *nodetest.Node, name string) bool {
	t.Helper()
	_, err := n.Raw().VolumeInspect(context.Background(), "clawdspace-vol-"+name, client.VolumeInspectOptions{})
	return found(t, err)
}

func found(t testing.TB, err error) bool {
	t.Helper()
	switch {
	case err == nil:
		return true
	case cerrdefs.IsNotFound(err):
		return false
	}
	t.Fatalf("asking the engine: %v", err)
	return false
}

// wantNothingLeft fails when the space's container or volume exists.
func wantNothingLeft(t testing.TB, n *nodetest.Node, name string) {
	t.Helper()
	if containerExists(t, n, name) {
		t.Errorf("container clawdspace-%s was left behind", name)
	}
	if volumeExists(t, n, name) {
		t.Errorf("volume clawdspace-vol-%s was left behind", name)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// parseISO parses a time of the contract and fails on anything else.
func parseISO(t testing.TB, field, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s = %q is not an ISO time: %v", field, s, err)
	}
	return ts
}

// rawCleanup removes a container and a volume made through the raw client.
func rawCleanup(t testing.TB, n *nodetest.Node, containerName, volume string) {
	t.Helper()
	c := n.Raw()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.ContainerRemove(ctx, containerName, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("removing container %s: %v", containerName, err)
		}
		if volume == "" {
			return
		}
		if _, err := c.VolumeRemove(ctx, volume, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("removing volume %s: %v", volume, err)
		}
	})
}
