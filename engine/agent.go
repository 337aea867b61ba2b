package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
	"golang.org/x/net/http2"
	"golang.org/x/sys/unix"

	"github.com/adam91holt/clawdspace/agent"
	"github.com/adam91holt/clawdspace/spaces"
)

// The in-space agent (package agent, cmd/clawdspace-agent) runs execs
// without an engine round trip per call. The node listens on a Unix socket
// in a per-space folder of its own (AgentDir/spaces/VOLUME), mounted
// read-only into the space with the agent's binary; the agent dials in and
// serves HTTP/2 on that connection, so the node is the client of every
// stream and follows no path the space controls. Everything the agent says
// is untrusted and bounded (see docs/ARCHITECTURE.md, "The in-space
// agent"); whenever it is missing or misbehaves, the node uses the Engine
// API path and the space's status says why.

// Bounds on what the node reads from an agent and waits for.
const (
	// agentStartWait is how long a start waits for the agent to dial in,
	// and how long an exec waits for a start in progress.
	agentStartWait = 5 * time.Second
	// agentCallTimeout bounds the hello and an exec's answer headers
	// (the agent answers once the process started).
	agentCallTimeout = 10 * time.Second
	// agentMaxStreams bounds the execs in flight through one space's
	// agent; more go the Engine API path.
	agentMaxStreams = 256
	// agentMaxHandshakes bounds the connections a space may have waiting
	// for their hello; more are closed at once.
	agentMaxHandshakes = 4
	// agentMaxHeaderBytes, agentConnWindow and agentStreamWindow bound the
	// answer headers and the output the node buffers per connection and
	// per stream (HTTP/2 flow control stops the agent beyond them).
	agentMaxHeaderBytes = 16 << 10
	agentConnWindow     = 4 << 20
	agentStreamWindow   = 256 << 10
	// agentMaxBackoff bounds the wait between starts of an agent that
	// keeps failing.
	agentMaxBackoff = time.Minute
	// agentStopGrace is how long a stopped exec (timed out, cancelled)
	// waits for its stream to end before the node drops the connection.
	agentStopGrace = 5 * time.Second
	// agentWriteTimeout bounds a write to an agent that stopped reading;
	// agentPingAfter and agentPingTimeout find a connection that went
	// silent.
	agentWriteTimeout = 10 * time.Second
	agentPingAfter    = 30 * time.Second
	agentPingTimeout  = 10 * time.Second
)

// Agent statuses, as Space.Agent reports them.
const (
	agentConnected = "connected"
	agentStarting  = "starting"
	agentIdle      = "not started"
)

// agentSlot is the node's side of one space's agent, keyed by the space's
// volume (which a pooled container keeps when it is renamed).
type agentSlot struct {
	vol, dir string
	// shakes bounds the handshakes in progress; streams the execs.
	shakes, streams chan struct{}

	mu sync.Mutex
	ln *net.UnixListener
	// id is the container the slot serves: only its processes may connect.
	id string
	cc *http2.ClientConn
	// pid is the host PID of the process that made cc (the kernel's word).
	pid int
	// state is the status when cc is nil.
	state    string
	starting bool
	// ready is closed when a start ends (connected or not).
	ready   chan struct{}
	nextTry time.Time
	backoff time.Duration
	// lastLog and quiet rate-limit the slot's log lines: a space may
	// connect and fail as often as it likes.
	lastLog time.Time
	quiet   int
	// refusals counts the execs the agent said it could not start, in a
	// row.
	refusals int
}

// agentInfo is what the node knows of a container's agent mounts.
type agentInfo struct {
	vol     string
	mounted bool
}

