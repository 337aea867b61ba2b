package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/spf13/cobra"

	"github.com/adam91holt/clawdspace/api"
)

// ForwardOptions are the settings of `clawdspace forward`.
type ForwardOptions struct {
	IO     *IO
	Spaces spaceFinder

	Name   string
	Pairs  []PortPair
	Server string
	// Ready, when set, is called with the listeners once they all listen
	// (tests).
	Ready func([]net.Listener)
}

// PortPair is a space's port and the local port it is reached at.
type PortPair struct {
	Port  uint16
	Local uint16
}

// NewCmdForward builds `clawdspace forward`.
func NewCmdForward(d *Deps, runF func(*ForwardOptions) error) *cobra.Command {
	o := &ForwardOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:   "forward NAME PORT[:LOCALPORT]...",
		Short: "Reach a space's ports on this computer's 127.0.0.1 through the API",
		Long: `Listen on 127.0.0.1 and carry each connection to the space's port over the node's
API (an authenticated WebSocket, like kubectl port-forward), so a web app, a database
or a debugger in a space is reached from this computer with the CLI's key, on the
tailnet or not. LOCALPORT defaults to PORT; 0 picks a free port (printed). The space's
port is reached as seen inside the space: a server bound to its 127.0.0.1 works too.
Runs until interrupted (Ctrl-C).`,
		Example: "  clawdspace forward dev 3000\n  clawdspace forward dev 3000:8080 5432:0",
		Args:    minArgs("NAME", "PORT[:LOCALPORT]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			for _, a := range args[1:] {
				p, err := parsePortPair(a)
				if err != nil {
					return err
				}
				o.Pairs = append(o.Pairs, p)
			}
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Spaces = fl
			if runF != nil {
				return runF(o)
			}
			return forwardRun(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	return cmd
}

// parsePortPair reads PORT or PORT:LOCALPORT.
func parsePortPair(s string) (PortPair, error) {
	remote, local, hasLocal := strings.Cut(s, ":")
	p, err := strconv.ParseUint(remote, 10, 16)
	if err != nil || p == 0 {
		return PortPair{}, usageErrorf("bad port %q: PORT must be a whole number between 1 and 65535 (PORT[:LOCALPORT])", s)
	}
	pair := PortPair{Port: uint16(p), Local: uint16(p)}
	if hasLocal {
		l, err := strconv.ParseUint(local, 10, 16)
		if err != nil {
			return PortPair{}, usageErrorf("bad local port %q: LOCALPORT must be a whole number between 0 and 65535 (0 picks a free one)", s)
		}
		pair.Local = uint16(l)
	}
	return pair, nil
}

// connectURL is the WebSocket address of the tunnel to a space's port.
func connectURL(base, name string, port uint16) string {
	u := strings.TrimRight(base, "/") + "/api" + spacePath(name, "/ports/"+strconv.Itoa(int(port))+"/connect")
	if rest, ok := strings.CutPrefix(u, "https://"); ok {
		return "wss://" + rest
	}
	return "ws://" + strings.TrimPrefix(u, "http://")
}

func forwardRun(ctx context.Context, o *ForwardOptions) error {
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for _, p := range o.Pairs {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p.Local))))
		if err != nil {
			return fmt.Errorf("listening on 127.0.0.1:%d: %w", p.Local, err)
		}
		lns = append(lns, ln)
		fmt.Fprintf(o.IO.Out, "Forwarding %s -> %s:%d (on %s)\n", ln.Addr(), o.Name, p.Port, c.Name)
	}
	if o.Ready != nil {
		o.Ready(lns)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acceptForward(ctx, o, c, ln, o.Pairs[i].Port)
		}()
	}
	go func() {
		<-ctx.Done()
		for _, ln := range lns {
			ln.Close()
		}
	}()
	wg.Wait()
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}

// acceptForward carries each connection accepted on ln to port until ln
// is closed.
func acceptForward(ctx context.Context, o *ForwardOptions, c *Client, ln net.Listener, port uint16) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		lc, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer lc.Close()
			tc, err := dialPlainTunnel(ctx, c, o.Name, port)
			var apiErr *APIError
			if errors.As(err, &apiErr) && apiErr.Status == http.StatusBadRequest && strings.Contains(apiErr.Message, "WebSocket") {
				// A node without the plain form: the WebSocket one.
				t, err := dialTunnel(ctx, c, o.Name, port)
				if err != nil {
					fmt.Fprintf(o.IO.ErrOut, "%s:%d: %s\n", o.Name, port, ErrorMessage(err))
					return
				}
				stop := context.AfterFunc(ctx, func() { t.CloseWith(websocket.StatusGoingAway, "clawdspace forward stopped") })
				defer stop()
				carry(lc.(*net.TCPConn), t)
				return
			}
			if err != nil {
				fmt.Fprintf(o.IO.ErrOut, "%s:%d: %s\n", o.Name, port, ErrorMessage(err))
				return
			}
			stop := context.AfterFunc(ctx, func() { tc.Close() })
			defer stop()
			carryPlain(lc.(*net.TCPConn), tc)
		}()
	}
}

