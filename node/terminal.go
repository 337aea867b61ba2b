package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
)

const (
	// terminalPingInterval is how often an open terminal pings its client;
	// a client that does not answer within the same time is gone.
	terminalPingInterval = 30 * time.Second
	// terminalReadLimit bounds one client message (a large paste).
	terminalReadLimit = 1 << 20
	// terminalWaitTimeout bounds the wait for a shell's exit code.
	terminalWaitTimeout = 5 * time.Second
)

// handleTerminal serves GET /api/spaces/{name}/terminal: an interactive
// shell over a WebSocket (docs/TERMINAL.md). Everything that can be refused
// is refused with a JSON error before the upgrade: the auth middleware has
// run, then the size, the upgrade itself, the origin and the space are
// checked, and the shell is started.
func (s *Server) handleTerminal(w http.ResponseWriter, r *http.Request) {
	cols, rows, err := terminalSize(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, done, ok := s.beginUpgrade(w, r, "terminal")
	if !ok {
		return
	}
	defer done()
	term, err := s.cfg.Spaces.OpenTerminal(ctx, callerOf(r), r.PathValue("name"), cols, rows)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Accept checks the origin again (OriginPatterns stays empty: same
	// origin only) and answers its own refusals.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		s.log.Debug("terminal upgrade refused", "space", term.Space(), "err", err)
		s.closeTerminal(term)
		return
	}
	s.log.Debug("terminal opened", "space", term.Space(), "actor", callerOf(r).Actor)
	s.serveTerminal(ctx, conn, term)
}

// terminalSize reads the optional cols and rows parameters; 0 means the
// default.
func terminalSize(q url.Values) (cols, rows int, err error) {
	read := func(key string) (int, error) {
		v := q.Get(key)
		if v == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > spaces.MaxTerminalSize {
			return 0, spaces.Errorf(spaces.ErrInvalid, "%s must be a whole number between 1 and %d", key, spaces.MaxTerminalSize)
		}
		return n, nil
	}
	if cols, err = read("cols"); err != nil {
		return 0, 0, err
	}
	rows, err = read("rows")
	return cols, rows, err
}

// beginUpgrade refuses, with a JSON error, what every WebSocket route
// refuses before its upgrade: a request that is not an upgrade (what
// names the route's stream), one from another origin, and any once the
// node is shutting down. On success the stream is counted as one of the
// node's long-lived connections, which shutdown ends and waits for, until
// done is called.
func (s *Server) beginUpgrade(w http.ResponseWriter, r *http.Request, what string) (ctx context.Context, done func(), ok bool) {
	if !isWebSocketUpgrade(r) {
		s.writeError(w, r, spaces.Errorf(spaces.ErrInvalid, "The %s needs a WebSocket upgrade", what))
		return nil, nil, false
	}
	if err := sameOrigin(r); err != nil {
		s.writeError(w, r, err)
		return nil, nil, false
	}
	ctx, done, ok = s.terms.add(r.Context())
	if !ok {
		s.writeError(w, r, spaces.Errorf(spaces.ErrUnavailable, "Node is shutting down"))
		return nil, nil, false
	}
	return ctx, done, true
}

func isWebSocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// sameOrigin refuses a browser page of another site, by the rule that
// websocket.Accept applies too: no Origin, or one whose host is the
// request's. A WebSocket is not covered by the CORS rules, so without it any
// page could open a shell with a key the browser holds.
func sameOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	return spaces.Errorf(spaces.ErrForbidden, "Cross-origin request refused")
}

// terminalEnd is why a terminal session ended.
type terminalEnd int

const (
	endShell    terminalEnd = iota // the shell's output ended
	endClient                      // the client closed or went away
	endPeerDead                    // the client stopped answering pings
	endShutdown                    // the node is stopping
)

// serveTerminal copies between the socket and the shell until one side
// ends, then ends the other: a shell that exits closes the socket normally;
// a client that goes away, a dead peer or the node's shutdown kill the
// shell and everything it started.
func (s *Server) serveTerminal(ctx context.Context, conn *websocket.Conn, term *spaces.TerminalSession) {
	conn.SetReadLimit(terminalReadLimit)
	ctx, cancel := context.WithCancel(ctx)
	ended := make(chan terminalEnd, 3)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); ended <- s.terminalOutput(conn, term) }()
	go func() { defer wg.Done(); ended <- s.terminalInput(conn, term) }()
	go func() { defer wg.Done(); ended <- terminalHeartbeat(ctx, conn) }()

	var why terminalEnd
	select {
	case why = <-ended:
	case <-ctx.Done():
		why = endShutdown
	}
	switch why {
	case endShell:
		wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), terminalWaitTimeout)
		code, err := term.Wait(wctx)
		wcancel()
		s.closeTerminal(term)
		if err != nil {
			s.log.Warn("terminal ended without an exit code", "space", term.Space(), "err", err)
			_ = conn.Close(websocket.StatusInternalError, "Lost the terminal")
		} else {
			_ = conn.Close(websocket.StatusNormalClosure, fmt.Sprintf("Shell exited with code %d", code))
		}
	case endShutdown:
		s.closeTerminal(term)
		_ = conn.Close(websocket.StatusGoingAway, "Node is shutting down")
	default:
		s.closeTerminal(term)
		_ = conn.CloseNow()
	}
	cancel()
	wg.Wait()
	s.log.Debug("terminal closed", "space", term.Space())
}

