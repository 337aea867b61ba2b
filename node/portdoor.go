package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
)

// PortTailnet is what the port door needs of the node's tailnet device.
type PortTailnet interface {
	Tailnet
	// Listen listens on the device's tailnet addresses (":PORT").
	Listen(addr string) (net.Listener, error)
	// CertDomains are the names the tailnet issues certificates for;
	// empty when it issues none.
	CertDomains(ctx context.Context) ([]string, error)
	// GetCertificate gets the tailnet's certificate for a handshake.
	GetCertificate(hi *tls.ClientHelloInfo) (*tls.Certificate, error)
}

// PortDoorConfig holds what a PortDoor is built from.
type PortDoorConfig struct {
	Spaces  *spaces.Service
	Tailnet PortTailnet
	// TrustTailnet gives every device full access, as on the API.
	TrustTailnet bool
	Logger       *slog.Logger
	// RetryInterval is how often a node port that could not be listened
	// on is tried again (default 30 s).
	RetryInterval time.Duration
}

// Bounds of the port door.
const (
	// portHandshakeTimeout bounds a TLS handshake and the identity
	// lookup of an accepted connection.
	portHandshakeTimeout = 15 * time.Second
	// portRefusalPeek is how long a refused connection is watched for an
	// HTTP request, to answer it in HTTP.
	portRefusalPeek = 2 * time.Second
	// maxPendingConns bounds the connections of one forward that are
	// still being identified and decided (the open ones are bounded by
	// the Service); more are closed at once.
	maxPendingConns = 128
)

// PortDoor serves the forwards of the node's spaces on its tailnet
// address: a listener at each forward's node port, reconciled with the
// Service's forward table at start and at each change. Each accepted
// connection is identified by WhoIs and authorized and audited by
// Service.ConnectPort, then carried both ways.
type PortDoor struct {
	cfg PortDoorConfig
	log *slog.Logger

	mu     sync.Mutex
	served map[uint16]*servedPort // by node port
	closed bool
	// failed is the last error of each node port that could not be
	// listened on, so a retry that fails the same way is not logged again.
	failed map[uint16]string

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// servedPort is one forward's listener and its open connections.
type servedPort struct {
	f     spaces.Forward
	ln    net.Listener // nil when listening failed
	err   error
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  bool
	wg    sync.WaitGroup
	// pending holds a token per connection not yet decided.
	pending chan struct{}
}

// NewPortDoor builds a PortDoor; Start serves.
func NewPortDoor(cfg PortDoorConfig) (*PortDoor, error) {
	if cfg.Spaces == nil || cfg.Tailnet == nil {
		return nil, errors.New("node: the port door needs Spaces and Tailnet")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 30 * time.Second
	}
	return &PortDoor{cfg: cfg, log: cfg.Logger, served: make(map[uint16]*servedPort), failed: make(map[uint16]string)}, nil
}

// Start listens on the node ports of the stored forwards and follows
// their changes until ctx ends or Close is called.
func (d *PortDoor) Start(ctx context.Context) {
	ctx, d.cancel = context.WithCancel(ctx)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(d.cfg.RetryInterval)
		defer t.Stop()
		for {
			// The channel is taken before the table is read, so a change
			// made meanwhile is not missed.
			changed := d.cfg.Spaces.ForwardsChanged()
			d.reconcile(ctx)
			select {
			case <-ctx.Done():
				return
			case <-changed:
			case <-t.C:
			}
		}
	}()
}

// Close stops listening and ends every open connection.
func (d *PortDoor) Close() {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	d.mu.Lock()
	d.closed = true
	all := d.served
	d.served = map[uint16]*servedPort{}
	d.mu.Unlock()
	for _, sp := range all {
		sp.stop()
	}
}

// ForwardState is the state of the forward at nodePort, for the API:
// serving, failed (with why) or pending.
func (d *PortDoor) ForwardState(f spaces.Forward) (state, why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	sp, ok := d.served[f.NodePort]
	switch {
	case !ok || !sameForward(sp.f, f):
		return api.ForwardPending, ""
	case sp.err != nil:
		return api.ForwardFailed, sp.err.Error()
	}
	return api.ForwardServing, ""
}

// CertsAvailable reports whether the tailnet issues certificates, so
// HTTPS forwards can be served.
func (d *PortDoor) CertsAvailable(ctx context.Context) (bool, error) {
	ds, err := d.cfg.Tailnet.CertDomains(ctx)
	return len(ds) > 0, err
}

