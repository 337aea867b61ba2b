package spaces

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Forward is a space's TCP port served on the node's tailnet address at
// NodePort. The assignment is stored, so it survives restarts.
type Forward struct {
	Space    string
	Port     uint16
	NodePort uint16
	// HTTPS serves the port with the tailnet's certificate (TLS ends at
	// the node; the space sees plain TCP).
	HTTPS     bool
	CreatedBy string
	Created   time.Time
}

// ForwardStore keeps forwarded ports. The SQLite adapter implements it.
type ForwardStore interface {
	// Forwards returns every forward, sorted by node port.
	Forwards(ctx context.Context) ([]Forward, error)
	// AddForward stores f; ErrExists when its node port, or its space and
	// port, are taken.
	AddForward(ctx context.Context, f Forward) error
	// DeleteForward removes one; ErrNotFound when there is none.
	DeleteForward(ctx context.Context, space string, port uint16) error
	// DeleteForwards removes every forward of space.
	DeleteForwards(ctx context.Context, space string) error
}

// ForwardRequest asks for a space's port to be forwarded.
type ForwardRequest struct {
	Port uint16
	// NodePort is the node port wanted; 0 lets the node choose: the
	// space's own port when it is free and not below 1024, else the
	// lowest free port of the forward range.
	NodePort uint16
	HTTPS    bool
}

// SpacePorts is what a space listens on and what of it is forwarded.
type SpacePorts struct {
	// Listening is what the space's sockets listen on now; empty and
	// Detected false when the space is not running.
	Listening []ListeningPort
	Detected  bool
	Forwards  []Forward
}

// forwards serialises changes of the forward table and wakes whoever
// serves them.
type forwards struct {
	mu      sync.Mutex
	changed chan struct{}
}

// ForwardsChanged returns a channel closed at the next change of the
// forward table (a forward opened or closed, a space with forwards
// destroyed). The door that serves forwards reads ServedForwards again
// then.
func (s *Service) ForwardsChanged() <-chan struct{} {
	s.fwd.mu.Lock()
	defer s.fwd.mu.Unlock()
	return s.fwd.changed
}

// notifyForwards wakes the waiters of ForwardsChanged; s.fwd.mu is held.
func (s *Service) notifyForwards() {
	close(s.fwd.changed)
	s.fwd.changed = make(chan struct{})
}

// ServedForwards returns every forward of the node, for the door that
// listens on their node ports. It serves no caller: every connection that
// door accepts is decided by ConnectPort.
func (s *Service) ServedForwards(ctx context.Context) ([]Forward, error) {
	return s.cfg.Store.Forwards(ctx)
}

// Ports returns the ports a space listens on (detected from its sockets
// when it runs) and its forwards.
func (s *Service) Ports(ctx context.Context, c Caller, name string) (SpacePorts, error) {
	var out SpacePorts
	if err := s.authorize(ctx, c, name, ActRead); err != nil {
		return out, err
	}
	if err := ValidateName(name); err != nil {
		return out, SpaceNotFound()
	}
	ls, err := s.cfg.Engine.ListeningPorts(ctx, name)
	switch {
	case err == nil:
		out.Listening, out.Detected = ls, true
	case errors.Is(err, ErrNotRunning):
	default:
		return out, err
	}
	all, err := s.cfg.Store.Forwards(ctx)
	if err != nil {
		return out, err
	}
	for _, f := range all {
		if f.Space == name {
			out.Forwards = append(out.Forwards, f)
		}
	}
	return out, nil
}

// validPort checks a TCP port number of a request.
func validPort(p uint16, field Field) error {
	if p == 0 {
		return FieldErrorf(ErrInvalid, field, "must be between 1 and 65535")
	}
	return nil
}

