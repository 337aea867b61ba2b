package node

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
)

// noTailnetNote is what a node without a tailnet says about forwards: a
// port on the node's own address would be reachable without the API key.
const noTailnetNote = "This node is not on a tailnet, so it serves no forwarded ports (a port on its own address would bypass the API key). " +
	"Reach a space's port through the API tunnel instead: clawdspace forward SPACE PORT[:LOCALPORT]"

// tunnelPingInterval is how often an open tunnel pings its client; one
// that does not answer within the same time is gone, and its connection
// to the space is closed.
const tunnelPingInterval = 30 * time.Second

// handlePorts serves GET /api/spaces/{name}/ports: the ports the space
// listens on and its forwards.
func (s *Server) handlePorts(w http.ResponseWriter, r *http.Request) {
	sp, err := s.cfg.Spaces.Ports(r.Context(), callerOf(r), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := api.Ports{Detected: sp.Detected, Listening: []api.ListeningPort{}, Forwards: []api.Forward{}, Served: s.cfg.Ports != nil}
	if !out.Served {
		out.Note = noTailnetNote
	}
	forwarded := map[uint16]uint16{}
	for _, f := range sp.Forwards {
		out.Forwards = append(out.Forwards, s.forwardView(f))
		forwarded[f.Port] = f.NodePort
	}
	for _, l := range sp.Listening {
		v := api.ListeningPortFrom(l)
		v.Forwarded = forwarded[l.Port]
		out.Listening = append(out.Listening, v)
	}
	writeJSON(w, http.StatusOK, out)
}

// forwardView is f with its URL and the port door's state.
func (s *Server) forwardView(f spaces.Forward) api.Forward {
	v := api.ForwardFrom(f)
	if s.cfg.Ports == nil {
		v.State = api.ForwardUnserved
		return v
	}
	v.State, v.Error = s.cfg.Ports.ForwardState(f)
	if host := s.cfg.TailnetName; host != "" {
		scheme := "http"
		if f.HTTPS {
			scheme = "https"
		}
		v.URL = scheme + "://" + net.JoinHostPort(host, strconv.Itoa(int(f.NodePort))) + "/"
	}
	return v
}

// handleOpenForward serves POST /api/spaces/{name}/ports: 201 with a new
// forward, 200 with the one the port already has.
func (s *Server) handleOpenForward(w http.ResponseWriter, r *http.Request) {
	var body api.OpenForward
	if err := s.readJSON(w, r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	req, err := body.Domain()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.canServeForward(r.Context(), callerOf(r), r.PathValue("name"), req); err != nil {
		s.writeError(w, r, err)
		return
	}
	f, created, err := s.cfg.Spaces.OpenForward(r.Context(), callerOf(r), r.PathValue("name"), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, api.ForwardAnswer{Forward: s.forwardView(f)})
}

// canServeForward refuses a forward this node cannot serve (no tailnet;
// HTTPS without the tailnet's certificates), once the Service has said
// the caller may forward the space's ports and the space exists: a
// caller who may not learns nothing of the node.
func (s *Server) canServeForward(ctx context.Context, c spaces.Caller, name string, req spaces.ForwardRequest) error {
	if s.cfg.Ports != nil && !req.HTTPS {
		return nil
	}
	if err := s.cfg.Spaces.Authorize(ctx, c, name, spaces.ActPorts); err != nil {
		return err
	}
	if _, err := s.cfg.Spaces.Get(ctx, c, name); err != nil {
		return err
	}
	if s.cfg.Ports == nil {
		return spaces.Errorf(spaces.ErrConflict, "%s", noTailnetNote)
	}
	ok, err := s.cfg.Ports.CertsAvailable(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return spaces.Errorf(spaces.ErrConflict, "This node's tailnet issues no HTTPS certificates (turn on HTTPS in the tailnet's admin console), so the port cannot be served with HTTPS; forward it without https (the tailnet already encrypts it)")
	}
	return nil
}

// handleCloseForward serves DELETE /api/spaces/{name}/ports/{port}: the
// port door stops listening and ends the forward's connections.
func (s *Server) handleCloseForward(w http.ResponseWriter, r *http.Request) {
	port, err := api.ParsePort(r.PathValue("port"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.cfg.Spaces.CloseForward(r.Context(), callerOf(r), r.PathValue("name"), port); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handlePortConnect serves GET /api/spaces/{name}/ports/{port}/connect:
// one TCP connection to the space's port over a WebSocket (the port
// tunnel, api.Tunnel). Everything that can be refused is refused with a
// JSON error before the upgrade, the connection to the port included.
func (s *Server) handlePortConnect(w http.ResponseWriter, r *http.Request) {
	port, err := api.ParsePort(r.PathValue("port"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", api.TCPUpgrade) {
		s.servePortTCP(w, r, port)
		return
	}
	ctx, done, ok := s.beginUpgrade(w, r, "port tunnel")
	if !ok {
		return
	}
	defer done()
	pc, err := s.cfg.Spaces.ConnectPort(ctx, callerOf(r), r.PathValue("name"), port, 0)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		s.log.Debug("port tunnel upgrade refused", "space", r.PathValue("name"), "port", port, "err", err)
		s.closePortConn(pc)
		return
	}
	s.log.Debug("port tunnel opened", "space", r.PathValue("name"), "port", port, "actor", callerOf(r).Actor)
	t := api.NewTunnel(ws)
	sc := &stallCounted{PortConn: pc}
	piped := make(chan struct{})
	go func() {
		defer close(piped)
		pipe(t, sc)
	}()
	why := tunnelWatch(ctx, ws, piped, &sc.writing)
	switch why {
	case endShutdown:
		_ = t.CloseWith(websocket.StatusGoingAway, "Node is shutting down")
	case endPeerDead:
		_ = ws.CloseNow()
	}
	<-piped
	s.closePortConn(pc)
	s.log.Debug("port tunnel closed", "space", r.PathValue("name"), "port", port)
}

// stallCounted is a port connection that says when a write to the space
// is under way. The tunnel's WebSocket is read (and its pongs seen) only
// by the copy into the space, so while the space does not read, a ping
// could not be answered however alive the client is.
type stallCounted struct {
	*spaces.PortConn
	writing atomic.Bool
}

func (c *stallCounted) Write(p []byte) (int, error) {
	c.writing.Store(true)
	defer c.writing.Store(false)
	return c.PortConn.Write(p)
}

// tunnelWatch pings the tunnel's client until the tunnel ends, the client
// stops answering or the node shuts down. No ping is sent while a write
// to the space is under way (writing): its answer could not be read.
func tunnelWatch(ctx context.Context, ws *websocket.Conn, piped <-chan struct{}, writing *atomic.Bool) terminalEnd {
	t := time.NewTicker(tunnelPingInterval)
	defer t.Stop()
	for {
		select {
		case <-piped:
			return endClient
		case <-ctx.Done():
			return endShutdown
		case <-t.C:
		}
		if writing.Load() {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, tunnelPingInterval)
		err := ws.Ping(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			select {
			case <-piped:
				return endClient
			default:
				return endPeerDead
			}
		}
	}
}

func (s *Server) closePortConn(pc *spaces.PortConn) {
	if err := pc.Close(); err != nil {
		s.log.Error("closing a port connection", "err", err)
	}
}

// servePortTCP serves the port tunnel's plain form (Upgrade:
// clawdspace-tcp): after the 101 answer the HTTP connection itself is the
// TCP connection to the space's port, with half-close, and the bytes move
// between the two sockets in the kernel (splice) where both are TCP.
// Refusals come before the upgrade, as JSON errors, as for the WebSocket
// form.
func (s *Server) servePortTCP(w http.ResponseWriter, r *http.Request, port uint16) {
	if err := sameOrigin(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, done, ok := s.terms.add(r.Context())
	if !ok {
		s.writeError(w, r, spaces.Errorf(spaces.ErrUnavailable, "Node is shutting down"))
		return
	}
	defer done()
	pc, err := s.cfg.Spaces.ConnectPort(ctx, callerOf(r), r.PathValue("name"), port, 0)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer s.closePortConn(pc)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.writeError(w, r, spaces.Errorf(spaces.ErrInvalid, "The port tunnel's plain form needs HTTP/1.1"))
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+api.TCPUpgrade+"\r\n\r\n"); err != nil {
		return
	}
	s.log.Debug("port tunnel opened", "space", r.PathValue("name"), "port", port, "actor", callerOf(r).Actor, "form", "tcp")
	// What the client sent after its request is already read.
	var client io.Reader = conn
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		client = io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close(); pc.Close() })
	defer stop()
	space := pc.Raw()
	moved := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(space, client)
		_ = asHalfConn(space).CloseWrite()
		moved <- n
	}()
	out, _ := io.Copy(conn, space)
	_ = asHalfConn(conn).CloseWrite()
	in := <-moved
	pc.Moved(in, out)
}