// sameForward reports whether a and b forward the same port the same way.
func sameForward(a, b spaces.Forward) bool {
	return a.Space == b.Space && a.Port == b.Port && a.NodePort == b.NodePort && a.HTTPS == b.HTTPS
}

// reconcile makes the listeners match the forward table: it stops those
// of forwards that are gone or changed and listens for new ones and for
// those that failed before.
func (d *PortDoor) reconcile(ctx context.Context) {
	fs, err := d.cfg.Spaces.ServedForwards(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error("reading the forwarded ports", "err", err)
		}
		return
	}
	want := make(map[uint16]spaces.Forward, len(fs))
	for _, f := range fs {
		want[f.NodePort] = f
	}
	var stale []*servedPort
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	for p := range d.failed {
		if _, ok := want[p]; !ok {
			delete(d.failed, p)
		}
	}
	for p, sp := range d.served {
		if f, ok := want[p]; !ok || !sameForward(f, sp.f) || sp.err != nil {
			stale = append(stale, sp)
			delete(d.served, p)
		}
	}
	d.mu.Unlock()
	for _, sp := range stale {
		sp.stop()
		if sp.err == nil {
			d.log.Info("stopped serving a forwarded port", "space", sp.f.Space, "port", sp.f.Port, "nodePort", sp.f.NodePort)
		}
	}
	for p, f := range want {
		d.mu.Lock()
		_, have := d.served[p]
		d.mu.Unlock()
		if have {
			continue
		}
		sp := d.listen(ctx, f)
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			sp.stop()
			return
		}
		d.served[p] = sp
		d.mu.Unlock()
	}
}

// listen starts serving f; a node port that cannot be listened on is
// logged and kept as failed.
func (d *PortDoor) listen(ctx context.Context, f spaces.Forward) *servedPort {
	sp := &servedPort{f: f, conns: make(map[net.Conn]struct{}), pending: make(chan struct{}, maxPendingConns)}
	ln, err := d.cfg.Tailnet.Listen(":" + strconv.Itoa(int(f.NodePort)))
	if err == nil && f.HTTPS {
		var ok bool
		if ok, err = d.CertsAvailable(ctx); err == nil && !ok {
			err = errors.New("the tailnet issues no HTTPS certificates (turn HTTPS on in its admin console)")
		}
		if err != nil {
			ln.Close()
		} else {
			ln = tls.NewListener(ln, &tls.Config{GetCertificate: d.cfg.Tailnet.GetCertificate, MinVersion: tls.VersionTLS12})
		}
	}
	d.mu.Lock()
	last := d.failed[f.NodePort]
	if err != nil {
		d.failed[f.NodePort] = err.Error()
	} else {
		delete(d.failed, f.NodePort)
	}
	d.mu.Unlock()
	if err != nil {
		sp.err = fmt.Errorf("listening on node port %d: %w", f.NodePort, err)
		if ctx.Err() == nil && last != err.Error() {
			d.log.Warn("cannot serve a forwarded port; trying again every so often", "space", f.Space, "port", f.Port, "nodePort", f.NodePort, "err", err)
		}
		return sp
	}
	sp.ln = ln
	d.log.Info("serving a forwarded port", "space", f.Space, "port", f.Port, "nodePort", f.NodePort, "https", f.HTTPS)
	sp.wg.Add(1)
	go func() {
		defer sp.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !sp.add(c) {
				c.Close()
				return
			}
			select {
			case sp.pending <- struct{}{}:
			default:
				d.log.Debug("forwarded port: too many connections waiting to be decided; closing one", "nodePort", f.NodePort, "remote", c.RemoteAddr().String())
				sp.remove(c)
				c.Close()
				continue
			}
			sp.wg.Add(1)
			go func() {
				defer sp.wg.Done()
				defer sp.remove(c)
				d.serveConn(ctx, f, c, func() { <-sp.pending })
			}()
		}
	}()
	return sp
}

// add records an open connection; false once the forward is stopped.
func (sp *servedPort) add(c net.Conn) bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.done {
		return false
	}
	sp.conns[c] = struct{}{}
	return true
}

func (sp *servedPort) remove(c net.Conn) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	delete(sp.conns, c)
}