// dialTunnel opens the port tunnel to a space's port; the node's refusal
// (nothing listens there, no grant) comes back as an APIError.
func dialTunnel(ctx context.Context, c *Client, name string, port uint16) (*api.Tunnel, error) {
	h := http.Header{"User-Agent": {"clawdspace-cli"}}
	if c.Key != "" {
		h.Set("Authorization", "Bearer "+c.Key)
	}
	if c.Via != "" {
		h.Set(headerNode, c.Via)
	}
	ws, resp, err := websocket.Dial(ctx, connectURL(c.BaseURL, name, port), &websocket.DialOptions{
		HTTPClient: c.HTTP, HTTPHeader: h, CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, spaceError(name, c, c.readError(resp))
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &UnreachableError{URL: c.BaseURL, Err: err}
	}
	return api.NewTunnel(ws), nil
}

// carry copies between a local connection and the tunnel both ways, with
// half-close, until both directions end or one fails.
func carry(lc *net.TCPConn, t *api.Tunnel) {
	var once sync.Once
	closeBoth := func() { once.Do(func() { lc.Close(); t.Close() }) }
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 256<<10)
		if _, err := io.CopyBuffer(struct{ io.Writer }{t}, struct{ io.Reader }{lc}, buf); err != nil {
			closeBoth()
			return
		}
		if t.CloseWrite() != nil {
			closeBoth()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 256<<10)
		if _, err := io.CopyBuffer(struct{ io.Writer }{lc}, struct{ io.Reader }{t}, buf); err != nil {
			closeBoth()
			return
		}
		if lc.CloseWrite() != nil {
			closeBoth()
		}
	}()
	wg.Wait()
	closeBoth()
}

// dialPlainTunnel opens the port tunnel's plain form (api.TCPUpgrade):
// once the node answers 101, the connection is the TCP connection to the
// space's port. The node's refusal comes back as an APIError.
func dialPlainTunnel(ctx context.Context, c *Client, name string, port uint16) (net.Conn, error) {
	u, err := url.Parse(strings.TrimRight(c.BaseURL, "/") + "/api" + spacePath(name, "/ports/"+strconv.Itoa(int(port))+"/connect"))
	if err != nil {
		return nil, fmt.Errorf("bad node address %q: %w", c.BaseURL, err)
	}
	hostPort := u.Host
	if u.Port() == "" {
		hostPort = net.JoinHostPort(u.Hostname(), map[bool]string{true: "443", false: "80"}[u.Scheme == "https"])
	}
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", hostPort)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &UnreachableError{URL: c.BaseURL, Err: err}
	}
	// Until the answer: ctx ends the dial.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	if u.Scheme == "https" {
		cfg := &tls.Config{ServerName: u.Hostname()}
		if t, ok := c.HTTP.Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
			cfg = t.TLSClientConfig.Clone()
			if cfg.ServerName == "" {
				cfg.ServerName = u.Hostname()
			}
		}
		conn = tls.Client(conn, cfg)
	}
	req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", api.TCPUpgrade)
	req.Header.Set("User-Agent", "clawdspace-cli")
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	if c.Via != "" {
		req.Header.Set(headerNode, c.Via)
	}
	br := bufio.NewReader(conn)
	var resp *http.Response
	if err = req.Write(conn); err == nil {
		resp, err = http.ReadResponse(br, req)
	}
	if !stop() || err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil {
			err = errors.New("the connection ended")
		}
		return nil, &UnreachableError{URL: c.BaseURL, Err: err}
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer conn.Close()
		return nil, spaceError(name, c, c.readError(resp))
	}
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: conn, r: br}, nil
	}
	return conn, nil
}

// bufferedConn is a connection some of whose bytes were read ahead.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *bufferedConn) CloseWrite() error { return closeWriteOf(b.Conn) }

// closeWriteOf half-closes c where it can (TCP, TLS), else closes it.
func closeWriteOf(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// carryPlain copies between a local connection and the plain tunnel both
// ways, with half-close; between two TCP sockets the kernel moves the
// bytes (splice).
func carryPlain(lc *net.TCPConn, tc net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if _, err := io.Copy(tc, lc); err != nil {
			tc.Close()
			lc.Close()
			return
		}
		_ = closeWriteOf(tc)
	}()
	go func() {
		defer wg.Done()
		if _, err := io.Copy(lc, tc); err != nil {
			tc.Close()
			lc.Close()
			return
		}
		_ = lc.CloseWrite()
	}()
	wg.Wait()
	tc.Close()
	lc.Close()
}
