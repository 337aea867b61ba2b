// Package sshd is the node's SSH door: `ssh SPACE@NODE` opens a login shell
// in space SPACE, `ssh SPACE@NODE CMD` runs a command, sftp and scp copy
// files, and `ssh -L` reaches the space's ports. It speaks SSH with
// golang.org/x/crypto/ssh and does nothing itself: every connection
// resolves one spaces.Caller (a tailnet peer by WhoIs, a key of the
// authorized_keys file, or the caller of the API tunnel) and calls the
// spaces.Service, which decides and audits (docs/SSH.md).
package sshd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/adam91holt/clawdspace/spaces"
)

// Defaults of the bounds in Config.
const (
	DefaultMaxConns          = 256
	DefaultMaxConnsPerCaller = 32
	DefaultMaxChannels       = 32
	DefaultHandshakeTimeout  = 20 * time.Second
	DefaultKeepAlive         = 30 * time.Second
	DefaultKeepAliveMax      = 3
)

// Service is what the SSH door needs of the spaces service.
type Service interface {
	OpenSSH(ctx context.Context, c spaces.Caller, name string, meta map[string]any) (end func(), err error)
	OpenTerminalFor(ctx context.Context, c spaces.Caller, name string, req spaces.TerminalRequest) (*spaces.TerminalSession, error)
	Run(ctx context.Context, c spaces.Caller, name string, req spaces.ExecRequest) (spaces.ExecResult, error)
	ConnectPort(ctx context.Context, c spaces.Caller, name string, port, nodePort uint16) (*spaces.PortConn, error)
	RecordRefusal(ctx context.Context, c spaces.Caller, space, limit string, meta map[string]any) error
}

// Config is what a Server is built from.
type Config struct {
	Service Service
	Logger  *slog.Logger
	// HostKeyPath is the node's ed25519 host key (OpenSSH format),
	// generated with mode 0600 when missing and kept.
	HostKeyPath string
	// AuthorizedKeysPath lists the public keys Serve accepts (the
	// standard authorized_keys format), read again when it changes. A
	// missing file accepts no key.
	AuthorizedKeysPath string
	// WhoIs identifies the callers of ServeTailnet by their address:
	// there no key is checked, as with Tailscale SSH.
	WhoIs func(ctx context.Context, addr string) (spaces.Caller, error)

	// MaxConns bounds the open connections of the node, MaxConnsPerCaller
	// those of one caller, MaxChannels the channels (sessions, forwarded
	// connections) open on one connection.
	MaxConns          int
	MaxConnsPerCaller int
	MaxChannels       int
	// HandshakeTimeout bounds the time from accept to an authenticated
	// connection.
	HandshakeTimeout time.Duration
	// KeepAlive is how often the server asks a client whether it is still
	// there; a client that misses KeepAliveMax answers in a row is gone
	// and its connection closed.
	KeepAlive    time.Duration
	KeepAliveMax int
}

// Server serves SSH connections. Build it with New; Close ends every
// connection and what it started.
type Server struct {
	cfg    Config
	log    *slog.Logger
	signer ssh.Signer
	keys   *authorizedKeys
	slots  chan struct{}

	mu        sync.Mutex
	closed    bool
	lns       map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	perCaller map[string]int
	// handshakes counts the connections of each network address.
	handshakes map[string]int
	wg         sync.WaitGroup
}

// New loads (or generates) the host key and builds the server.
func New(cfg Config) (*Server, error) {
	if cfg.Service == nil {
		return nil, errors.New("sshd: Config.Service is required")
	}
	if cfg.HostKeyPath == "" {
		return nil, errors.New("sshd: Config.HostKeyPath is required")
	}
	cfg.MaxConns = cmp.Or(cfg.MaxConns, DefaultMaxConns)
	cfg.MaxConnsPerCaller = cmp.Or(cfg.MaxConnsPerCaller, DefaultMaxConnsPerCaller)
	cfg.MaxChannels = cmp.Or(cfg.MaxChannels, DefaultMaxChannels)
	cfg.HandshakeTimeout = cmp.Or(cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	cfg.KeepAlive = cmp.Or(cfg.KeepAlive, DefaultKeepAlive)
	cfg.KeepAliveMax = cmp.Or(cfg.KeepAliveMax, DefaultKeepAliveMax)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	signer, err := loadHostKey(cfg.HostKeyPath)
	if err != nil {
		return nil, err
	}
	return &Server{
		cfg: cfg, log: log, signer: signer,
		keys:       &authorizedKeys{path: cfg.AuthorizedKeysPath},
		slots:      make(chan struct{}, cfg.MaxConns),
		lns:        make(map[net.Listener]struct{}),
		conns:      make(map[net.Conn]struct{}),
		perCaller:  make(map[string]int),
		handshakes: make(map[string]int),
	}, nil
}

// HostKey is the server's public host key.
func (s *Server) HostKey() ssh.PublicKey { return s.signer.PublicKey() }

// Serve accepts connections on ln and lets in the holders of the keys in
// the authorized_keys file, with full access (local mode). It returns
// when ln is closed or ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.serve(ctx, ln, s.handleKeyed)
}

