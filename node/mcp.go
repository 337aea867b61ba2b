package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/adam91holt/clawdspace/spaces"
)

// The MCP door: /mcp speaks the Model Context Protocol (Streamable HTTP)
// behind the same middleware as /api/ (authenticate, the cross-origin
// check, the Host check). Its tools call the same Service methods as the
// REST handlers, with the caller marked as come through DoorMCP, so grants
// and audit rows are the REST API's.
//
// The handler is stateless: every POST is a session of its own, made for
// the caller that authenticate resolved for that request. No session
// outlives its request, so no request can act with another's identity
// (an Mcp-Session-Id header is ignored), and a tool's output still streams
// as progress notifications on the answer to its own call.

// mcpMaxBody bounds one MCP request: a write_file carries its content as
// base64 in JSON, held in memory.
const (
	mcpMaxFileBytes = 32 << 20
	mcpMaxBody      = mcpMaxFileBytes*4/3 + 1<<20
)

// mcpRequestKey holds the HTTP request a tool call came in, for its
// caller, credentials to vouch with, and its end.
type mcpRequestKey struct{}

// mcpHandler builds the /mcp handler: one MCP server whose tools take the
// caller from each request.
func (s *Server) mcpHandler() http.Handler {
	srv := mcp.NewServer(&mcp.Implementation{Name: "clawdspace", Title: "Clawdspace", Version: s.cfg.Version}, &mcp.ServerOptions{
		Instructions: "Clawdspace runs sandboxes (spaces: containers with a persistent /workspace) on a fleet of nodes. " +
			"Create a space, run commands in it with exec, read and write its files. Every space tool takes an optional node " +
			"to act on another node of the fleet (list_nodes names them).",
		Logger: s.log,
	})
	tools := s.addMCPTools(srv)
	// tools/list shows only what the caller's grants allow; calling a tool
	// not shown is still decided (and audited) by the Service.
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			res, err := next(ctx, method, req)
			if method != "tools/list" || err != nil {
				return res, err
			}
			list, ok := res.(*mcp.ListToolsResult)
			if !ok {
				return res, err
			}
			c := mcpCaller(ctx)
			shown := *list
			shown.Tools = slices.DeleteFunc(slices.Clone(list.Tools), func(t *mcp.Tool) bool {
				act, known := tools[t.Name]
				return !known || !c.Can(act, "")
			})
			return &shown, nil
		}
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{
		Stateless: true,
		Logger:    s.log,
		// The node's own checks apply (checkHost with auth disabled and on
		// the tailnet, the key otherwise), as on the REST API; the SDK's
		// would refuse a local reverse proxy that the API serves.
		DisableLocalhostProtection:   true,
		MaxRequestBodyBytes:          mcpMaxBody,
		PropagateRequestCancellation: true,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = withCaller(r, callerOf(r).Through(spaces.DoorMCP))
		r = r.WithContext(context.WithValue(r.Context(), mcpRequestKey{}, r))
		h.ServeHTTP(w, r)
	})
}

// mcpRequest is the HTTP request a tool call came in.
func mcpRequest(ctx context.Context) *http.Request {
	r, _ := ctx.Value(mcpRequestKey{}).(*http.Request)
	return r
}

// mcpCaller is the caller of a tool call (nobody outside a request).
func mcpCaller(ctx context.Context) spaces.Caller {
	if r := mcpRequest(ctx); r != nil {
		return callerOf(r)
	}
	return spaces.Caller{}
}

// targeted is a tool's input that may name another node.
type targeted interface{ target() string }

// NodeArg is the optional node of every space tool.
type NodeArg struct {
	Node string `json:"node,omitempty" jsonschema:"the fleet node that holds the space (see list_nodes); empty means the node you are connected to"`
}

func (n NodeArg) target() string { return n.Node }

// mcpHandlerFunc is a tool's work on this node: the Service call and the
// shaping of its answer.
type mcpHandlerFunc[In, Out any] func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in In) (Out, error)

// addTool registers a tool shown to callers who may do act to some space
// (or to the node). The wrapper ends the work when the request ends,
// forwards a call that names another node, and turns errors into tool
// errors with the REST API's messages.
func addTool[In, Out any](s *Server, srv *mcp.Server, acts map[string]spaces.Action, act spaces.Action, t *mcp.Tool, h mcpHandlerFunc[In, Out]) {
	acts[t.Name] = act
	mcp.AddTool(srv, t, func(ctx context.Context, req *mcp.CallToolRequest, in In) (_ *mcp.CallToolResult, _ Out, err error) {
		var zero Out
		// The SDK runs handlers on goroutines of its own, where a panic
		// would end the node, not just the request as net/http does.
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("tool call panicked", "tool", t.Name, "panic", p, "stack", string(debug.Stack()))
				err = toolErr{"Internal error"}
			}
		}()
		hr := mcpRequest(ctx)
		if hr == nil {
			return nil, zero, errors.New("no request")
		}
		// The SDK keeps a handler running after its HTTP request ends on
		// older protocol versions; a stateless answer cannot be delivered
		// then, so the work (a command, say) is ended as the REST API
		// ends it.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(hr.Context(), cancel)
		defer stop()
		c := callerOf(hr)
		if tg, ok := any(in).(targeted); ok && tg.target() != "" && !s.isSelf(tg.target()) && c.Via == "" {
			out, err := forwardAs[Out](ctx, s, req, tg.target())
			if err != nil {
				return nil, zero, s.toolError(ctx, hr, err)
			}
			return nil, out, nil
		}
		out, err := h(ctx, c, req, in)
		if err != nil {
			return nil, zero, s.toolError(ctx, hr, err)
		}
		return nil, out, nil
	})
}