// setUpAgent prepares the agent's folders: AgentDir/bin with a copy of the
// binary (renamed into place, so running agents keep theirs), mounted into
// every space, and AgentDir/spaces for the sockets. It returns why the
// agent is off, "" when it is on.
func (e *Engine) setUpAgent(cfg Config) string {
	switch {
	case cfg.AgentPath == "":
		return "no agent binary is configured"
	case cfg.AgentDir == "":
		return "no agent folder is configured"
	case !strings.HasPrefix(e.c.DaemonHost(), "unix://"):
		return "the engine is not on the node's host"
	case os.Geteuid() != 0:
		return "the node is not running as root"
	}
	bin, err := os.ReadFile(cfg.AgentPath)
	if err != nil {
		e.log.Warn("the in-space agent is off: its binary cannot be read", "path", cfg.AgentPath, "err", err)
		return "its binary cannot be read"
	}
	// The top folder keeps the host's other users out; the space's own
	// folders are reached only through their mounts.
	if err := os.MkdirAll(cfg.AgentDir, 0o700); err != nil {
		return "its folder cannot be made"
	}
	for _, d := range []string{"bin", "spaces"} {
		if err := os.MkdirAll(filepath.Join(cfg.AgentDir, d), 0o755); err != nil {
			return "its folder cannot be made"
		}
	}
	dst := filepath.Join(cfg.AgentDir, "bin", agent.BinName)
	if old, err := os.ReadFile(dst); err != nil || string(old) != string(bin) {
		tmp := dst + ".new"
		if err := os.WriteFile(tmp, bin, 0o755); err != nil {
			return "its binary cannot be installed"
		}
		if err := os.Rename(tmp, dst); err != nil {
			os.Remove(tmp)
			return "its binary cannot be installed"
		}
	}
	e.agentDir = cfg.AgentDir
	t1 := &http.Transport{HTTP2: &http.HTTP2Config{
		MaxReceiveBufferPerConnection: agentConnWindow,
		MaxReceiveBufferPerStream:     agentStreamWindow,
	}}
	t2, err := http2.ConfigureTransports(t1)
	if err != nil {
		return "its transport cannot be set up"
	}
	t2.MaxHeaderListSize = agentMaxHeaderBytes
	t2.MaxDecoderHeaderTableSize = 4 << 10
	// An agent that stops reading must not hold a write (and with it the
	// connection's other streams and the exec's end) for ever.
	t2.WriteByteTimeout = agentWriteTimeout
	t2.ReadIdleTimeout, t2.PingTimeout = agentPingAfter, agentPingTimeout
	e.h2 = t2
	return ""
}

// agentMounts returns the mounts of the agent for a space with volume vol,
// making its socket folder; none when the agent is off.
func (e *Engine) agentMounts(vol string) []mount.Mount {
	dir, ok := e.agentSpaceDir(vol)
	if !ok {
		return nil
	}
	if err := makeAgentDir(dir); err != nil {
		e.log.Warn("no agent for a space: its folder cannot be made", "volume", vol, "err", err)
		return nil
	}
	return []mount.Mount{
		{Type: mount.TypeBind, Source: dir, Target: agent.RunDir, ReadOnly: true},
		{Type: mount.TypeBind, Source: filepath.Join(e.agentDir, "bin"), Target: agent.BinDir, ReadOnly: true},
	}
}

// withoutAgentMounts drops the agent's mounts from a container's mounts.
func withoutAgentMounts(ms []mount.Mount) []mount.Mount {
	return slices.DeleteFunc(ms, func(m mount.Mount) bool { return m.Target == agent.RunDir || m.Target == agent.BinDir })
}

// makeAgentDir makes a socket folder, and refuses one that is not a plain
// folder of root's (a symlink would send the bind mount elsewhere).
func makeAgentDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || !ok || st.Uid != 0 {
		return fmt.Errorf("%s is not a folder of root's", dir)
	}
	return nil
}

// agentSpaceDir is the socket folder of a volume.
func (e *Engine) agentSpaceDir(vol string) (string, bool) {
	if e.agentDir == "" || vol == "" || len(vol) > 200 || filepath.Base(vol) != vol || strings.HasPrefix(vol, ".") {
		return "", false
	}
	return filepath.Join(e.agentDir, "spaces", vol), true
}