// OpenForward forwards a space's port to a node port (action ports). A
// port already forwarded is returned as it is, with created false.
func (s *Service) OpenForward(ctx context.Context, c Caller, name string, req ForwardRequest) (f Forward, created bool, err error) {
	if err := s.authorize(ctx, c, name, ActPorts); err != nil {
		return f, false, err
	}
	if err := ValidateName(name); err != nil {
		return f, false, SpaceNotFound()
	}
	if err := validPort(req.Port, FieldPort); err != nil {
		return f, false, err
	}
	if slices.Contains(s.cfg.ReservedPorts, req.NodePort) {
		return f, false, FieldErrorf(ErrConflict, FieldNodePort, "%d is the node's own port", req.NodePort)
	}
	if _, err := s.cfg.Engine.Get(ctx, name); err != nil {
		return f, false, err
	}
	s.fwd.mu.Lock()
	defer s.fwd.mu.Unlock()
	all, err := s.cfg.Store.Forwards(ctx)
	if err != nil {
		return f, false, err
	}
	taken := make(map[uint16]bool, len(all))
	for _, o := range all {
		if o.Space == name && o.Port == req.Port {
			if (req.NodePort != 0 && req.NodePort != o.NodePort) || req.HTTPS != o.HTTPS {
				return f, false, Errorf(ErrConflict, "port %d of %s is already forwarded to node port %d (https %v); close it first", o.Port, name, o.NodePort, o.HTTPS)
			}
			return o, false, nil
		}
		taken[o.NodePort] = true
	}
	free := func(p uint16) bool { return p != 0 && !taken[p] && !slices.Contains(s.cfg.ReservedPorts, p) }
	f = Forward{Space: name, Port: req.Port, NodePort: req.NodePort, HTTPS: req.HTTPS, CreatedBy: c.Actor, Created: s.clock.Now().UTC()}
	switch {
	case req.NodePort != 0:
		if !free(req.NodePort) {
			return Forward{}, false, FieldErrorf(ErrConflict, FieldNodePort, "%d is taken by another forward", req.NodePort)
		}
	case req.Port >= 1024 && free(req.Port):
		f.NodePort = req.Port
	default:
		for p := int(s.cfg.ForwardPorts[0]); p <= int(s.cfg.ForwardPorts[1]); p++ {
			if free(uint16(p)) {
				f.NodePort = uint16(p)
				break
			}
		}
		if f.NodePort == 0 {
			return Forward{}, false, Errorf(ErrConflict, "every node port of %d-%d is taken", s.cfg.ForwardPorts[0], s.cfg.ForwardPorts[1])
		}
	}
	if err := s.audit(ctx, c, name, EventPortForward, map[string]any{"port": f.Port, "nodePort": f.NodePort, "https": f.HTTPS}); err != nil {
		return Forward{}, false, err
	}
	if err := s.cfg.Store.AddForward(ctx, f); err != nil {
		return Forward{}, false, err
	}
	s.notifyForwards()
	return f, true, nil
}

// CloseForward stops forwarding a space's port (action ports). Open
// connections through it are ended by the door.
func (s *Service) CloseForward(ctx context.Context, c Caller, name string, port uint16) error {
	if err := s.authorize(ctx, c, name, ActPorts); err != nil {
		return err
	}
	if err := ValidateName(name); err != nil {
		return SpaceNotFound()
	}
	if err := validPort(port, FieldPort); err != nil {
		return err
	}
	s.fwd.mu.Lock()
	defer s.fwd.mu.Unlock()
	all, err := s.cfg.Store.Forwards(ctx)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(all, func(f Forward) bool { return f.Space == name && f.Port == port }) {
		return Errorf(ErrNotFound, "port %d of %s is not forwarded", port, name)
	}
	if err := s.audit(ctx, c, name, EventPortUnforward, map[string]any{"port": port}); err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteForward(ctx, name, port); err != nil {
		return err
	}
	s.notifyForwards()
	return nil
}

// dropForwards removes the forwards of a destroyed space.
func (s *Service) dropForwards(ctx context.Context, name string) {
	s.fwd.mu.Lock()
	defer s.fwd.mu.Unlock()
	if err := s.cfg.Store.DeleteForwards(ctx, name); err != nil {
		s.log.Error("removing the forwards of a destroyed space", "space", name, "err", err)
		return
	}
	s.notifyForwards()
}

