package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
)

// nodeParam is the node a request names with ?node= or the
// Clawdspace-Node header.
func nodeParam(r *http.Request) string {
	if n := r.URL.Query().Get("node"); n != "" {
		return n
	}
	return r.Header.Get(headerNode)
}

// forward sends an API request that names another node to that node, over
// the tailnet, streaming both ways (WebSocket upgrades included). The
// target decides what the caller may do.
func (s *Server) forward(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := nodeParam(r)
		if target == "" || s.isSelf(target) {
			next.ServeHTTP(w, r)
			return
		}
		s.proxyTo(w, r, target)
	})
}

// proxyTo forwards r to the node called name.
func (s *Server) proxyTo(w http.ResponseWriter, r *http.Request, name string) {
	n, err := s.onlineNode(r.Context(), name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	c := callerOf(r)
	key := s.requestKey(r)
	if err := s.cfg.Fleet.CanVouch(c); err != nil {
		s.writeError(w, r, err)
		return
	}
	// The browser's origin is checked here, where the browser connected;
	// the target sees a request from this node, without browser headers.
	if r.Header.Get("Upgrade") != "" {
		if err := sameOrigin(r); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	target, err := url.Parse(n.URL)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("node %s has a bad URL %q: %w", n.Name, n.URL, err))
		return
	}
	s.log.Debug("forwarding", "node", n.Name, "method", r.Method, "path", r.URL.Path, "actor", c.Actor)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			q := pr.In.URL.Query()
			q.Del("node")
			q.Del("key")
			pr.Out.URL.RawQuery = q.Encode()
			stripBrowserHeaders(pr.Out.Header)
			vouch(pr.Out.Header, c, key)
		},
		Transport:     s.cfg.Fleet.Transport(),
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Warn("forwarding failed", "node", n.Name, "path", r.URL.Path, "err", err)
			writeJSON(w, http.StatusBadGateway, api.Error{Error: "Node " + n.Name + " did not answer"})
		},
	}
	proxy.ServeHTTP(w, r)
}

// onlineNode returns the fleet node called name, when it is online and
// trusted.
func (s *Server) onlineNode(ctx context.Context, name string) (spaces.NodeHealth, error) {
	if s.cfg.Fleet == nil {
		return spaces.NodeHealth{}, spaces.Errorf(spaces.ErrNotFound, "Node not found: %s (this node is not part of a fleet)", name)
	}
	return s.cfg.Fleet.Online(ctx, name)
}

// vouch adds the credentials of c to a request for another node.
func vouch(h http.Header, c spaces.Caller, key string) {
	if c.Kind == spaces.KindAPIKey {
		h.Set("Authorization", "Bearer "+key)
		return
	}
	h.Set(headerForwardedFor, c.Addr)
}

// stripBrowserHeaders removes what must not travel to another node: the
// caller's own credentials and claims, and browser headers checked here.
func stripBrowserHeaders(h http.Header) {
	for _, k := range []string{"Authorization", "Cookie", "Origin", "Referer", headerNode, headerForwardedFor,
		"Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-User"} {
		h.Del(k)
	}
}

// listFleetSpaces answers GET /api/spaces?all=true: the spaces of every
// online node that the caller may see, each with its node's name.
func (s *Server) listFleetSpaces(w http.ResponseWriter, r *http.Request, local []api.Space) {
	out, err := s.fleetSpaces(r.Context(), callerOf(r), s.requestKey(r), local, true)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// fleetSpaces is local (this node's spaces that c may read) with this
// node's name and, with all, the spaces of every other online node of the
// fleet as c sees them there, and the nodes that did not answer. The REST
// list and the MCP tool both answer with it.
func (s *Server) fleetSpaces(ctx context.Context, c spaces.Caller, key string, local []api.Space, all bool) (api.FleetSpaceList, error) {
	out := api.FleetSpaceList{Spaces: make([]api.FleetSpace, 0, len(local)), Errors: []api.NodeError{}}
	for _, sp := range local {
		out.Spaces = append(out.Spaces, api.FleetSpace{Space: sp, Node: s.selfName()})
	}
	if !all || s.cfg.Fleet == nil {
		return out, nil
	}
	nodes, _, err := s.cfg.Fleet.Nodes(ctx)
	if err != nil || len(nodes) == 0 {
		return out, err
	}
	if err := s.cfg.Fleet.CanVouch(c); err != nil {
		return out, err
	}
	var mu sync.Mutex
	s.cfg.Fleet.EachOnline(ctx, nodes, func(n spaces.NodeHealth) {
		list, err := s.remoteSpaces(ctx, n, c, key)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			out.Errors = append(out.Errors, api.NodeError{Node: n.Name, Error: err.Error()})
			return
		}
		for _, sp := range list {
			out.Spaces = append(out.Spaces, api.FleetSpace{Space: sp, Node: n.Name})
		}
	})
	return out, nil
}

// DefaultFleetListTimeout is the default of Config.FleetListTimeout.
const DefaultFleetListTimeout = 15 * time.Second

// remoteSpaces lists the spaces of another node as c, within the fleet
// list timeout.
func (s *Server) remoteSpaces(ctx context.Context, n spaces.NodeHealth, c spaces.Caller, key string) ([]api.Space, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FleetListTimeout)
	defer cancel()
	var v api.SpaceList
	if err := s.callNode(ctx, n, c, key, http.MethodGet, "/api/spaces", nil, &v); err != nil {
		return nil, err
	}
	return v.Spaces, nil
}

// callNode sends one API request to another node, which the caller has
// checked is trusted, as c and decodes its answer into out.
func (s *Server) callNode(ctx context.Context, n spaces.NodeHealth, c spaces.Caller, key, method, path string, body []byte, out any) error {
	creds := http.Header{}
	vouch(creds, c, key)
	return s.cfg.Fleet.Call(ctx, n, creds, method, path, body, out)
}

// place picks the node for a space made with "node":"auto": the fleet
// decides; a node alone takes the space when it can.
func (s *Server) place(ctx context.Context, gpu bool) (string, error) {
	self := s.selfHealth()
	if s.cfg.Fleet != nil {
		return s.cfg.Fleet.Place(ctx, self, gpu)
	}
	if gpu && !self.Capabilities.GPU {
		return "", spaces.Errorf(spaces.ErrConflict, "No online node has a GPU")
	}
	return self.Name, nil
}

// forwardCreate sends a create to the node called name, with the body's
// node set to that name so the target makes the space itself.
func (s *Server) forwardCreate(w http.ResponseWriter, r *http.Request, body []byte, name string) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		s.writeError(w, r, spaces.Errorf(spaces.ErrInvalid, "invalid JSON body"))
		return
	}
	m["node"], _ = json.Marshal(name)
	nb, err := json.Marshal(m)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(nb))
	r2.ContentLength = int64(len(nb))
	r2.Header.Set("Content-Length", strconv.Itoa(len(nb)))
	s.proxyTo(w, r2, name)
}