// ensureAgentDir remakes the socket folder of a container that mounts it
// before the container starts (the engine refuses to start a container
// whose bind source is missing).
func (e *Engine) ensureAgentDir(c container.InspectResponse) {
	for _, m := range c.Mounts {
		if m.Destination == agent.RunDir && m.Source != "" && e.agentDir != "" &&
			strings.HasPrefix(m.Source, filepath.Join(e.agentDir, "spaces")+"/") {
			if err := makeAgentDir(m.Source); err != nil {
				e.log.Warn("a space's agent folder is not the node's", "folder", m.Source, "err", err)
			}
		}
		if m.Destination == agent.BinDir && m.Source == filepath.Join(e.agentDir, "bin") {
			_ = os.MkdirAll(m.Source, 0o755)
		}
	}
}

// agentInfoOf returns what the node knows of a container's agent, from
// one inspect per container.
func (e *Engine) agentInfoOf(ctx context.Context, id string) (agentInfo, bool) {
	if v, ok := e.agentInfos.Load(id); ok {
		return v.(agentInfo), true
	}
	ctx, cancel := context.WithTimeout(ctx, e.callTimeout)
	defer cancel()
	res, err := e.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil || res.Container.Config == nil {
		return agentInfo{}, false
	}
	info := e.agentInfoFrom(res.Container.Config.Labels, res.Container.Mounts)
	e.agentInfos.Store(id, info)
	return info, true
}

// agentInfoFrom tells from a container's labels and mounts whether it
// mounts this node's socket folder of its volume.
func (e *Engine) agentInfoFrom(labels map[string]string, mounts []container.MountPoint) agentInfo {
	info := agentInfo{vol: labels[spaces.LabelVolume]}
	dir, ok := e.agentSpaceDir(info.vol)
	for _, m := range mounts {
		if ok && m.Destination == agent.RunDir && m.Source == dir {
			info.mounted = true
		}
	}
	return info
}

// agentStatus is a space's agent status for Space.Agent.
func (e *Engine) agentStatus(labels map[string]string, mounts []container.MountPoint) string {
	if e.agentOff != "" {
		return "off: " + e.agentOff
	}
	info := e.agentInfoFrom(labels, mounts)
	if !info.mounted {
		return "off: the space was made without the agent's mounts"
	}
	v, ok := e.agentSlots.Load(info.vol)
	if !ok {
		return agentIdle
	}
	s := v.(*agentSlot)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.cc != nil && !s.cc.State().Closed:
		return agentConnected
	case s.starting:
		return agentStarting
	case s.cc != nil:
		return "fallback: the agent's connection was lost"
	}
	return s.state
}

// slot returns the slot of a volume, listening on its socket.
func (e *Engine) slot(vol string) (*agentSlot, error) {
	if v, ok := e.agentSlots.Load(vol); ok {
		return v.(*agentSlot), nil
	}
	dir, ok := e.agentSpaceDir(vol)
	if !ok {
		return nil, errors.New("no agent folder for the space")
	}
	s := &agentSlot{vol: vol, dir: dir, state: agentIdle, backoff: time.Second,
		shakes: make(chan struct{}, agentMaxHandshakes), streams: make(chan struct{}, agentMaxStreams)}
	e.agentMu.Lock()
	defer e.agentMu.Unlock()
	if v, ok := e.agentSlots.Load(vol); ok {
		return v.(*agentSlot), nil
	}
	ln, err := listenIn(dir, agent.SocketName)
	if err != nil {
		return nil, err
	}
	s.ln = ln
	e.agentSlots.Store(vol, s)
	go e.acceptAgents(s)
	return s, nil
}

