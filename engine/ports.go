package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/adam91holt/clawdspace/spaces"
)

// The node reaches a space's ports from inside the space's network
// namespace, where it runs as root on the engine's host (e.selfNS is set):
// DialPort connects to 127.0.0.1 (then ::1) there, so a server that
// listens only on the space's loopback is reached, with or without a
// network; ListeningPorts reads /proc/PID/net/tcp{,6} of the space's init
// process. Elsewhere (not root, a remote engine, or the engine's processes
// not visible), DialPort dials the space's address on its network, which
// reaches only servers that listen on all addresses, and ListeningPorts
// reads the tables with an exec in the space.

// portTarget is how the node reaches one space's ports, cached per space
// name so that a dial is two /proc reads and no engine call.
type portTarget struct {
	id string
	// pid is the container's init process on this host, 0 where the node
	// cannot enter its namespaces; procs its cgroup.procs file, for frozen.
	pid   int
	procs string
	// addr is the space's address on its network; invalid when it has none.
	addr netip.Addr
	// why says why the node cannot enter the namespace (pid 0).
	why string
}

// open opens files under /proc/PID/ of t's process, the first required,
// the others optional (nil when missing), then checks that the process
// still runs in t's container. The check comes after the opens, so what
// was opened belongs to that process: a PID is reused only after its
// process ended, and a container's init ends only with the container.
// ok is false when the process has gone.
func (t *portTarget) open(files ...string) (fs []*os.File, ok bool) {
	base := "/proc/" + strconv.Itoa(t.pid) + "/"
	fs = make([]*os.File, len(files))
	for i, name := range files {
		f, err := os.Open(base + name)
		if err != nil && i == 0 {
			return nil, false
		}
		if err == nil {
			fs[i] = f
		}
	}
	if !inContainer("/proc", t.pid, t.id) {
		closeAll(fs)
		return nil, false
	}
	return fs, true
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// notRunning is the error for a space that is paused or stopped: the
// caller resumes it first. Dialing into a frozen space would hang, as its
// kernel completes the handshake for a server that cannot answer.
func notRunning(name, state string) error {
	return &spaces.Error{Kind: spaces.ErrNotRunning, Msg: fmt.Sprintf("Space %s is %s: resume it first", name, state)}
}

// reach finds how to reach a running space. Where the node can enter the
// space's namespaces it also opens files (see portTarget.open) of its
// init process and returns them. The cached target serves while its
// process still runs in its container and the cgroup tells it is not
// frozen; otherwise one inspect decides.
func (e *Engine) reach(ctx context.Context, name string, files ...string) (*portTarget, []*os.File, error) {
	if v, ok := e.targets.Load(name); ok {
		t := v.(*portTarget)
		if t.pid > 0 {
			if fs, ok := t.open(files...); ok {
				switch f, known := frozen(t.procs); {
				case known && f:
					closeAll(fs)
					return nil, nil, notRunning(name, "paused")
				case known:
					return t, fs, nil
				}
				closeAll(fs)
			}
		}
		e.targets.CompareAndDelete(name, t)
	}
	c, err := e.inspectSpace(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	st := c.State
	switch {
	case st == nil || !st.Running:
		return nil, nil, notRunning(name, "stopped")
	case st.Paused:
		return nil, nil, notRunning(name, "paused")
	}
	t := &portTarget{id: c.ID, addr: networkAddr(c), why: e.noNetNS}
	if t.why == "" {
		if st.Pid > 0 && inContainer("/proc", st.Pid, c.ID) {
			t.pid, t.procs = st.Pid, e.procsFileOf(c.ID, st)
		} else {
			t.why = "the engine's processes are not visible to the node"
		}
	}
	if t.pid == 0 {
		// Nothing to check a cached target by: every call inspects.
		return t, nil, nil
	}
	e.targets.Store(name, t)
	fs, ok := t.open(files...)
	if !ok {
		return nil, nil, notRunning(name, "stopped")
	}
	// The engine may believe a frozen space running (see frozen).
	if f, _ := frozen(t.procs); f {
		closeAll(fs)
		return nil, nil, notRunning(name, "paused")
	}
	return t, fs, nil
}

// networkAddr is a container's address on its network (IPv4 first), or
// the zero Addr when it has none.
func networkAddr(c container.InspectResponse) netip.Addr {
	if c.HostConfig != nil && c.HostConfig.NetworkMode == "none" || c.NetworkSettings == nil {
		return netip.Addr{}
	}
	var v6 netip.Addr
	for _, nw := range c.NetworkSettings.Networks {
		if nw == nil {
			continue
		}
		if nw.IPAddress.IsValid() {
			return nw.IPAddress.Unmap()
		}
		if nw.GlobalIPv6Address.IsValid() && !v6.IsValid() {
			v6 = nw.GlobalIPv6Address
		}
	}
	return v6
}

// errPortSlow is the cause of DialPort's own deadline.
var errPortSlow = errors.New("the space's port did not answer in time")

// DialPort connects to TCP port of a running space as seen from inside
// it (see the top of this file). It takes at most the engine's call
// timeout: a space may leave a connection unanswered.
func (e *Engine) DialPort(ctx context.Context, name string, port uint16) (net.Conn, error) {
	if port == 0 {
		return nil, spaces.Errorf(spaces.ErrInvalid, "port 0 is not a port: use 1 to 65535")
	}
	ctx, cancel := context.WithTimeoutCause(ctx, e.callTimeout, errPortSlow)
	defer cancel()
	t, fs, err := e.reach(ctx, name, "ns/net")
	if err != nil {
		return nil, err
	}
	if fs != nil {
		defer closeAll(fs)
		c, err := e.connectIn(ctx, fs[0], unix.AF_INET, &unix.SockaddrInet4{Port: int(port), Addr: [4]byte{127, 0, 0, 1}})
		if errors.Is(err, unix.ECONNREFUSED) {
			// A server may listen on the IPv6 loopback only ("localhost"
			// that resolves to ::1 first).
			if c6, err6 := e.connectIn(ctx, fs[0], unix.AF_INET6, &unix.SockaddrInet6{Port: int(port), Addr: netip.IPv6Loopback().As16()}); err6 == nil {
				return c6, nil
			}
		}
		return c, e.dialErr(ctx, err, name, port, "")
	}
	if !t.addr.IsValid() {
		return nil, spaces.Errorf(spaces.ErrUnavailable, "Space %s has no network, and this node cannot enter its network namespace (%s; it must run as root on the engine's host)", name, t.why)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(t.addr, port).String())
	return c, e.dialErr(ctx, err, name, port, t.why)
}

// dialErr maps a failed dial to a domain error. why, when set, says why
// the node dialed the space's network address instead of its loopback.
func (e *Engine) dialErr(ctx context.Context, err error, name string, port uint16, why string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ECONNREFUSED) && why != "":
		return spaces.Errorf(spaces.ErrConflict, "nothing listens on port %d in space %s on its network address "+
			"(this node cannot enter the space's network namespace, %s, so it reaches only servers that listen on all addresses)", port, name, why)
	case errors.Is(err, syscall.ECONNREFUSED):
		return spaces.Errorf(spaces.ErrConflict, "nothing listens on port %d in space %s", port, name)
	case errors.Is(context.Cause(ctx), errPortSlow):
		return spaces.Errorf(spaces.ErrUnavailable, "port %d in space %s did not accept the connection within %s", port, name, e.callTimeout)
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.EADDRNOTAVAIL):
		return spaces.Errorf(spaces.ErrUnavailable, "the node cannot reach port %d in space %s: %v", port, name, errors.Unwrap(err))
	}
	return fmt.Errorf("connecting to port %d in space %s: %w", port, name, err)
}

