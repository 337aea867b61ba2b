package node_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/adam91holt/clawdspace/fleet"
	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/tailnet"
)

// bearer adds an API key to every request of an MCP client.
type mcpBearer struct {
	key  string
	base http.RoundTripper
}

func (b mcpBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b.key != "" {
		r.Header.Set("Authorization", "Bearer "+b.key)
	}
	return b.base.RoundTrip(r)
}

// mcpConnect opens an MCP session to url/mcp with hc, sending key when
// it is not empty.
func mcpConnect(t testing.TB, url string, hc *http.Client, key string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "clawdspace-test", Version: "1"}, opts)
	cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint: url + "/mcp", HTTPClient: &http.Client{Transport: mcpBearer{key, base}}, DisableStandaloneSSE: true,
	}, nil)
	if err != nil {
		t.Fatalf("connecting to %s/mcp: %v", url, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// callTool calls a tool and fails the test on a protocol error; a tool
// error comes back in the result.
func callTool(t testing.TB, cs *mcp.ClientSession, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("tool %s: %v", name, err)
	}
	return res
}

// toolOK calls a tool, fails the test on any error, and decodes the
// structured answer into out.
func toolOK(t testing.TB, cs *mcp.ClientSession, name string, args map[string]any, out any) {
	t.Helper()
	res := callTool(t, cs, name, args)
	if res.IsError {
		t.Fatalf("tool %s(%v): error %s", name, args, toolText(res))
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("tool %s: answer %s: %v", name, b, err)
		}
	}
}

// toolText is the text of a result's content.
func toolText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// wantToolError checks that a tool call failed as a tool error whose
// message contains msg.
func wantToolError(t testing.TB, cs *mcp.ClientSession, name string, args map[string]any, msg string) {
	t.Helper()
	res := callTool(t, cs, name, args)
	if !res.IsError || !strings.Contains(toolText(res), msg) {
		t.Errorf("tool %s(%v) = error %v %q, want a tool error with %q", name, args, res.IsError, toolText(res), msg)
	}
}