// listenIn listens on a Unix socket named name in dir, replacing a socket
// left by an earlier run. A long dir (sun_path holds 108 bytes) is reached
// through /proc/self/fd of a descriptor of it.
func listenIn(dir, name string) (*net.UnixListener, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, name)
	_ = os.Remove(path)
	addr := path
	if len(addr) > 100 {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("opening the agent's folder: %w", err)
		}
		defer unix.Close(fd)
		addr = "/proc/self/fd/" + strconv.Itoa(fd) + "/" + name
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening for the agent: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	// The space's user connects to it.
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// acceptAgents takes the connections of one space until its listener
// closes. Whoever in the space connects speaks for the space; only
// processes of the slot's container may, as the kernel tells (SO_PEERCRED).
func (e *Engine) acceptAgents(s *agentSlot) {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		select {
		case s.shakes <- struct{}{}:
			go func() {
				defer func() { <-s.shakes }()
				e.handshake(s, c)
			}()
		default:
			c.Close()
		}
	}
}

// handshake checks who connected and which version it speaks, and makes
// the connection the slot's.
func (e *Engine) handshake(s *agentSlot, c *net.UnixConn) {
	s.mu.Lock()
	id := s.id
	s.mu.Unlock()
	pid := peerPID(c)
	if pid <= 0 || id == "" || !inContainer("/proc", pid, id) {
		if n, ok := s.logTurn(); ok {
			e.log.Warn("refused a connection to a space's agent socket from outside the space", "volume", s.vol, "pid", pid, "alsoSuppressed", n)
		}
		c.Close()
		return
	}
	// A peer that neither reads nor answers is dropped at the deadline.
	_ = c.SetDeadline(time.Now().Add(agentCallTimeout))
	cc, err := e.h2.NewClientConn(c)
	if err != nil {
		c.Close()
		s.refused(e, "the agent's connection failed")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), agentCallTimeout)
	defer cancel()
	var hello agent.Hello
	err = agentCall(ctx, cc, "GET", "/hello", 4<<10, &hello)
	switch {
	case err != nil:
		cc.Close()
		s.refused(e, "the agent did not answer its hello")
		return
	case hello.Version != agent.Version:
		cc.Close()
		s.refused(e, "the agent speaks "+printable(hello.Version, 64)+", not "+agent.Version)
		return
	}
	_ = c.SetDeadline(time.Time{})
	s.mu.Lock()
	if s.id != id {
		// The slot serves another container since the check (a restore,
		// a new create): this connection speaks for the old one.
		s.mu.Unlock()
		cc.Close()
		return
	}
	old := s.cc
	s.cc, s.state, s.pid = cc, agentConnected, pid
	if s.starting {
		s.starting = false
		close(s.ready)
	}
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// agentCall makes a call without a stream and decodes its JSON answer, at
// most limit bytes.
func agentCall(ctx context.Context, cc *http2.ClientConn, method, path string, limit int64, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, nil)
	if err != nil {
		return err
	}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("agent answered %d", resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, limit)).Decode(v)
}

// failed records that the agent misbehaved: its connection is dropped, and
// the next start waits longer.
func (s *agentSlot) failed(e *Engine, reason string) {
	s.mu.Lock()
	cc := s.cc
	s.cc, s.state = nil, "fallback: "+reason
	s.nextTry = time.Now().Add(s.backoff)
	s.backoff = min(2*s.backoff, agentMaxBackoff)
	if s.starting {
		s.starting = false
		close(s.ready)
	}
	s.mu.Unlock()
	if cc != nil {
		cc.Close()
	}
	if n, ok := s.logTurn(); ok {
		e.log.Info("a space's agent fell back to the Engine API", "volume", s.vol, "reason", reason, "alsoSuppressed", n)
	}
}

// refused records a connection that failed its handshake. A working
// connection stays (another process of the space connected, and speaks
// only for the space); without one, the agent has failed.
func (s *agentSlot) refused(e *Engine, reason string) {
	s.mu.Lock()
	working := s.cc != nil && s.cc.CanTakeNewRequest()
	s.mu.Unlock()
	if working {
		if n, ok := s.logTurn(); ok {
			e.log.Info("refused a connection to a space's agent socket", "volume", s.vol, "reason", reason, "alsoSuppressed", n)
		}
		return
	}
	s.failed(e, reason)
}