// forwardAs makes the tool call req on the node called name and decodes
// its answer.
func forwardAs[Out any](ctx context.Context, s *Server, req *mcp.CallToolRequest, name string) (Out, error) {
	var out Out
	data, err := s.forwardTool(ctx, mcpRequest(ctx), req, name)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return out, fmt.Errorf("reading the answer of node %s: %w", name, err)
	}
	return out, nil
}

// toolError is the message the REST API gives for err, logged as the REST
// API logs it.
func (s *Server) toolError(ctx context.Context, r *http.Request, err error) error {
	var te toolErr
	if errors.As(err, &te) {
		return te
	}
	status, msg := s.classify(err)
	switch {
	case ctx.Err() != nil:
		s.log.Debug("tool call ended: the client went away", "err", err)
	case status >= 500:
		s.log.Error("tool call failed", "path", r.URL.Path, "err", err)
	default:
		s.log.Debug("tool call refused", "status", status, "err", err)
	}
	return toolErr{msg}
}

// toolErr is a message to give the client as it is.
type toolErr struct{ msg string }

func (e toolErr) Error() string { return e.msg }

// forwardTool makes the same tool call on the node called name, as the
// caller (vouched for as the REST API's forwarding does), relays its
// progress notifications, and returns its structured answer.
func (s *Server) forwardTool(ctx context.Context, r *http.Request, req *mcp.CallToolRequest, name string) (json.RawMessage, error) {
	n, err := s.onlineNode(ctx, name)
	if err != nil {
		return nil, err
	}
	c := callerOf(r)
	if err := s.cfg.Fleet.CanVouch(c); err != nil {
		return nil, err
	}
	var args map[string]any
	if err := json.Unmarshal(req.Params.Arguments, &args); err != nil {
		return nil, spaces.Errorf(spaces.ErrInvalid, "arguments must be a JSON object")
	}
	delete(args, "node")
	creds := http.Header{}
	vouch(creds, c, s.requestKey(r))
	token := req.Params.GetProgressToken()
	client := mcp.NewClient(&mcp.Implementation{Name: "clawdspace-node", Version: s.cfg.Version}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(pctx context.Context, p *mcp.ProgressNotificationClientRequest) {
			if token == nil {
				return
			}
			relay := *p.Params
			relay.ProgressToken = token
			_ = req.Session.NotifyProgress(ctx, &relay)
		},
	})
	transport := &mcp.StreamableClientTransport{
		Endpoint:             n.URL + "/mcp",
		HTTPClient:           &http.Client{Transport: headerTransport{base: s.cfg.Fleet.Transport(), h: creds}},
		DisableStandaloneSSE: true,
	}
	s.log.Debug("forwarding a tool call", "node", n.Name, "tool", req.Params.Name, "actor", c.Actor)
	cs, err := client.Connect(ctx, transport, nil)
	if err != nil {
		return nil, fmt.Errorf("connecting to node %s: %w", n.Name, errNodeUnreachable(n.Name, err))
	}
	defer cs.Close()
	params := &mcp.CallToolParams{Name: req.Params.Name, Arguments: args}
	if token != nil {
		// The client's token goes back to the client only: it may be any
		// JSON value, which SetProgressToken would not take.
		params.SetProgressToken("relay")
	}
	res, err := cs.CallTool(ctx, params)
	if err != nil {
		return nil, errNodeUnreachable(n.Name, err)
	}
	if res.IsError {
		msg := "Node " + n.Name + " refused the call"
		for _, ct := range res.Content {
			if tc, ok := ct.(*mcp.TextContent); ok {
				msg = tc.Text
				break
			}
		}
		return nil, toolErr{msg}
	}
	data, err := json.Marshal(res.StructuredContent)
	if err != nil {
		return nil, fmt.Errorf("reading the answer of node %s: %w", n.Name, err)
	}
	return data, nil
}

// errNodeUnreachable is the REST API's answer when a node did not answer.
func errNodeUnreachable(name string, err error) error {
	return fmt.Errorf("%w: %w", spaces.Errorf(spaces.ErrUnavailable, "Node %s did not answer", name), err)
}

// headerTransport adds fixed headers to every request.
type headerTransport struct {
	base http.RoundTripper
	h    http.Header
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.h {
		r.Header[k] = v
	}
	return t.base.RoundTrip(r)
}
