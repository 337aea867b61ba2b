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
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/adam91holt/clawdspace/spaces"
)

// The node reaches a space's ports from inside the space's network
// namespace, where it runs as root on the engine's host (e.selfNS is set):
// DialPort connects to 127.0.0.1 (then ::1) there, so a server that
// listens only on the space's loopback is reached, with or without a
// network; ListeningPorts reads /proc/PID/net/tcp{,6} of the space's init
// process (porttarget.go says how a space is found without an engine call,
// netns.go how a socket is made in its namespace). Elsewhere (not root, a
// remote engine, the engine's processes not visible, a kernel before 5.8,
// or Config.PortsByAddress), DialPort dials the space's address on its network, which
// reaches only servers that listen on all addresses, and ListeningPorts
// reads the tables with an exec in the space.

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
	for retried := false; ; retried = true {
		t, done, err := e.reach(ctx, name)
		if err != nil {
			return nil, err
		}
		c, err := e.dialTarget(ctx, t, name, port)
		done()
		if errors.Is(err, errProcessGone) {
			// The space stopped or restarted since its target was cached:
			// one inspect tells which.
			e.dropTarget(name, t)
			if !retried {
				continue
			}
			return nil, notRunning(name, "stopped")
		}
		return c, err
	}
}

// errProcessGone says that a target's process has ended.
var errProcessGone = errors.New("the space's process has ended")

// dialTarget dials port through t: the space's loopback from inside its
// namespace, or its network address.
func (e *Engine) dialTarget(ctx context.Context, t *portTarget, name string, port uint16) (net.Conn, error) {
	if t.proc != nil {
		c, err := e.connectIn(ctx, t.proc, unix.AF_INET, &unix.SockaddrInet4{Port: int(port), Addr: [4]byte{127, 0, 0, 1}})
		if errors.Is(err, unix.ECONNREFUSED) {
			// A server may listen on the IPv6 loopback only ("localhost"
			// that resolves to ::1 first).
			if c6, err6 := e.connectIn(ctx, t.proc, unix.AF_INET6, &unix.SockaddrInet6{Port: int(port), Addr: netip.IPv6Loopback().As16()}); err6 == nil {
				return c6, nil
			}
		}
		if errors.Is(err, unix.ESRCH) || errors.Is(err, os.ErrClosed) {
			return nil, errProcessGone
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
	var set portSet
	for retried := false; ; retried = true {
		t, done, err := e.reach(ctx, name)
		if err != nil {
			return nil, err
		}
		if t.proc == nil {
			done()
			break
		}
		fs, ok := t.open("net/tcp", "net/tcp6")
		done()
		if !ok {
			e.dropTarget(name, t)
			if !retried {
				continue
			}
			return nil, notRunning(name, "stopped")
		}
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
