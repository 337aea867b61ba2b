package node

import (
	"net"
	"net/http"
	"slices"
	"strings"
)

// routes registers every route; it reads like the API table of docs/API.md.
func (s *Server) routes() http.Handler {
	api := http.NewServeMux()
	// Every handler passes the caller to the Service, which decides and
	// audits (spaces/authorize.go); routes name no actions.
	handle := func(pattern string, h http.HandlerFunc) { s.route(api, pattern, h) }
	handle("GET /api/system", s.handleSystem)
	handle("GET /api/system/capabilities", s.handleCapabilities)
	handle("GET /api/nodes", s.handleNodes)

	handle("GET /api/templates", s.handleTemplates)
	handle("GET /api/templates/{name}", s.handleTemplate)
	handle("PUT /api/templates", s.handlePutTemplate)
	handle("DELETE /api/templates/{name}", s.handleDeleteTemplate)

	// The list shows only the spaces the caller may read; a create is
	// decided on the node that makes the space.
	handle("GET /api/spaces", s.handleListSpaces)
	handle("POST /api/spaces", s.handleCreateSpace)
	handle("GET /api/spaces/{name}", s.handleGetSpace)
	handle("DELETE /api/spaces/{name}", s.handleDestroySpace)
	handle("POST /api/spaces/{name}/stop", s.handleStopSpace)
	handle("POST /api/spaces/{name}/start", s.handleStartSpace)
	handle("POST /api/spaces/{name}/exec", s.handleExec)
	handle("GET /api/spaces/{name}/stats", s.handleStats)
	handle("GET /api/spaces/{name}/files", s.handleListFiles)
	handle("GET /api/spaces/{name}/file", s.handleReadFile)
	handle("PUT /api/spaces/{name}/file", s.handleWriteFile)
	handle("DELETE /api/spaces/{name}/file", s.handleDeleteFile)
	handle("POST /api/spaces/{name}/mkdir", s.handleMkdir)
	handle("POST /api/spaces/{name}/git/push", s.handleGitPush)
	handle("GET /api/spaces/{name}/observability", s.handleObservability)
	handle("GET /api/spaces/{name}/terminal", s.handleTerminal)
	handle("GET /api/spaces/{name}/ports", s.handlePorts)
	handle("POST /api/spaces/{name}/ports", s.handleOpenForward)
	handle("DELETE /api/spaces/{name}/ports/{port}", s.handleCloseForward)
	handle("GET /api/spaces/{name}/ports/{port}/connect", s.handlePortConnect)
	handle("GET /api/spaces/{name}/checkpoints", s.handleListCheckpoints)
	handle("POST /api/spaces/{name}/checkpoints", s.handleCreateCheckpoint)
	handle("DELETE /api/spaces/{name}/checkpoints/{checkpoint}", s.handleDeleteCheckpoint)
	handle("POST /api/spaces/{name}/checkpoints/{checkpoint}/restore", s.handleRestoreCheckpoint)
	handle("GET /api/spaces/{name}/export", s.handleExport)
	handle("POST /api/spaces/import", s.handleImport)

	// SSH carried over a WebSocket; the SSH user names the space, and the
	// SSH door asks the Service (docs/SSH.md).
	handle("GET /api/ssh", s.handleSSH)

	// The audit of one space needs read on it; the whole log needs admin.
	handle("GET /api/audit", s.handleAudit)

	// Any identified caller may read the API's description.
	handle("GET /api/openapi.json", s.handleOpenAPI)

	root := http.NewServeMux()
	s.route(root, "GET /api/health", http.HandlerFunc(s.handleHealth))
	s.dashboardRoutes(root)
	root.Handle("/api/", s.authenticate(s.forward(jsonNotFound(api))))
	// The MCP door: the same identity, grants and audit as /api/, its
	// tools named in node/mcp_tools.go (docs/MCP.md).
	root.Handle("/mcp", s.authenticate(s.mcpHandler()))

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, errorBody{Error: "Cross-origin request refused"})
	}))
	return s.track(s.bodyDeadline(secureHeaders(s.checkHost(cop.Handler(root)))))
}

// route registers an API route on mux and records its pattern in the
// route table that the OpenAPI test compares with docs (node/openapi.json).
func (s *Server) route(mux *http.ServeMux, pattern string, h http.Handler) {
	s.apiRoutes = append(s.apiRoutes, pattern)
	mux.Handle(pattern, h)
}

// jsonNotFound answers unknown routes and wrong methods with JSON errors, as
// every client of the contract expects.
func jsonNotFound(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &statusProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.header.Get("Allow"))
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "Method not allowed"})
			return
		}
		writeJSON(w, http.StatusNotFound, errorBody{Error: "Not found"})
	})
}

// statusProbe records the status a fallback handler would send.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}
func (p *statusProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}

func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// track counts requests in flight, so shutdown can wait for them.
func (s *Server) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Done()
		next.ServeHTTP(w, r)
	})
}

// checkHost guards against DNS rebinding: a web page whose name was
// pointed at the node would otherwise count as same-origin and drive it
// with the visitor's credentials. On the tailnet, where the visitor's
// device is the credential, the Host must be one of the node's own
// tailnet names or addresses (or an allowed host); on loopback with auth
// disabled, a loopback name (or an allowed host).
func (s *Server) checkHost(next http.Handler) http.Handler {
	// Names the tailnet listener answers to, joined once.
	tailnetHosts := append(slices.Clone(s.cfg.TailnetHosts), s.cfg.AllowedHosts...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tailnet := viaTailnet(r)
		if !tailnet && !s.cfg.AuthDisabled {
			next.ServeHTTP(w, r)
			return
		}
		host := strings.TrimSuffix(strings.Trim(strings.ToLower(remoteIP(r.Host)), "[]"), ".")
		is := func(a string) bool { return strings.EqualFold(a, host) }
		switch {
		case tailnet && !slices.ContainsFunc(tailnetHosts, is):
			writeJSON(w, http.StatusForbidden, errorBody{Error: "Host not allowed: on the tailnet the node answers only to its own names and addresses"})
			return
		case !tailnet && host != "localhost" && !net.ParseIP(host).IsLoopback() && !slices.ContainsFunc(s.cfg.AllowedHosts, is):
			writeJSON(w, http.StatusForbidden, errorBody{Error: "Host not allowed: with auth disabled the node answers only to loopback names"})
			return
		}
		next.ServeHTTP(w, r)
	})
}
