package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"
)

// MCPOptions are the settings of `clawdspace mcp`.
type MCPOptions struct {
	IO      *IO
	Nodes   targeter
	Version string

	Server string
}

// NewCmdMCP builds `clawdspace mcp`: an MCP server on stdin and stdout
// for agents that start local commands, bridged to a node's /mcp.
func NewCmdMCP(d *Deps, runF func(*MCPOptions) error) *cobra.Command {
	o := &MCPOptions{IO: d.IO, Version: d.Version}
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve MCP on stdin/stdout, bridged to a node's /mcp (for agents that start local commands)",
		Long: "Serve the Model Context Protocol on stdin and stdout, for agents that start MCP servers as local\n" +
			"commands. Every tool call goes to a node's /mcp endpoint with this CLI's key and servers; the\n" +
			"tools take an optional node, so one entry gives the agent the whole fleet. See docs/MCP.md.",
		Example: "  clawdspace mcp\n  clawdspace mcp --server node-2\n" +
			"  claude mcp add clawdspace -- clawdspace mcp",
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Nodes = fl
			if runF != nil {
				return runF(o)
			}
			return mcpRun(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	return cmd
}

// mcpRun connects to the node's /mcp, offers its tools on stdio, and
// passes each call on until stdin ends.
func mcpRun(ctx context.Context, o *MCPOptions) error {
	c, err := o.Nodes.Target(ctx, o.Server)
	if err != nil {
		return err
	}
	b := &mcpBridge{progress: map[string]func(*mcp.ProgressNotificationParams){}}
	if err := b.connect(ctx, c, o.Version); err != nil {
		return err
	}
	defer b.remote.Close()
	srv := mcp.NewServer(&mcp.Implementation{Name: "clawdspace", Title: "Clawdspace (via " + c.label() + ")", Version: o.Version},
		&mcp.ServerOptions{Instructions: b.remote.InitializeResult().Instructions})
	n := 0
	for tool, err := range b.remote.Tools(ctx, nil) {
		if err != nil {
			return fmt.Errorf("listing the tools of %s: %w", c.label(), err)
		}
		if !objectSchema(tool.InputSchema) {
			continue
		}
		srv.AddTool(tool, b.relay(tool.Name))
		n++
	}
	if n == 0 {
		return fmt.Errorf("%s offers no tools to this key", c.label())
	}
	err = srv.Run(ctx, &mcp.IOTransport{Reader: io.NopCloser(o.IO.In), Writer: nopWriteCloser{o.IO.Out}})
	if err != nil && ctx.Err() == nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "EOF") {
		return fmt.Errorf("serving MCP on stdio: %w", err)
	}
	return nil
}

// mcpBridge is one session to a node's /mcp that the stdio server's
// calls share; progress notifications are routed back to each call by a
// token of the bridge's own.
type mcpBridge struct {
	remote *mcp.ClientSession

	mu       sync.Mutex
	next     int
	progress map[string]func(*mcp.ProgressNotificationParams)
}

// connect opens the session to the node of c, with its key.
func (b *mcpBridge) connect(ctx context.Context, c *Client, version string) error {
	base := c.HTTP.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "clawdspace-cli", Version: version}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			tok, _ := r.Params.ProgressToken.(string)
			b.mu.Lock()
			f := b.progress[tok]
			b.mu.Unlock()
			if f != nil {
				f(r.Params)
			}
		},
	})
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:             strings.TrimRight(c.BaseURL, "/") + "/mcp",
		HTTPClient:           &http.Client{Transport: keyTransport{key: c.Key, base: base}},
		DisableStandaloneSSE: true,
	}, nil)
	if err != nil {
		return fmt.Errorf("connecting to %s/mcp: %w", c.BaseURL, err)
	}
	b.remote = cs
	return nil
}

// progressGrace is how long a call's progress relay outlives its answer.
const progressGrace = 2 * time.Second

// relay passes a call on to the node, its progress notifications back to
// the agent, and its cancellation (the call's context) to the node.
func (b *mcpBridge) relay(name string) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		params := &mcp.CallToolParams{Name: name, Arguments: req.Params.Arguments}
		if token := req.Params.GetProgressToken(); token != nil {
			b.mu.Lock()
			b.next++
			own := "relay-" + strconv.Itoa(b.next)
			// The node sends a call's progress before its answer, but the
			// SDK's client hands notifications to their handler apart from
			// the answer: one may reach the handler after CallTool returned.
			// It is still relayed (the relay outlives the call by
			// progressGrace, on a context the answer does not end).
			nctx := context.WithoutCancel(ctx)
			b.progress[own] = func(p *mcp.ProgressNotificationParams) {
				relay := *p
				relay.ProgressToken = token
				_ = req.Session.NotifyProgress(nctx, &relay)
			}
			b.mu.Unlock()
			defer time.AfterFunc(progressGrace, func() {
				b.mu.Lock()
				delete(b.progress, own)
				b.mu.Unlock()
			})
			params.SetProgressToken(own)
		}
		res, err := b.remote.CallTool(ctx, params)
		if err != nil && ctx.Err() == nil {
			// The node did not answer: a tool error the agent can read.
			var r mcp.CallToolResult
			r.SetError(fmt.Errorf("calling %s on the node: %w", name, err))
			return &r, nil
		}
		return res, err
	}
}

// objectSchema reports whether a tool's input schema is a JSON object
// schema, which the local server requires.
func objectSchema(s any) bool {
	b, err := json.Marshal(s)
	if err != nil {
		return false
	}
	var m struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(b, &m) == nil && m.Type == "object"
}

// keyTransport sends the API key with every request.
type keyTransport struct {
	key  string
	base http.RoundTripper
}

func (t keyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if t.key != "" {
		r.Header.Set("Authorization", "Bearer "+t.key)
	}
	r.Header.Set("User-Agent", "clawdspace-cli")
	return t.base.RoundTrip(r)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