// ServeTailnet accepts connections on ln (the tailnet listener) and
// identifies each by WhoIs of its address, without keys.
func (s *Server) ServeTailnet(ctx context.Context, ln net.Listener) error {
	if s.cfg.WhoIs == nil {
		return errors.New("sshd: ServeTailnet needs Config.WhoIs")
	}
	return s.serve(ctx, ln, s.handleTailnet)
}

// ServeConn serves one connection whose caller is already known (the
// API's /api/ssh tunnel): no key is checked. It returns when the
// connection ends.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn, c spaces.Caller) error {
	if !s.take(conn) {
		conn.Close()
		return errors.New("sshd: too many SSH connections, or the server is closed")
	}
	defer s.give(conn)
	c.Door = spaces.DoorSSH
	s.handle(ctx, conn, &identity{caller: c, tunnel: true})
	return nil
}

func (s *Server) serve(ctx context.Context, ln net.Listener, handle func(context.Context, net.Conn)) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return net.ErrClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) || s.isClosed() {
				return nil
			}
			// A temporary failure (out of file descriptors): back off.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("ssh accept failed", "err", err)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		delay = 0
		if !s.take(conn) {
			s.log.Debug("ssh connection refused: too many open", "remote", conn.RemoteAddr().String())
			conn.Close()
			continue
		}
		go func() {
			defer s.give(conn)
			handle(ctx, conn)
		}()
	}
}

// take reserves a connection slot (MaxConns) and tracks conn for Close.
func (s *Server) take(conn net.Conn) bool {
	select {
	case s.slots <- struct{}{}:
	default:
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		<-s.slots
		return false
	}
	s.conns[conn] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) give(conn net.Conn) {
	conn.Close()
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
	<-s.slots
	s.wg.Done()
}

// MaxHandshakesPerAddr bounds the handshakes under way from one network
// address.
const MaxHandshakesPerAddr = 8

// takeHandshake counts one more handshake under way from ip; false past
// MaxHandshakesPerAddr. Connections past their handshake are bounded by
// MaxConnsPerCaller.
func (s *Server) takeHandshake(ip string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handshakes[ip] >= MaxHandshakesPerAddr {
		return false
	}
	s.handshakes[ip]++
	return true
}

func (s *Server) giveHandshake(ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handshakes[ip]--; s.handshakes[ip] <= 0 {
		delete(s.handshakes, ip)
	}
}

// takeCaller counts one more connection of a caller; false past
// MaxConnsPerCaller.
func (s *Server) takeCaller(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perCaller[key] >= s.cfg.MaxConnsPerCaller {
		return false
	}
	s.perCaller[key]++
	return true
}

