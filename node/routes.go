package node

import (
	"net"
	"net/http"
	"strings"
)

// routes registers every route; it reads like the API table of docs/API.md.
func (s *Server) routes() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET /api/system", s.handleSystem)
	api.HandleFunc("GET /api/system/capabilities", s.handleCapabilities)
	api.HandleFunc("GET /api/nodes", s.handleNodes)

	api.HandleFunc("GET /api/templates", s.handleTemplates)
	api.HandleFunc("GET /api/templates/{name}", s.handleTemplate)
	api.HandleFunc("PUT /api/templates", s.handlePutTemplate)
	api.HandleFunc("DELETE /api/templates/{name}", s.handleDeleteTemplate)

	api.HandleFunc("GET /api/spaces", s.handleListSpaces)
	api.HandleFunc("POST /api/spaces", s.handleCreateSpace)
	api.HandleFunc("GET /api/spaces/{name}", s.handleGetSpace)
	api.HandleFunc("DELETE /api/spaces/{name}", s.handleDestroySpace)
	api.HandleFunc("POST /api/spaces/{name}/stop", s.handleStopSpace)
	api.HandleFunc("POST /api/spaces/{name}/start", s.handleStartSpace)
	api.HandleFunc("POST /api/spaces/{name}/exec", s.handleExec)
	api.HandleFunc("GET /api/spaces/{name}/stats", s.handleStats)
	api.HandleFunc("GET /api/spaces/{name}/files", s.handleListFiles)
	api.HandleFunc("GET /api/spaces/{name}/file", s.handleReadFile)
	api.HandleFunc("PUT /api/spaces/{name}/file", s.handleWriteFile)
	api.HandleFunc("DELETE /api/spaces/{name}/file", s.handleDeleteFile)
	api.HandleFunc("POST /api/spaces/{name}/mkdir", s.handleMkdir)
	api.HandleFunc("POST /api/spaces/{name}/git/push", s.handleGitPush)
	api.HandleFunc("GET /api/spaces/{name}/observability", s.handleObservability)
	api.HandleFunc("GET /api/spaces/{name}/terminal", s.handleTerminal)

	api.HandleFunc("GET /api/audit", s.handleAudit)

	root := http.NewServeMux()
	root.HandleFunc("GET /api/health", s.handleHealth)
	root.HandleFunc("GET /{$}", s.handleIndex)
	root.Handle("/api/", s.authenticate(jsonNotFound(api)))

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, errorBody{Error: "Cross-origin request refused"})
	}))
	return s.track(secureHeaders(s.checkHost(cop.Handler(root))))
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

// checkHost refuses, when auth is disabled, requests whose Host is not a
// loopback name or an allowed host: a web page whose name was rebound to
// 127.0.0.1 would otherwise count as same-origin and drive the node.
func (s *Server) checkHost(next http.Handler) http.Handler {
	if !s.cfg.AuthDisabled {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(strings.ToLower(host), "[]")
		ok := host == "localhost" || net.ParseIP(host).IsLoopback()
		for _, a := range s.cfg.AllowedHosts {
			ok = ok || strings.EqualFold(a, host)
		}
		if !ok {
			writeJSON(w, http.StatusForbidden, errorBody{Error: "Host not allowed: with auth disabled the node answers only to loopback names"})
			return
		}
		next.ServeHTTP(w, r)
	})
}