// connCounter bounds the open port connections of each space.
type connCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (cc *connCounter) take(name string, max int) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.n == nil {
		cc.n = make(map[string]int)
	}
	if cc.n[name] >= max {
		return false
	}
	cc.n[name]++
	return true
}

func (cc *connCounter) give(name string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.n[name]--; cc.n[name] <= 0 {
		delete(cc.n, name)
	}
}

// ConnectPort opens a TCP connection to port of space name for c (action
// ports), resuming the space first when it is paused or stopped. While the
// connection is open the space counts as busy (auto-sleep leaves it
// alone); closing it records port.connection (port, bytes each way,
// duration) and counts as activity. nodePort, when not 0, is the
// forwarded node port the connection came in on, for the audit row.
func (s *Service) ConnectPort(ctx context.Context, c Caller, name string, port, nodePort uint16) (*PortConn, error) {
	if err := s.authorize(ctx, c, name, ActPorts); err != nil {
		return nil, err
	}
	if err := ValidateName(name); err != nil {
		return nil, SpaceNotFound()
	}
	if err := validPort(port, FieldPort); err != nil {
		return nil, err
	}
	if !s.conns.take(name, s.cfg.MaxPortConns) {
		return nil, Errorf(ErrConflict, "space %s has %d open port connections, the most it may have", name, s.cfg.MaxPortConns)
	}
	opened := s.clock.Now()
	// Busy before the engine is reached, as for a terminal: a pause that
	// races the dial is undone by sleepIfIdle's second look.
	done := s.busy.hold(name)
	var conn net.Conn
	var err error
	err = s.resumingOnce(ctx, name, func() (err error) {
		conn, err = s.cfg.Engine.DialPort(ctx, name, port)
		return err
	})
	if err != nil {
		done()
		s.conns.give(name)
		return nil, err
	}
	return &PortConn{Conn: conn, svc: s, caller: c, name: name, port: port, nodePort: nodePort, opened: opened, release: done}, nil
}

// PortConn is an open connection to a space's port. It counts the bytes
// each way; Close records them.
type PortConn struct {
	net.Conn
	svc      *Service
	caller   Caller
	name     string
	port     uint16
	nodePort uint16
	opened   time.Time
	release  func()

	in, out  atomic.Int64 // bytes written to the space, read from it
	once     sync.Once
	closeErr error
}

func (p *PortConn) Read(b []byte) (int, error) {
	n, err := p.Conn.Read(b)
	p.out.Add(int64(n))
	return n, err
}

func (p *PortConn) Write(b []byte) (int, error) {
	n, err := p.Conn.Write(b)
	p.in.Add(int64(n))
	return n, err
}

// Raw is the connection to the space itself, for a door that moves the
// bytes without reading them (splice(2) between two sockets); it reports
// what it moved with Moved, since Read and Write do not see it.
func (p *PortConn) Raw() net.Conn { return p.Conn }

// Moved adds bytes moved through Raw: in to the space, out from it.
func (p *PortConn) Moved(in, out int64) {
	p.in.Add(in)
	p.out.Add(out)
}

// CloseWrite half-closes the connection (the peer reads EOF) when the
// engine's connection supports it.
func (p *PortConn) CloseWrite() error {
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close ends the connection, records port.connection and ends the busy
// mark. Later calls return the first call's result.
func (p *PortConn) Close() error {
	p.once.Do(func() {
		cerr := p.Conn.Close()
		s := p.svc
		meta := map[string]any{
			"port":       p.port,
			"bytesIn":    p.in.Load(),
			"bytesOut":   p.out.Load(),
			"durationMs": s.clock.Now().Sub(p.opened).Milliseconds(),
		}
		if p.nodePort != 0 {
			meta["nodePort"] = p.nodePort
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		aerr := s.audit(ctx, p.caller, p.name, EventPortConnection, meta)
		s.touch(ctx, p.name)
		p.release()
		s.conns.give(p.name)
		p.closeErr = errors.Join(cerr, aerr)
	})
	return p.closeErr
}