func (s *Server) giveCaller(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perCaller[key]--; s.perCaller[key] <= 0 {
		delete(s.perCaller, key)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops the listeners, closes every connection (which kills what
// their sessions started) and waits until their audit rows are written.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	lns := slices.Collect(maps.Keys(s.lns))
	conns := slices.Collect(maps.Keys(s.conns))
	s.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	for _, c := range conns {
		c.Close()
	}
	s.wg.Wait()
	return nil
}

// identity is who a connection is, as far as the door knows before the
// Service decides.
type identity struct {
	caller spaces.Caller
	// key is the fingerprint of the authorized key used (local mode).
	key, keyComment string
	tunnel          bool
}

// limitKey names the caller for MaxConnsPerCaller.
func (id *identity) limitKey() string {
	return id.caller.Kind.String() + "|" + id.caller.Actor + "|" + id.key
}

// handleTailnet identifies a tailnet peer before the handshake: an
// address WhoIs does not know is closed at once (and audited).
func (s *Server) handleTailnet(ctx context.Context, conn net.Conn) {
	addr := conn.RemoteAddr().String()
	wctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	c, err := s.cfg.WhoIs(wctx, addr)
	cancel()
	if err != nil {
		s.log.Debug("ssh: unknown tailnet peer", "remote", addr, "err", err)
		ip, _, _ := net.SplitHostPort(addr)
		who := spaces.Caller{Actor: "anonymous", Addr: ip, Door: spaces.DoorSSH}
		if rerr := s.cfg.Service.RecordRefusal(ctx, who, "", "ssh|unknown|"+ip, map[string]any{"reason": "Unauthorized: unknown tailnet peer"}); rerr != nil {
			s.log.Error("recording an ssh refusal", "err", rerr)
		}
		return
	}
	c.Door = spaces.DoorSSH
	s.handle(ctx, conn, &identity{caller: c})
}

// handleKeyed serves a local-mode connection: the caller is the holder of
// an authorized key, known once the handshake is done.
func (s *Server) handleKeyed(ctx context.Context, conn net.Conn) {
	s.handle(ctx, conn, nil)
}

// errTooMany ends a connection whose caller has too many open.
var errTooMany = errors.New("too many SSH connections of this caller")

// handle runs the handshake and then the connection. id is nil when the
// caller is known by a key (local mode).
func (s *Server) handle(ctx context.Context, conn net.Conn, id *identity) {
	remote := conn.RemoteAddr().String()
	ip, _, err := net.SplitHostPort(remote)
	if err != nil {
		ip = remote
	}
	// A tunnel's caller passed the API's authentication already; a
	// network client may hold only a few handshakes at once, so that one
	// device stalling them cannot take every connection slot.
	handshaken := func() {}
	if id == nil || !id.tunnel {
		if !s.takeHandshake(ip) {
			s.log.Debug("ssh connection refused: too many handshakes from one address", "remote", remote)
			return
		}
		var once sync.Once
		handshaken = func() { once.Do(func() { s.giveHandshake(ip) }) }
		defer handshaken()
	}
	cfg := &ssh.ServerConfig{ServerVersion: "SSH-2.0-Clawdspace", MaxAuthTries: 6}
	cfg.AddHostKey(s.signer)
	if id != nil {
		// Known already: any method the client offers is let through
		// unchecked, "none" first (OpenSSH tries it before any key).
		cfg.NoClientAuth = true
		cfg.PublicKeyCallback = func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil }
		cfg.KeyboardInteractiveCallback = func(ssh.ConnMetadata, ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			return nil, nil
		}
	} else {
		cfg.PublicKeyCallback = func(md ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			comment, ok := s.keys.lookup(key)
			fp := ssh.FingerprintSHA256(key)
			if !ok {
				s.log.Debug("ssh: key not authorized", "remote", remote, "user", md.User(), "key", fp)
				who := spaces.Caller{Actor: "ssh-key " + fp, Addr: ip, Door: spaces.DoorSSH}
				// One row per source address and interval: a client can
				// offer any number of keys without holding any of them.
				if rerr := s.cfg.Service.RecordRefusal(ctx, who, "", "ssh|key|"+ip, map[string]any{
					"reason": "Unauthorized: the SSH key is not in the authorized_keys file", "key": fp, "user": truncate(md.User(), 64),
				}); rerr != nil {
					s.log.Error("recording an ssh refusal", "err", rerr)
				}
				return nil, errors.New("key not authorized")
			}
			return &ssh.Permissions{Extensions: map[string]string{"key": fp, "comment": comment}}, nil
		}
	}
	_ = conn.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	handshaken()
	if err != nil {
		s.log.Debug("ssh handshake failed", "remote", remote, "err", err)
		return
	}
	_ = conn.SetDeadline(time.Time{})
	defer sc.Close()
	if id == nil {
		fp, comment := sc.Permissions.Extensions["key"], sc.Permissions.Extensions["comment"]
		id = &identity{key: fp, keyComment: comment, caller: spaces.Caller{
			Kind: spaces.KindAPIKey, Actor: "ssh-key " + fp, Addr: ip, Door: spaces.DoorSSH, Access: spaces.FullAccess(),
		}}
	}
	if id.caller.Addr == "" {
		id.caller.Addr = ip
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.keepAlive(ctx, sc, cancel)

	lk := id.limitKey()
	if !s.takeCaller(lk) {
		s.log.Debug("ssh connection refused: caller has too many", "actor", id.caller.Actor)
		s.refuseAll(ctx, sc, chans, reqs, fmt.Sprintf("Refused: %s has %d SSH connections open, the most one caller may have", id.caller.Label(), s.cfg.MaxConnsPerCaller))
		return
	}
	defer s.giveCaller(lk)

	space := sc.User()
	meta := map[string]any{"user": truncate(space, 64), "remote": remote, "client": truncate(string(sc.ClientVersion()), 128)}
	if id.key != "" {
		meta["key"] = id.key
		if id.keyComment != "" {
			meta["keyComment"] = truncate(id.keyComment, 128)
		}
	}
	if id.tunnel {
		meta["tunnel"] = true
	}
	end, err := s.cfg.Service.OpenSSH(ctx, id.caller, space, meta)
	if err != nil {
		s.refuseAll(ctx, sc, chans, reqs, refusalMessage(space, err))
		return
	}
	defer end()
	s.log.Debug("ssh connection", "space", space, "actor", id.caller.Actor, "remote", remote)
	c := &connection{srv: s, sc: sc, caller: id.caller, space: space, sem: make(chan struct{}, s.cfg.MaxChannels)}
	c.serve(ctx, chans, reqs)
}

// keepAlive asks the client every KeepAlive whether it is there and ends
// the connection (cancel, close) when it misses KeepAliveMax answers.
func (s *Server) keepAlive(ctx context.Context, sc *ssh.ServerConn, cancel context.CancelFunc) {
	t := time.NewTicker(s.cfg.KeepAlive)
	defer t.Stop()
	answered := make(chan error, 1)
	pending, missed := false, 0
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-answered:
			pending, missed = false, 0
			if err != nil {
				cancel()
				sc.Close()
				return
			}
		case <-t.C:
			if pending {
				if missed++; missed >= s.cfg.KeepAliveMax {
					s.log.Debug("ssh client stopped answering", "remote", sc.RemoteAddr().String())
					cancel()
					sc.Close()
					return
				}
				continue
			}
			pending = true
			go func() {
				_, _, err := sc.SendRequest("keepalive@openssh.com", true, nil)
				select {
				case answered <- err:
				case <-ctx.Done():
				}
			}()
		}
	}
}

