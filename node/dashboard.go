package node

import (
	"fmt"
	"html"
	"net/http"
)

// dashboardRoutes registers the pages people open in a browser.
func (s *Server) dashboardRoutes(root *http.ServeMux) {
	root.HandleFunc("GET /{$}", s.handleIndex)
}

// handleIndex answers browsers at the node's root until the dashboard is
// served there. It needs no key and says nothing about the spaces.
func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	fmt.Fprintf(w, `<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Clawdspace node</title><body style="font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem">
<h1>Clawdspace node</h1><p>This node is running (version %s). Its REST API is at <code>/api</code>;
see <code>docs/API.md</code>. The web dashboard is not part of this version yet.</p></body></html>
`, html.EscapeString(s.cfg.Version))
}
