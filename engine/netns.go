package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// A socket belongs for good to the network namespace of the thread that
// created it: connect, accept and every read and write then happen in
// that namespace whichever thread makes them. So only the socket(2) call
// runs in a space's namespace, on a thread locked to a goroutine of its
// own, which goes back to the node's namespace at once. The connect and
// the wait for it run on ordinary threads, through the runtime's poller.

// selfNetNS opens the network namespace of the node's process, where
// threads go back to after creating a socket in a space's. It is the
// calling thread's: /proc/self is the main thread's, which may be the one
// another Engine of this process has in a space's namespace this moment,
// while the caller's thread runs no socketIn.
func selfNetNS() (*os.File, error) {
	return os.Open("/proc/thread-self/ns/net")
}

// socketIn creates a non-blocking TCP socket of family (unix.AF_INET or
// unix.AF_INET6) in the network namespace of ns (see setNetNS).
func (e *Engine) socketIn(ns *os.File, family int) (int, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The goroutine ends locked to its thread when the thread could
		// not go back to the node's namespace: the runtime then ends the
		// thread instead of running other goroutines in a space's network.
		runtime.LockOSThread()
		fd, back, err := socketInLocked(e.selfNS, ns, family)
		if back {
			runtime.UnlockOSThread()
		}
		ch <- result{fd, err}
	}()
	r := <-ch
	return r.fd, r.err
}

// socketInLocked does socketIn's work on a locked thread. back reports
// whether the thread is in the node's namespace when it returns.
func socketInLocked(self, ns *os.File, family int) (fd int, back bool, err error) {
	if err := setNetNS(ns); err != nil {
		// A failed setns leaves the thread where it was.
		return -1, true, fmt.Errorf("entering the space's network namespace: %w", err)
	}
	fd, serr := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	// self's Control holds a reference on its descriptor, so an Engine
	// closed meanwhile cannot make this setns use a reused number: it fails,
	// and the thread is discarded.
	if err := setNetNS(self); err != nil {
		if serr == nil {
			unix.Close(fd)
		}
		return -1, false, fmt.Errorf("going back to the node's network namespace: %v", err)
	}
	if serr != nil {
		return -1, true, fmt.Errorf("creating a socket in the space's network namespace: %w", serr)
	}
	return fd, true, nil
}

// setNetNS moves the calling thread into the network namespace of f: a
// namespace file, or a pidfd (whose process must still run: unix.ESRCH
// otherwise). A closed f gives os.ErrClosed.
func setNetNS(f *os.File) error { return setNS(f, unix.CLONE_NEWNET) }

// setNS moves the calling thread into the namespace of kind nstype (a
// unix.CLONE_NEW* flag) of f, as setNetNS says.
func setNS(f *os.File, nstype int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Setns(int(fd), nstype) }); err != nil {
		// Control fails only for a file closed meanwhile.
		return fmt.Errorf("%w (%w)", os.ErrClosed, err)
	}
	return serr
}

// connectIn connects a TCP socket created in the network namespace of ns
// (see setNetNS) to sa, as seen from inside it. The error is the connect's errno where it
// failed (unix.ECONNREFUSED when nothing listens), or ctx's.
func (e *Engine) connectIn(ctx context.Context, ns *os.File, family int, sa unix.Sockaddr) (net.Conn, error) {
	fd, err := e.socketIn(ns, family)
	if err != nil {
		return nil, err
	}
	// A non-blocking descriptor joins the runtime's poller, so the wait
	// below parks the goroutine and honours a deadline.
	f := os.NewFile(uintptr(fd), "tcp-in-space")
	defer f.Close()
	switch err := unix.Connect(fd, sa); {
	case err == nil:
	case errors.Is(err, unix.EINPROGRESS), errors.Is(err, unix.EINTR), errors.Is(err, unix.EALREADY):
		if err := waitConnected(ctx, f); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	// FileConn works on a duplicate; f's own descriptor closes above.
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("wrapping the connection: %w", err)
	}
	return c, nil
}

// waitConnected waits until the non-blocking connect of f's socket has
// ended, as the net package does: writable, then SO_ERROR, and a peer.
func waitConnected(ctx context.Context, f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	var cerr error
	werr := rc.Write(func(fd uintptr) bool {
		n, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			cerr = err
			return true
		}
		switch errno := unix.Errno(n); errno {
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
			return false
		case 0:
			// Writable with no error may come before the handshake ends.
			_, err := unix.Getpeername(int(fd))
			return err == nil
		default:
			cerr = errno
			return true
		}
	})
	if werr != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return werr
	}
	return cerr
}