// refusalMessage is what a refused client reads.
func refusalMessage(space string, err error) string {
	switch {
	case errors.Is(err, spaces.ErrNotFound):
		return fmt.Sprintf("clawdspace: space %q not found on this node (the SSH user names the space: ssh SPACE@NODE)", space)
	case errors.Is(err, spaces.ErrForbidden):
		return "clawdspace: " + messageOf(err) + " (SSH needs the terminal grant on the space; see docs/POLICY.md)"
	}
	return "clawdspace: " + messageOf(err)
}

// messageOf is an error's domain message, or a generic one for internal
// errors (whose text must not reach a client).
func messageOf(err error) string {
	if msg, ok := spaces.Message(err); ok {
		return msg
	}
	return "the node could not open the connection"
}

// refuseAll serves a connection that may do nothing: every session gets
// msg on stderr and exit status 1, every other channel is refused with
// msg, and the connection ends after the first session.
func (s *Server) refuseAll(ctx context.Context, sc *ssh.ServerConn, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request, msg string) {
	go ssh.DiscardRequests(reqs)
	timer := time.NewTimer(s.cfg.HandshakeTimeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		case nc, ok := <-chans:
			if !ok {
				return
			}
			if nc.ChannelType() != "session" {
				_ = nc.Reject(ssh.Prohibited, msg)
				continue
			}
			ch, creqs, err := nc.Accept()
			if err != nil {
				return
			}
			// Answer the session's requests until it asks to run
			// something, then say why not.
			for req := range creqs {
				switch req.Type {
				case "shell", "exec", "subsystem":
					_ = req.Reply(true, nil)
					fmt.Fprintf(ch.Stderr(), "%s\r\n", msg)
					_ = ch.CloseWrite()
					sendExit(ch, 1)
					ch.Close()
					// Let the client read the status and hang up itself
					// (closing first would lose the status).
					s.drain(ctx, chans, timer.C)
					return
				default:
					_ = req.Reply(req.Type == "pty-req" || req.Type == "env", nil)
				}
			}
			ch.Close()
			return
		}
	}
}

// drain refuses further channels until the client hangs up, ctx ends or
// the timer fires.
func (s *Server) drain(ctx context.Context, chans <-chan ssh.NewChannel, timeout <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-timeout:
			return
		case nc, ok := <-chans:
			if !ok {
				return
			}
			_ = nc.Reject(ssh.Prohibited, "refused")
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