func (s *Server) closeTerminal(term *spaces.TerminalSession) {
	if err := term.Close(); err != nil {
		s.log.Error("closing terminal", "space", term.Space(), "err", err)
	}
}

// terminalOutput sends the shell's output as binary messages. Writes do not
// take the session's context: cancelling one would drop the connection
// before the close handshake.
func (s *Server) terminalOutput(conn *websocket.Conn, term *spaces.TerminalSession) terminalEnd {
	buf := make([]byte, 32<<10)
	for {
		n, err := term.Read(buf)
		if n > 0 {
			if werr := conn.Write(context.Background(), websocket.MessageBinary, buf[:n]); werr != nil {
				return endClient
			}
		}
		if err != nil {
			return endShell
		}
	}
}

// terminalInput reads client messages: control messages, or keystrokes.
func (s *Server) terminalInput(conn *websocket.Conn, term *spaces.TerminalSession) terminalEnd {
	for {
		typ, data, err := conn.Read(context.Background())
		if err != nil {
			return endClient
		}
		keys := data
		if typ == websocket.MessageText {
			keys = s.terminalText(conn, term, data)
		}
		if len(keys) == 0 {
			continue
		}
		if _, err := term.Write(keys); err != nil {
			return endShell
		}
	}
}

// terminalText acts on a text message and returns the keystrokes it holds:
// those of an input message, none for a resize or ping, and the text itself
// when it is not a control message.
func (s *Server) terminalText(conn *websocket.Conn, term *spaces.TerminalSession, data []byte) (keys []byte) {
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		return data
	}
	var m api.TerminalMessage
	if json.Unmarshal(data, &m) != nil {
		return data
	}
	switch m.Type {
	case "input":
		var in string
		if json.Unmarshal(m.Data, &in) != nil {
			return data
		}
		return []byte(in)
	case "resize":
		var cols, rows int
		if json.Unmarshal(m.Cols, &cols) != nil || json.Unmarshal(m.Rows, &rows) != nil {
			s.log.Debug("terminal resize ignored: cols and rows must be whole numbers", "space", term.Space())
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := term.Resize(ctx, cols, rows); err != nil {
			s.log.Debug("terminal resize failed", "space", term.Space(), "cols", cols, "rows", rows, "err", err)
		}
		return nil
	case "ping":
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = conn.Write(ctx, websocket.MessageText, []byte(`{"type":"pong"}`))
		return nil
	}
	return data
}

// terminalHeartbeat pings the client until ctx ends; a client that does not
// answer in time is dead.
func terminalHeartbeat(ctx context.Context, conn *websocket.Conn) terminalEnd {
	t := time.NewTicker(terminalPingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return endShutdown
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(context.Background(), terminalPingInterval)
		err := conn.Ping(pctx)
		cancel()
		if err != nil {
			return endPeerDead
		}
	}
}

// terminals tracks open terminal sessions: http.Server.Shutdown does not
// wait for hijacked connections, so the node ends them itself.
type terminals struct {
	mu      sync.Mutex
	closed  bool
	next    uint64
	cancels map[uint64]context.CancelFunc
	wg      sync.WaitGroup
}

// add registers a session; its context ends at shutdown. ok is false once
// shutdown began.
func (t *terminals) add(parent context.Context) (ctx context.Context, done func(), ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, nil, false
	}
	if t.cancels == nil {
		t.cancels = make(map[uint64]context.CancelFunc)
	}
	ctx, cancel := context.WithCancel(parent)
	id := t.next
	t.next++
	t.cancels[id] = cancel
	t.wg.Add(1)
	return ctx, func() {
		t.mu.Lock()
		delete(t.cancels, id)
		t.mu.Unlock()
		cancel()
		t.wg.Done()
	}, true
}

// shutdown ends every open session and refuses new ones.
func (t *terminals) shutdown() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for _, cancel := range t.cancels {
		cancel()
	}
}

// wait waits until every session has ended, or ctx ends.
func (t *terminals) wait(ctx context.Context) error {
	ended := make(chan struct{})
	go func() { t.wg.Wait(); close(ended) }()
	select {
	case <-ended:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