func toolNames(t testing.TB, cs *mcp.ClientSession) []string {
	t.Helper()
	var names []string
	for tool, err := range cs.Tools(t.Context(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

var allTools = []string{"audit", "checkpoint", "create_space", "delete_file", "destroy_space", "exec", "fork", "get_space", "get_template", "git_push",
	"list_checkpoints", "list_files", "list_nodes", "list_spaces", "list_templates", "make_dir", "observe", "pause_space", "read_file", "restore",
	"resume_space", "write_file"}

// TestMCPNeedsKey: /mcp is behind authenticate, as /api/ is.
func TestMCPNeedsKey(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{Namespace: "mcpk"})
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`
	for _, key := range []string{"", "wrong-key-wrong-key-wrong"} {
		req, _ := http.NewRequest(http.MethodPost, n.URL+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := n.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("tools/list with key %q: %d, want 401", key, res.StatusCode)
		}
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "t"}, nil)
	if _, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: n.URL + "/mcp", HTTPClient: n.HTTP}, nil); err == nil {
		t.Error("an MCP client without a key connected")
	}
	// A cross-origin browser request is refused before it is read.
	req, _ := http.NewRequest(http.MethodPost, n.URL+"/mcp", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+nodetest.Key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	res, err := n.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin POST /mcp: %d, want 403", res.StatusCode)
	}
}

// TestMCPTools drives a node's tools with the SDK's client and the API
// key: every tool is listed with its annotations; create, exec with
// streamed progress, files (binary ones too, in parts), errors as tool
// errors with the REST API's messages, audit rows that name the door.
func TestMCPTools(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{Namespace: "mcpt"})
	var (
		mu       sync.Mutex
		progress []*mcp.ProgressNotificationParams
	)
	cs := mcpConnect(t, n.URL, n.HTTP, nodetest.Key, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progress = append(progress, req.Params)
			mu.Unlock()
		},
	})
	if got := toolNames(t, cs); !slices.Equal(got, allTools) {
		t.Fatalf("tools = %v, want %v", got, allTools)
	}
	for tool, err := range cs.Tools(t.Context(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		a := tool.Annotations
		if tool.Description == "" || tool.InputSchema == nil || tool.OutputSchema == nil || a == nil {
			t.Errorf("tool %s lacks a description, a schema or annotations", tool.Name)
			continue
		}
		destructive := a.DestructiveHint == nil || *a.DestructiveHint
		switch tool.Name {
		case "destroy_space", "delete_file", "exec", "restore":
			if !destructive || a.ReadOnlyHint {
				t.Errorf("tool %s is not marked destructive", tool.Name)
			}
		case "get_space", "list_spaces", "read_file", "list_files", "audit", "list_nodes", "list_templates", "list_checkpoints":
			if !a.ReadOnlyHint {
				t.Errorf("tool %s is not marked read-only", tool.Name)
			}
		}
	}

	name := nodetest.Name(t, n.Engine, "mcp")
	var created struct {
		Space struct{ Name, Status string }
		Node  string
	}
	toolOK(t, cs, "create_space", map[string]any{"name": name, "memory": "128m"}, &created)
	if created.Space.Name != name || created.Space.Status != "running" || created.Node != n.Name {
		t.Fatalf("create_space = %+v", created)
	}
	ev := lastEvent(t, n, name, spaces.EventCreate)
	if ev.Actor != "api-key" || ev.Meta["door"] != "mcp" {
		t.Errorf("create audit = %+v, want actor api-key through door mcp", ev)
	}

	t.Run("exec streams its output as progress", func(t *testing.T) {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "exec", Arguments: map[string]any{
			"name": name, "command": "echo one; sleep 0.2; echo two >&2; printf three; exit 3",
		}, Meta: mcp.Meta{"progressToken": "tok-1"}})
		if err != nil || res.IsError {
			t.Fatalf("exec: %v %s", err, toolText(res))
		}
		var out struct {
			Stdout, Stderr string
			ExitCode       int
		}
		b, _ := json.Marshal(res.StructuredContent)
		_ = json.Unmarshal(b, &out)
		if out.Stdout != "one\nthree" || out.Stderr != "two\n" || out.ExitCode != 3 {
			t.Fatalf("exec = %s", b)
		}
		// Notifications reach the handler apart from the answer, and not
		// necessarily in the order sent: wait for every output to arrive,
		// then check them in the order of their progress values.
		eventually(t, "the progress notifications", 10*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			var all strings.Builder
			for _, p := range progress {
				all.WriteString(p.Message)
			}
			s := all.String()
			return strings.Contains(s, "one") && strings.Contains(s, "two") && strings.Contains(s, "three")
		})
		mu.Lock()
		defer mu.Unlock()
		sort.SliceStable(progress, func(i, j int) bool { return progress[i].Progress < progress[j].Progress })
		var streamed strings.Builder
		last := 0.0
		for _, p := range progress {
			if p.ProgressToken != "tok-1" || p.Progress <= last {
				t.Errorf("progress %+v after %v", p, last)
			}
			last = p.Progress
			streamed.WriteString(p.Message)
		}
		if s := streamed.String(); len(progress) < 2 || !strings.Contains(s, "one") || !strings.Contains(s, "two") || !strings.Contains(s, "three") {
			t.Fatalf("progress notifications = %d, text %q; want the output streamed", len(progress), s)
		}
	})

	t.Run("exec with argv, stdin, env, cwd and caps", func(t *testing.T) {
		var out struct {
			Stdout    string
			ExitCode  int
			Truncated bool
			TimedOut  bool
		}
		toolOK(t, cs, "exec", map[string]any{"name": name, "argv": []string{"sh", "-c", "cat; echo \" $X $(pwd)\""},
			"stdin": "in", "env": map[string]string{"X": "ex"}, "cwd": "/"}, &out)
		if out.Stdout != "in ex /workspace\n" {
			t.Errorf("argv exec stdout %q", out.Stdout)
		}
		toolOK(t, cs, "exec", map[string]any{"name": name, "command": "head -c 5000 /dev/zero | tr '\\0' a", "maxOutputBytes": 100}, &out)
		if len(out.Stdout) != 100 || !out.Truncated {
			t.Errorf("capped exec: %d bytes, truncated %v", len(out.Stdout), out.Truncated)
		}
		toolOK(t, cs, "exec", map[string]any{"name": name, "command": "sleep 30", "timeoutMs": 200}, &out)
		if out.ExitCode != 124 || !out.TimedOut {
			t.Errorf("timed-out exec = %+v", out)
		}
	})

	t.Run("errors are tool errors with the API's messages", func(t *testing.T) {
		wantToolError(t, cs, "get_space", map[string]any{"name": "no-such-space"}, "Space not found")
		wantToolError(t, cs, "exec", map[string]any{"name": name}, "command is required")
		wantToolError(t, cs, "exec", map[string]any{"name": name, "command": "x", "argv": []string{"y"}}, "not both")
		wantToolError(t, cs, "create_space", map[string]any{"name": name}, "Space already exists")
		wantToolError(t, cs, "read_file", map[string]any{"name": name, "path": "../etc/passwd"}, "paths stay inside /workspace")
		wantToolError(t, cs, "exec", map[string]any{"name": name, "command": 5}, "")
		wantToolError(t, cs, "get_space", map[string]any{"name": name, "node": "nowhere"}, "Node not found")
	})

	t.Run("files", func(t *testing.T) {
		bin := make([]byte, 3000)
		for i := range bin {
			bin[i] = byte(i * 7)
		}
		toolOK(t, cs, "make_dir", map[string]any{"name": name, "path": "/data"}, nil)
		var w struct {
			Path string
			Size int64
		}
		toolOK(t, cs, "write_file", map[string]any{"name": name, "path": "data/blob.bin", "contentBase64": base64.StdEncoding.EncodeToString(bin)}, &w)
		if w.Path != "/data/blob.bin" || w.Size != 3000 {
			t.Errorf("write_file = %+v", w)
		}
		var r struct {
			Size, Offset, Length int64
			Truncated            bool
			Encoding             string
			Text                 string
			ContentBase64        string
		}
		toolOK(t, cs, "read_file", map[string]any{"name": name, "path": "/data/blob.bin"}, &r)
		got, _ := base64.StdEncoding.DecodeString(r.ContentBase64)
		if r.Encoding != "base64" || !bytes.Equal(got, bin) || r.Truncated || r.Size != 3000 {
			t.Fatalf("binary round trip: encoding %s, %d bytes, equal %v, truncated %v", r.Encoding, len(got), bytes.Equal(got, bin), r.Truncated)
		}
		toolOK(t, cs, "read_file", map[string]any{"name": name, "path": "/data/blob.bin", "offset": 1000, "length": 500}, &r)
		got, _ = base64.StdEncoding.DecodeString(r.ContentBase64)
		if !bytes.Equal(got, bin[1000:1500]) || !r.Truncated || r.Offset != 1000 || r.Length != 500 {
			t.Fatalf("part of a file: %+v", r)
		}
		text := strings.Repeat("é", 10) // 20 bytes
		toolOK(t, cs, "write_file", map[string]any{"name": name, "path": "/data/t.txt", "text": text}, nil)
		toolOK(t, cs, "read_file", map[string]any{"name": name, "path": "/data/t.txt", "length": 5}, &r)
		if r.Encoding != "text" || r.Text != "éé" || r.Length != 4 || !r.Truncated {
			t.Errorf("text part cut inside a character: %+v", r)
		}
		var ls struct {
			Path    string
			Entries []struct{ Name, Type string }
		}
		toolOK(t, cs, "list_files", map[string]any{"name": name, "path": "/data"}, &ls)
		if ls.Path != "/data" || len(ls.Entries) != 2 {
			t.Errorf("list_files = %+v", ls)
		}
		toolOK(t, cs, "delete_file", map[string]any{"name": name, "path": "/data", "recursive": true}, nil)
		wantToolError(t, cs, "read_file", map[string]any{"name": name, "path": "/data/t.txt"}, "No such file")
	})

	t.Run("read tools", func(t *testing.T) {
		var ls struct {
			Spaces []struct{ Name, Node string }
			Errors []any
		}
		toolOK(t, cs, "list_spaces", nil, &ls)
		if len(ls.Spaces) != 1 || ls.Spaces[0].Name != name || ls.Spaces[0].Node != n.Name {
			t.Errorf("list_spaces = %+v", ls)
		}
		var obs struct {
			Observability struct {
				Stats struct{ MemoryLimitBytes int64 }
			}
		}
		toolOK(t, cs, "observe", map[string]any{"name": name}, &obs)
		if obs.Observability.Stats.MemoryLimitBytes != 128<<20 {
			t.Errorf("observe = %+v", obs)
		}
		var tl struct{ Templates []struct{ Name string } }
		toolOK(t, cs, "list_templates", nil, &tl)
		if len(tl.Templates) == 0 {
			t.Error("no templates")
		}
		var tpl struct{ Name, YAML string }
		toolOK(t, cs, "get_template", map[string]any{"name": tl.Templates[0].Name}, &tpl)
		if !strings.Contains(tpl.YAML, "name:") {
			t.Errorf("get_template = %+v", tpl)
		}
		var nodes struct{ Nodes []struct{ Name string } }
		toolOK(t, cs, "list_nodes", nil, &nodes)
		if len(nodes.Nodes) != 1 || nodes.Nodes[0].Name != n.Name {
			t.Errorf("list_nodes = %+v", nodes)
		}
		var audit struct {
			Events []struct{ Type, Space string }
		}
		toolOK(t, cs, "audit", map[string]any{"space": name, "type": spaces.EventCreate}, &audit)
		if len(audit.Events) == 0 || audit.Events[0].Space != name {
			t.Errorf("audit = %+v", audit)
		}
	})

	t.Run("pause, resume, destroy", func(t *testing.T) {
		var sp struct{ Space struct{ Status string } }
		toolOK(t, cs, "pause_space", map[string]any{"name": name}, nil)
		toolOK(t, cs, "get_space", map[string]any{"name": name}, &sp)
		if sp.Space.Status != "paused" {
			t.Errorf("after pause_space: %s", sp.Space.Status)
		}
		toolOK(t, cs, "resume_space", map[string]any{"name": name}, nil)
		toolOK(t, cs, "destroy_space", map[string]any{"name": name, "removeVolume": true}, nil)
		wantToolError(t, cs, "get_space", map[string]any{"name": name}, "Space not found")
	})
}

// TestMCPCancelKillsCommand: a client that cancels an exec tool call
// ends the command in the space, as a REST client that goes away does.
func TestMCPCancelKillsCommand(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{Namespace: "mcpc"})
	name := newSpace(t, n, "mcpcancel")
	cs := mcpConnect(t, n.URL, n.HTTP, nodetest.Key, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "exec", Arguments: map[string]any{"name": name, "argv": []string{"sleep", "300"}}})
		done <- err
	}()
	running := func() bool {
		top, err := n.Raw().ContainerTop(t.Context(), n.Engine.ContainerName(name), client.ContainerTopOptions{Arguments: []string{"-eo", "pid,args"}})
		if err != nil {
			t.Fatalf("listing the space's processes: %v", err)
		}
		for _, p := range top.Processes {
			if strings.Contains(strings.Join(p, " "), "sleep 300") {
				return true
			}
		}
		return false
	}
	nodetest.WaitUntil(t, "the command to run", running)
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the cancelled call did not return")
	}
	nodetest.WaitUntil(t, "the cancelled command to be killed", func() bool { return !running() })
	// And through the REST API: nothing of it is left.
	if out := execIn(t, n, name, "ps -eo args | grep -c '^sleep 300' || true"); strings.TrimSpace(out.Stdout) != "0" {
		t.Fatalf("sleep processes left: %q", out.Stdout)
	}
}

// TestMCPViewerOnTailnet: a tailnet viewer, known by WhoIs without a key,
// is shown only the tools its grant allows; a destructive tool called
// anyway is refused as a tool error and audited as come through MCP. No
// session outlives its request, so a session header taken from another
// caller changes nothing.
func TestMCPViewerOnTailnet(t *testing.T) {
	ctl := nodetest.StartControl(t)
	n := nodetest.Start(t, nodetest.Options{Tailnet: ctl, Hostname: "mcp-node", Namespace: "mcpv"})
	dev := ctl.Join(t, "viewer-agent")
	nodetest.WaitForPeers(t, n.TS, dev)
	ctl.Grant(t, dev, []*tailnet.Node{n.TS}, spaces.Grant{Role: "viewer"})
	name := newSpace(t, n, "mcpviewed")
	url := "http://" + n.TS.Addr() + ":7777"

	owner := mcpConnect(t, n.URL, n.HTTP, nodetest.Key, nil)
	if owner.ID() != "" {
		t.Errorf("the node handed out session %q: sessions would outlive their requests", owner.ID())
	}
	viewer := mcpConnect(t, url, dev.HTTPClient(), "", nil)
	want := []string{"audit", "get_space", "get_template", "list_checkpoints", "list_nodes", "list_spaces", "list_templates", "observe"}
	if got := toolNames(t, viewer); !slices.Equal(got, want) {
		t.Fatalf("a viewer's tools = %v, want %v", got, want)
	}
	var sp struct{ Space struct{ Name string } }
	toolOK(t, viewer, "get_space", map[string]any{"name": name}, &sp)
	if sp.Space.Name != name {
		t.Fatalf("get_space as a viewer = %+v", sp)
	}
	wantToolError(t, viewer, "destroy_space", map[string]any{"name": name}, "Forbidden")
	ev := lastEvent(t, n, name, spaces.EventDenied)
	if ev.Meta["door"] != "mcp" || ev.Meta["action"] != string(spaces.ActDestroy) || ev.Meta["device"] != "viewer-agent" {
		t.Fatalf("refusal audit = %+v, want door mcp, action destroy, device viewer-agent", ev)
	}
	if _, err := n.Service.Get(t.Context(), spaces.CallerAPIKey(), name); err != nil {
		t.Fatalf("the space is gone: %v", err)
	}

	// A raw call from the viewer's device with a session header of its
	// choosing is still the viewer's.
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"destroy_space","arguments":{"name":"` + name + `"}}}`
	req, _ := http.NewRequest(http.MethodPost, url+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", "session-of-the-owner")
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	res, err := dev.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(got), `"isError":true`) || !strings.Contains(string(got), "Forbidden") {
		t.Fatalf("raw destroy with a session header: %d %s", res.StatusCode, got)
	}
	if _, err := n.Service.Get(t.Context(), spaces.CallerAPIKey(), name); err != nil {
		t.Fatalf("the space is gone: %v", err)
	}
}

// TestMCPAcrossFleet: a tool call that names another node of a fixed
// fleet is made there, as the caller, its progress relayed; the list of
// the whole fleet names each space's node.
func TestMCPAcrossFleet(t *testing.T) {
	b := nodetest.Start(t, nodetest.Options{Hostname: "mcp-b", Namespace: "mcpb"})
	a := nodetest.Start(t, nodetest.Options{Hostname: "mcp-a", Namespace: "mcpa",
		Nodes: []fleet.StaticNode{{Name: "mcp-a", URL: "http://127.0.0.1:1"}, {Name: "mcp-b", URL: b.URL}}})
	if err := a.Fleet.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		progress []string
	)
	cs := mcpConnect(t, a.URL, a.HTTP, nodetest.Key, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progress = append(progress, req.Params.Message)
			mu.Unlock()
		},
	})
	name := nodetest.Name(t, b.Engine, "mcpfleet")
	var created struct {
		Space struct{ Name string }
		Node  string
	}
	toolOK(t, cs, "create_space", map[string]any{"name": name, "memory": "128m", "node": "mcp-b"}, &created)
	if created.Node != "mcp-b" {
		t.Fatalf("create_space on mcp-b = %+v", created)
	}
	if _, err := b.Service.Get(t.Context(), spaces.CallerAPIKey(), name); err != nil {
		t.Fatalf("the space is not on mcp-b: %v", err)
	}
	if ev := lastEvent(t, b, name, spaces.EventCreate); ev.Meta["door"] != "mcp" {
		t.Errorf("create audit on mcp-b = %+v, want door mcp", ev)
	}
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "exec", Arguments: map[string]any{
		"name": name, "node": "mcp-b", "command": "echo far away"}, Meta: mcp.Meta{"progressToken": 9}})
	if err != nil || res.IsError {
		t.Fatalf("exec on mcp-b: %v %s", err, toolText(res))
	}
	if out, _ := json.Marshal(res.StructuredContent); !strings.Contains(string(out), `"stdout":"far away\n"`) {
		t.Fatalf("exec on mcp-b = %s", out)
	}
	// The client hands notifications to its handler apart from answers,
	// so the relayed progress may reach the handler after CallTool
	// returned; the node sent it before the answer (it closes its client
	// to mcp-b, which waits for the relay, before it answers).
	eventually(t, "the progress relayed from mcp-b", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(progress, "far away\n")
	})
	wantToolError(t, cs, "get_space", map[string]any{"name": name}, "Space not found")
	var ls struct {
		Spaces []struct{ Name, Node string }
		Errors []struct{ Node, Error string }
	}
	toolOK(t, cs, "list_spaces", map[string]any{"all": true}, &ls)
	found := slices.ContainsFunc(ls.Spaces, func(s struct{ Name, Node string }) bool { return s.Name == name && s.Node == "mcp-b" })
	if !found {
		t.Errorf("list_spaces all = %+v, want %s on mcp-b", ls, name)
	}
	toolOK(t, cs, "destroy_space", map[string]any{"name": name, "node": "mcp-b", "removeVolume": true}, nil)
	if _, err := b.Service.Get(t.Context(), spaces.CallerAPIKey(), name); err == nil {
		t.Fatal("the space is still on mcp-b")
	}
}