// stop closes the listener and every open connection, and waits for
// their goroutines (which write the connections' audit rows).
func (sp *servedPort) stop() {
	sp.mu.Lock()
	sp.done = true
	if sp.ln != nil {
		sp.ln.Close()
	}
	for c := range sp.conns {
		c.Close()
	}
	sp.mu.Unlock()
	sp.wg.Wait()
}

// serveConn identifies the caller of an accepted connection, connects it
// to the space's port through the Service and carries bytes both ways.
// decided is called once the connection is refused or connected.
func (d *PortDoor) serveConn(ctx context.Context, f spaces.Forward, c net.Conn, decided func()) {
	defer c.Close()
	var once sync.Once
	settle := func() { once.Do(decided) }
	defer settle()
	remote := c.RemoteAddr().String()
	hctx, cancel := context.WithTimeout(ctx, portHandshakeTimeout)
	defer cancel()
	if tc, ok := c.(*tls.Conn); ok {
		if err := tc.HandshakeContext(hctx); err != nil {
			d.log.Debug("forwarded port: TLS handshake failed", "nodePort", f.NodePort, "remote", remote, "err", err)
			return
		}
	}
	caller, err := WhoIsCaller(hctx, d.cfg.Tailnet, remote, d.cfg.TrustTailnet, d.log)
	if err != nil {
		msg := "Unauthorized: unknown tailnet peer"
		d.log.Debug("forwarded port: whois failed", "nodePort", f.NodePort, "remote", remote, "err", err)
		anon := spaces.Caller{Actor: "anonymous", Addr: remoteIP(remote)}.Through(spaces.DoorPorts)
		meta := map[string]any{"remote": remoteIP(remote), "port": f.Port, "nodePort": f.NodePort, "reason": msg}
		if err := d.cfg.Spaces.RecordRefusal(ctx, anon, f.Space, "ports|"+remoteIP(remote), meta); err != nil {
			d.log.Error("recording a refused connection", "err", err)
		}
		refuseConn(c, http.StatusUnauthorized, msg)
		return
	}
	caller = caller.Through(spaces.DoorPorts)
	pc, err := d.cfg.Spaces.ConnectPort(hctx, caller, f.Space, f.Port, f.NodePort)
	if err != nil {
		status, msg := classifyError(err)
		if status >= 500 && ctx.Err() == nil {
			d.log.Error("forwarded port: connecting to the space failed", "space", f.Space, "port", f.Port, "err", err)
		} else {
			d.log.Debug("forwarded port: connection refused", "space", f.Space, "port", f.Port, "actor", caller.Actor, "status", status, "err", err)
		}
		refuseConn(c, status, msg)
		return
	}
	settle()
	defer pc.Close()
	keepAlive(c)
	pipe(asHalfConn(c), pc)
}

// refuseConn ends a connection that was refused. A client that sent an
// HTTP request (most forwards serve web apps) gets an HTTP answer with
// the status and the reason; any other client sees the connection close.
func refuseConn(c net.Conn, status int, msg string) {
	_ = c.SetDeadline(time.Now().Add(portRefusalPeek))
	buf := make([]byte, 8)
	n, _ := readAtLeast(c, buf, 8)
	if !looksLikeHTTP(buf[:n]) {
		return
	}
	body := msg + "\n"
	_, _ = fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
	// Half-close and drain what the client still sends, so the answer is
	// not lost to a reset.
	_ = asHalfConn(c).CloseWrite()
	drain := make([]byte, 4096)
	for i := 0; i < 64; i++ {
		if _, err := c.Read(drain); err != nil {
			return
		}
	}
}

// readAtLeast reads until buf holds min bytes, or the first error.
func readAtLeast(c net.Conn, buf []byte, min int) (int, error) {
	n := 0
	for n < min {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// looksLikeHTTP reports whether b starts an HTTP/1 request.
func looksLikeHTTP(b []byte) bool {
	for _, m := range []string{"GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "} {
		k := min(len(m), len(b))
		if k >= 4 && string(b[:k]) == m[:k] {
			return true
		}
	}
	return false
}

// keepAlive turns TCP keepalive on where the connection is a host
// socket; the tailnet's own connections have it on already (tsnet's
// netstack sets it on every accepted connection).
func keepAlive(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: time.Minute, Interval: 15 * time.Second, Count: 4})
	}
}