// logTurn reports whether the slot may log now (one line a second), and
// how many lines it held back since the last.
func (s *agentSlot) logTurn() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := time.Now(); now.Sub(s.lastLog) >= time.Second {
		n := s.quiet
		s.lastLog, s.quiet = now, 0
		return n, true
	}
	s.quiet++
	return 0, false
}

// agentMaxRefusals is how many execs in a row the agent may refuse to
// start (each costs the node a kill's walk of /proc) before it is dropped.
const agentMaxRefusals = 8

// notStarted counts an exec the agent could not start, and reports
// whether it has refused too many in a row.
func (s *agentSlot) notStarted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refusals++
	return s.refusals >= agentMaxRefusals
}

// succeeded resets the backoff after an exec went through the agent.
func (s *agentSlot) succeeded() {
	s.mu.Lock()
	s.backoff, s.refusals = time.Second, 0
	s.mu.Unlock()
}

// agentFor returns the connection to the agent of a running container, or
// nil when the call should go the Engine API path. It starts the agent
// when it is not connected (within the backoff), and waits for a start in
// progress.
func (e *Engine) agentFor(ctx context.Context, id string) (*agentSlot, *http2.ClientConn) {
	if e.agentDir == "" {
		return nil, nil
	}
	info, ok := e.agentInfoOf(ctx, id)
	if !ok || !info.mounted {
		return nil, nil
	}
	file := e.procsFile(ctx, id)
	if f, known := frozen(file); f || !known {
		return nil, nil // paused (the Engine API path says so), or not visible
	}
	s, err := e.slot(info.vol)
	if err != nil {
		return nil, nil
	}
	s.mu.Lock()
	if s.id != id {
		// Another container of the volume (a restore, a new create): the
		// old one's connection is not this one's.
		s.id = id
		if s.cc != nil {
			s.cc.Close()
			s.cc = nil
		}
		s.nextTry = time.Time{}
	}
	if s.cc != nil && s.cc.CanTakeNewRequest() {
		cc := s.cc
		s.mu.Unlock()
		return s, cc
	}
	if s.cc != nil && busy(s.cc) {
		// Every stream the agent allows is in use: this exec goes the
		// Engine API path, the others keep their connection.
		s.mu.Unlock()
		return nil, nil
	}
	if s.cc != nil {
		// A connection that refuses new streams (GOAWAY, no streams
		// allowed) is a failure like any: the next start waits.
		s.cc.Close()
		s.cc, s.state = nil, "fallback: the agent's connection was lost"
		s.nextTry = time.Now().Add(s.backoff)
		s.backoff = min(2*s.backoff, agentMaxBackoff)
	}
	if !s.starting && !time.Now().Before(s.nextTry) {
		s.starting, s.ready, s.state = true, make(chan struct{}), agentStarting
		go e.startAgent(s, id, s.ready)
	}
	ready, starting := s.ready, s.starting
	s.mu.Unlock()
	if !starting {
		return nil, nil
	}
	t := time.NewTimer(agentStartWait)
	defer t.Stop()
	select {
	case <-ready:
	case <-t.C:
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cc != nil && s.cc.CanTakeNewRequest() {
		return s, s.cc
	}
	return nil, nil
}

// agentPID is the host PID of the process connected as a container's
// agent; 0 when none is.
func (e *Engine) agentPID(ctx context.Context, id string) int {
	info, ok := e.agentInfoOf(ctx, id)
	if !ok || !info.mounted {
		return 0
	}
	v, ok := e.agentSlots.Load(info.vol)
	if !ok {
		return 0
	}
	s := v.(*agentSlot)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id != id || s.cc == nil || s.cc.State().Closed {
		return 0
	}
	return s.pid
}

// busy reports whether a working connection has as many streams as its
// agent allows (a limit of none is not busy: it refuses everything).
func busy(cc *http2.ClientConn) bool {
	st := cc.State()
	return !st.Closed && !st.Closing && st.MaxConcurrentStreams > 0 &&
		st.StreamsActive+st.StreamsReserved+st.StreamsPending >= int(st.MaxConcurrentStreams)
}

// startAgentOf records what the node just made a container with (its
// volume, whether the agent's folders are mounted) and starts its agent,
// waiting for it to connect within agentStartWait.
func (e *Engine) startAgentOf(ctx context.Context, id, vol string, host *container.HostConfig) {
	e.agentInfos.Store(id, agentInfo{vol: vol, mounted: len(host.Mounts) > 1})
	e.agentFor(ctx, id)
}

// startAgent starts the agent in a container with one detached exec as
// the space's user, and waits for it to connect.
func (e *Engine) startAgent(s *agentSlot, id string, ready chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), agentStartWait)
	defer cancel()
	err := e.execDetached(ctx, id, []string{agent.BinPath, agent.SocketPath}, ready)
	if err == nil {
		select {
		case <-ready:
			return
		case <-ctx.Done():
			err = errors.New("the agent did not connect")
		}
	}
	s.mu.Lock()
	mine := s.starting && s.ready == ready
	s.mu.Unlock()
	if mine {
		s.failed(e, "starting the agent: "+printable(err.Error(), 120))
	}
}