// TestMCPAcrossTailnetFleet: a person's tool call that names another node
// travels there vouched for by the first node; the target decides with the
// person's grants and audits the person, the device, the door and the
// node that vouched.
func TestMCPAcrossTailnetFleet(t *testing.T) {
	ctl := nodetest.StartControl(t)
	n1 := nodetest.Start(t, nodetest.Options{Tailnet: ctl, Hostname: "mcp-t1", Namespace: "mcpt1"})
	n2 := nodetest.Start(t, nodetest.Options{Tailnet: ctl, Hostname: "mcp-t2", Namespace: "mcpt2"})
	alice := ctl.Join(t, "alice-agent")
	nodetest.WaitForPeers(t, n1.TS, n2.TS, alice)
	serving := []*tailnet.Node{n1.TS, n2.TS}
	ctl.Grant(t, n1.TS, serving, spaces.Grant{Role: "node"})
	ctl.Grant(t, n2.TS, serving, spaces.Grant{Role: "node"})
	ctl.Grant(t, alice, serving, spaces.Grant{Role: "operator", Spaces: []string{"t-alice-*"}})
	for _, n := range []*nodetest.Node{n1, n2} {
		if err := n.Fleet.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	cs := mcpConnect(t, "http://"+n1.TS.Addr()+":7777", alice.HTTPClient(), "", nil)
	name := nodetest.Name(t, n2.Engine, "alice")
	var created struct{ Node string }
	toolOK(t, cs, "create_space", map[string]any{"name": name, "memory": "128m", "node": "mcp-t2"}, &created)
	if created.Node != "mcp-t2" {
		t.Fatalf("create_space on mcp-t2 = %+v", created)
	}
	var out struct{ Stdout string }
	toolOK(t, cs, "exec", map[string]any{"name": name, "node": "mcp-t2", "command": "echo hi"}, &out)
	if out.Stdout != "hi\n" {
		t.Fatalf("exec on mcp-t2 = %+v", out)
	}
	ev := lastEvent(t, n2, name, spaces.EventExec)
	if ev.Meta["door"] != "mcp" || ev.Meta["via"] != "mcp-t1" || ev.Meta["device"] != "alice-agent" || !strings.HasPrefix(ev.Actor, "user-") {
		t.Fatalf("exec audit on mcp-t2 = %+v, want alice's login, device alice-agent, via mcp-t1, door mcp", ev)
	}
	// Her grant covers only t-alice-* spaces: the target refuses another.
	other := nodetest.Name(t, n2.Engine, "bob")
	createSpace(t, n2, other, map[string]any{"memory": "128m"})
	wantToolError(t, cs, "exec", map[string]any{"name": other, "node": "mcp-t2", "command": "id"}, "Forbidden")
	if ev := lastEvent(t, n2, other, spaces.EventDenied); ev.Meta["door"] != "mcp" || ev.Meta["via"] != "mcp-t1" {
		t.Fatalf("refusal audit on mcp-t2 = %+v", ev)
	}
}
