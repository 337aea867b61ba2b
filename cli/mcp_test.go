package cli

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMCPStdio: `clawdspace mcp`, the built binary, is an MCP server on
// stdio that offers the node's tools with the CLI's key and passes calls,
// progress and errors through.
func TestMCPStdio(t *testing.T) {
	e := newCLIEnv(t)
	name := e.space("stdio")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		progress []string
	)
	client := mcp.NewClient(&mcp.Implementation{Name: "stdio-test"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progress = append(progress, r.Params.Message)
			mu.Unlock()
		},
	})
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: e.command(ctx, "mcp")}, nil)
	if err != nil {
		t.Fatalf("starting clawdspace mcp: %v", err)
	}
	defer cs.Close()
	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tool.Name)
	}
	for _, want := range []string{"create_space", "exec", "read_file", "list_nodes"} {
		if !slices.Contains(names, want) {
			t.Errorf("tools through stdio = %v, want %s among them", names, want)
		}
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "exec", Arguments: map[string]any{"name": name, "command": "echo via stdio"},
		Meta: mcp.Meta{"progressToken": "p1"}})
	if err != nil || res.IsError {
		t.Fatalf("exec through stdio: %v %+v", err, res)
	}
	out, _ := json.Marshal(res.StructuredContent)
	if !strings.Contains(string(out), `"stdout":"via stdio\n"`) {
		t.Fatalf("exec through stdio = %s", out)
	}
	// The SDK's client hands a notification to its handler apart from the
	// call's answer (the node sends the progress first): wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := slices.Contains(progress, "via stdio\n")
		seen := slices.Clone(progress)
		mu.Unlock()
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("progress through stdio = %q", seen)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_space", Arguments: map[string]any{"name": "no-such-space"}})
	if err != nil || !res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "Space not found") {
		t.Fatalf("get_space of a missing space through stdio: %v %+v", err, res)
	}
}

// TestMCPStdioWithoutNode: with no node to reach, the command fails at
// once with a message instead of serving nothing.
func TestMCPStdioWithoutNode(t *testing.T) {
	e := newBareEnv(t)
	e.env["CLAWDSPACE_HOSTS"] = "http://127.0.0.1:1"
	e.env["CLAWDSPACE_KEY"] = "k"
	r := e.run(strings.NewReader(""), "mcp")
	if r.Code != ExitFailure || r.Stderr == "" {
		t.Fatalf("clawdspace mcp without a node: %s", r)
	}
}