// execDetached starts a process in a container without attaching to it.
// Like every exec it holds the container's gate until its process runs
// (or ready closes, which proves it), so no pause freezes runc's init.
func (e *Engine) execDetached(ctx context.Context, id string, cmd []string, ready <-chan struct{}) error {
	unlock, err := e.gates.rlock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	if err := e.checkThawed(ctx, id); err != nil {
		return err
	}
	cr, err := e.c.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: cmd})
	if err != nil {
		return err
	}
	if _, err := e.c.ExecStart(ctx, cr.ID, client.ExecStartOptions{Detach: true}); err != nil {
		return err
	}
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		t := time.NewTimer(delay)
		select {
		case <-ready:
			t.Stop()
			return nil
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if e.execStarted(id, cr.ID) {
			return nil
		}
	}
}

// closeAgents stops listening for every space's agent.
func (e *Engine) closeAgents() {
	e.agentSlots.Range(func(k, v any) bool {
		e.dropSlot(k.(string))
		return true
	})
}

// dropSlot stops listening for a volume's agent and closes its connection.
func (e *Engine) dropSlot(vol string) {
	v, ok := e.agentSlots.LoadAndDelete(vol)
	if !ok {
		return
	}
	s := v.(*agentSlot)
	s.ln.Close()
	s.mu.Lock()
	if s.cc != nil {
		s.cc.Close()
		s.cc = nil
	}
	s.mu.Unlock()
}

// forgetAgent drops what the node holds of a volume's agent; with
// removeDir, its socket folder too (the volume is gone).
func (e *Engine) forgetAgent(vol string, removeDir bool) {
	if vol == "" {
		return
	}
	e.dropSlot(vol)
	if dir, ok := e.agentSpaceDir(vol); ok && removeDir {
		_ = os.RemoveAll(dir)
	}
}

// peerPID is the PID (in the node's namespace) of the process that
// connected, from the kernel; 0 when unknown.
func peerPID(c *net.UnixConn) int {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	pid := 0
	_ = raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid
}

// printable bounds a string an agent sent to n bytes of printable ASCII,
// for statuses and logs.
func printable(s string, n int) string {
	b := make([]byte, 0, min(len(s), n))
	for i := 0; i < len(s) && len(b) < n; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			b = append(b, c)
		} else {
			b = append(b, '?')
		}
	}
	return string(b)
}