// ListeningPorts returns the TCP ports a running space listens on.
func (e *Engine) ListeningPorts(ctx context.Context, name string) ([]spaces.ListeningPort, error) {
	_, fs, err := e.reach(ctx, name, "net/tcp", "net/tcp6")
	if err != nil {
		return nil, err
	}
	var set portSet
	if fs != nil {
		defer closeAll(fs)
		for _, f := range fs {
			if f == nil {
				continue
			}
			if err := parseProcNetTCP(f, maxProcNetBytes, &set); err != nil {
				return nil, fmt.Errorf("reading the space's sockets: %w", err)
			}
		}
		return set.result(), nil
	}
	// The space's own view, through its /proc; what it prints is bounded
	// and parsed like any hostile text.
	ctx, cancel := context.WithTimeout(ctx, e.callTimeout)
	defer cancel()
	out := &boundedBuffer{max: 2 * maxProcNetBytes}
	code, err := e.Exec(ctx, name, spaces.ExecSpec{Cmd: []string{"cat", "/proc/net/tcp", "/proc/net/tcp6"}, Stdout: out})
	if err != nil {
		return nil, err
	}
	// cat exits 1 where the kernel has no IPv6 but still prints the rest;
	// without a table's header nothing was read (the image may have no cat).
	if code != 0 && !bytes.Contains(out.b, []byte("local_address")) {
		return nil, spaces.Errorf(spaces.ErrUnavailable, "cannot read the sockets of space %s: cat /proc/net/tcp in it exited %d", name, code)
	}
	if err := parseProcNetTCP(out, int64(len(out.b)), &set); err != nil {
		return nil, fmt.Errorf("reading the space's sockets: %w", err)
	}
	return set.result(), nil
}

// boundedBuffer keeps the first max bytes written to it and drops the
// rest, so a process that prints without end cannot fill the node's memory
// (nor fail the exec's copy).
type boundedBuffer struct {
	b   []byte
	max int
	off int
}

func (w *boundedBuffer) Write(p []byte) (int, error) {
	if room := w.max - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (w *boundedBuffer) Read(p []byte) (int, error) {
	if w.off >= len(w.b) {
		return 0, io.EOF
	}
	n := copy(p, w.b[w.off:])
	w.off += n
	return n, nil
}
