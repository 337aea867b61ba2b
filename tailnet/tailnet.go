// Package tailnet joins the node to the owner's tailnet as its own device
// with tsnet, and answers who is on the other end of a connection.
package tailnet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tailscale.com/client/local"
	"tailscale.com/client/tailscale/apitype"
	"tailscale.com/envknob"
	"tailscale.com/ipn"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/tsnet"
)

// Config says how to join.
type Config struct {
	// Dir holds the device's state (its keys and login).
	Dir string
	// Hostname is the device name on the tailnet.
	Hostname string
	// AuthKey logs a new device in; empty means reuse the login in Dir.
	AuthKey string
	// ControlURL is the coordination server; empty means Tailscale's.
	ControlURL string
	// Ephemeral devices are removed from the tailnet when they go offline.
	Ephemeral bool
	// Store keeps state in memory instead of Dir (tests; needs Ephemeral).
	Store ipn.StateStore
	// StartTimeout bounds the wait for the device to come up (default 45 s).
	StartTimeout time.Duration
	Logger       *slog.Logger
	// Verbose lets tsnet's own logs through at debug level.
	Verbose bool
}

// Node is this node's device on the tailnet.
type Node struct {
	srv    *tsnet.Server
	lc     *local.Client
	client *http.Client
	status *ipnstate.Status
}

// stateFile is where tsnet keeps a device's login within Dir.
const stateFile = "tailscaled.state"

// Start joins the tailnet and waits, at most cfg.StartTimeout, until the
// device is up. Its errors say what to do.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Hostname == "" {
		return nil, errors.New("tailnet: a hostname is required")
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 45 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Store == nil {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating tailnet state folder: %w", err)
		}
		if cfg.AuthKey == "" {
			if _, err := os.Stat(filepath.Join(cfg.Dir, stateFile)); err != nil {
				return nil, fmt.Errorf("no auth key and no saved tailnet login in %s: pass --ts-authkey or set TS_AUTHKEY for the first start", cfg.Dir)
			}
		}
	}
	// Never send logs to Tailscale's log servers.
	envknob.SetNoLogsNoSupport()

	quiet := func(string, ...any) {}
	logf := quiet
	if cfg.Verbose {
		logf = func(format string, args ...any) {
			cfg.Logger.Debug(strings.TrimSpace(fmt.Sprintf(format, args...)), "from", "tsnet")
		}
	}
	srv := &tsnet.Server{
		Dir:        cfg.Dir,
		Hostname:   cfg.Hostname,
		AuthKey:    cfg.AuthKey,
		ControlURL: cfg.ControlURL,
		Ephemeral:  cfg.Ephemeral,
		Logf:       logf,
		UserLogf:   logf,
	}
	if cfg.Store != nil {
		srv.Store = cfg.Store
	}
	// tsnet falls back to TS_AUTHKEY and TS_CONTROL_URL when these are
	// empty; an unset control URL then means Tailscale's, which is what
	// a user without --control-url wants.
	upCtx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	st, err := srv.Up(upCtx)
	if err != nil {
		srv.Close()
		return nil, startError(cfg, err, upCtx.Err())
	}
	lc, err := srv.LocalClient()
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("tailnet: local client: %w", err)
	}
	return &Node{srv: srv, lc: lc, client: srv.HTTPClient(), status: st}, nil
}

// startError turns tsnet's start failures into one clear message.
func startError(cfg Config, err, ctxErr error) error {
	control := cfg.ControlURL
	if control == "" {
		control = "the default control server (login.tailscale.com)"
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "invalid authkey") || strings.Contains(msg, "invalid key"):
		return fmt.Errorf("joining the tailnet: the auth key was refused by %s (%s); make a new one in the admin console", control, msg)
	case ctxErr != nil:
		return fmt.Errorf("joining the tailnet as %q: not up after %s: is %s reachable, and is the auth key valid? (--verbose shows tsnet's log)", cfg.Hostname, cfg.StartTimeout, control)
	}
	return fmt.Errorf("joining the tailnet as %q: %w", cfg.Hostname, err)
}

// Listen listens on the device's tailnet addresses.
func (n *Node) Listen(addr string) (net.Listener, error) { return n.srv.Listen("tcp", addr) }

// WhoIs says who is at a remote address (ip:port or ip) of the tailnet.
func (n *Node) WhoIs(ctx context.Context, remoteAddr string) (*apitype.WhoIsResponse, error) {
	return n.lc.WhoIs(ctx, remoteAddr)
}

// Status returns the device's view of the tailnet: itself and its peers.
func (n *Node) Status(ctx context.Context) (*ipnstate.Status, error) { return n.lc.Status(ctx) }

// CertDomains are the names the tailnet issues TLS certificates for:
// empty when it issues none (HTTPS is off in the admin console, or the
// control server has no certificates).
func (n *Node) CertDomains(ctx context.Context) ([]string, error) {
	st, err := n.lc.StatusWithoutPeers(ctx)
	if err != nil {
		return nil, err
	}
	return st.CertDomains, nil
}

// GetCertificate gets the tailnet's certificate for a TLS handshake (a
// tls.Config's GetCertificate).
func (n *Node) GetCertificate(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return n.lc.GetCertificate(hi)
}

// Dial connects through the tailnet.
func (n *Node) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return n.srv.Dial(ctx, network, addr)
}

// HTTPClient makes requests through the tailnet.
func (n *Node) HTTPClient() *http.Client { return n.client }

// Addr is the device's first tailnet address.
func (n *Node) Addr() string {
	if len(n.status.TailscaleIPs) == 0 {
		return ""
	}
	return n.status.TailscaleIPs[0].String()
}

// DNSName is the device's MagicDNS name, without the trailing dot.
func (n *Node) DNSName() string {
	if n.status.Self == nil {
		return ""
	}
	return strings.TrimSuffix(n.status.Self.DNSName, ".")
}

// Hosts are the names and addresses this device answers to on the
// tailnet: its addresses, its MagicDNS name and that name's first label.
func (n *Node) Hosts() []string {
	var out []string
	for _, ip := range n.status.TailscaleIPs {
		out = append(out, ip.String())
	}
	if d := n.DNSName(); d != "" {
		out = append(out, d, strings.SplitN(d, ".", 2)[0])
	}
	return out
}

// Server is the underlying tsnet server (tests wait on its DERP state).
func (n *Node) Server() *tsnet.Server { return n.srv }

// Close leaves the tailnet.
func (n *Node) Close() error { return n.srv.Close() }
