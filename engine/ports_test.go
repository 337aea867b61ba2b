package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/adam91holt/clawdspace/engine"
	"github.com/adam91holt/clawdspace/spaces"
)

// These tests run servers in spaces of the real sandbox image (python3;
// `make image` builds it) and reach them through DialPort.

func sandboxImage() string {
	if img := os.Getenv("CLAWDSPACE_IMAGE"); img != "" {
		return img
	}
	return "clawdspace:latest"
}

// portsEngine connects an engine as a node running as root on the
// engine's host has it: egress rules where this machine can write them.
// byAddress makes it dial spaces' addresses instead (Config.PortsByAddress).
func portsEngine(t *testing.T, byAddress bool) *engine.Engine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("these tests need root, as the node on the engine's host has")
	}
	eng, err := engine.New(t.Context(), engine.Config{Egress: !byAddress && engine.EgressSupported() == nil,
		AllowUnenforcedEgress: true, PortsByAddress: byAddress})
	if err != nil {
		t.Fatalf("no Docker engine (run docker/ensure-engine.sh as root): %v", err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// portsSpace creates a space of the sandbox image with network mode mode.
func portsSpace(t *testing.T, e *engine.Engine, base, mode string) string {
	t.Helper()
	name := uniqueName(base)
	cleanup(t, name, e)
	if _, err := e.Create(t.Context(), spaces.ContainerSpec{Name: name, Image: sandboxImage(), MemoryBytes: 256 << 20, CPUs: 1,
		NetworkMode: mode, Template: "ports"}); err != nil {
		t.Fatalf("creating %s from %s (run `make image`): %v", name, sandboxImage(), err)
	}
	return name
}

// serverPy listens on argv[1]:argv[2] and serves each connection by
// argv[3]: "reply" reads until the client's half-close, then answers
// "got N: " and the bytes reversed; "discard" reads until the half-close
// and answers the byte count; "echo" sends back what it reads. Before
// "ready" it listens on argv[2]+1 and closes that socket again.
const serverPy = `
import socket, sys, threading
addr, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
closed = socket.socket(fam); closed.bind((addr, port + 1)); closed.listen(1); closed.close()
s = socket.socket(fam)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port)); s.listen(512)
def serve(c):
    with c:
        if mode == "echo":
            while True:
                b = c.recv(1 << 20)
                if not b: return
                c.sendall(b)
        data, n = [], 0
        while True:
            b = c.recv(1 << 20)
            if not b: break
            n += len(b)
            if mode == "reply": data.append(b)
        if mode == "reply":
            c.sendall(b"got %d: " % n + b"".join(data)[::-1])
        else:
            c.sendall(b"%d\n" % n)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`

// manyPy listens on argv[2] ports from argv[1] on all addresses.
const manyPy = `
import socket, sys, time
first, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for p in range(first, first + n):
    s = socket.socket(); s.bind(("0.0.0.0", p)); s.listen(1); socks.append(s)
print("ready", flush=True)
time.sleep(3600)
`

// serve runs a python3 program in the space until stop (or the test's
// end) and waits until it prints "ready".
func serve(t *testing.T, e *engine.Engine, name, program string, args ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var stderr bytes.Buffer
		code, err := e.Exec(ctx, name, spaces.ExecSpec{Cmd: append([]string{"python3", "-c", program}, args...), Stdout: pw, Stderr: &stderr})
		pw.CloseWithError(fmt.Errorf("server %v exited %d (%v): %s", args, code, err, stderr.String()))
	}()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	br := bufio.NewReader(pr)
	if line, err := br.ReadString('\n'); line != "ready\n" {
		t.Fatalf("server %v in %s: %q, %v", args, name, line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, br) }()
	return stop
}

// roundTrip sends msg, half-closes, and returns everything the server
// answers until it closes.
func roundTrip(c net.Conn, msg string) (string, error) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", fmt.Errorf("writing: %w", err)
	}
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return "", fmt.Errorf("%T has no CloseWrite", c)
	}
	if err := cw.CloseWrite(); err != nil {
		return "", fmt.Errorf("half-closing: %w", err)
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

func reversed(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}

// checkReply dials port and checks the reply server's answer.
func checkReply(t *testing.T, e *engine.Engine, name string, port uint16) {
	t.Helper()
	c, err := e.DialPort(t.Context(), name, port)
	if err != nil {
		t.Fatalf("DialPort %s:%d: %v", name, port, err)
	}
	msg := "hello port " + strconv.Itoa(int(port))
	got, err := roundTrip(c, msg)
	if want := fmt.Sprintf("got %d: %s", len(msg), reversed(msg)); got != want || err != nil {
		t.Fatalf("port %d answered %q, %v; want %q", port, got, err, want)
	}
}

func wantKind(t *testing.T, what string, err, kind error, contains string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("%s: %v, want %v", what, err, kind)
	}
	if msg, _ := spaces.Message(err); !strings.Contains(msg, contains) {
		t.Errorf("%s: message %q does not say %q", what, msg, contains)
	}
}

func listening(t *testing.T, e *engine.Engine, name string) []spaces.ListeningPort {
	t.Helper()
	ports, err := e.ListeningPorts(t.Context(), name)
	if err != nil {
		t.Fatalf("ListeningPorts %s: %v", name, err)
	}
	return ports
}

func lp(port uint16, addr string) spaces.ListeningPort {
	return spaces.ListeningPort{Port: port, Address: addr}
}

// netnsOf returns the network namespace (as readlink shows it) of a
// space's init process, from the raw client.
func netnsOf(t *testing.T, e *engine.Engine, name string) string {
	t.Helper()
	res, err := e.Client().ContainerInspect(t.Context(), e.ContainerName(name), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", res.Container.State.Pid))
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// socketNetNS returns the network namespace a connection's socket belongs
// to (ioctl SIOCGSKNS), as readlink shows it.
func socketNetNS(t *testing.T, c net.Conn) string {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var nsfd int
	var ierr error
	if err := rc.Control(func(fd uintptr) { nsfd, ierr = unix.IoctlRetInt(int(fd), unix.SIOCGSKNS) }); err != nil || ierr != nil {
		t.Fatalf("SIOCGSKNS: %v %v", err, ierr)
	}
	defer unix.Close(nsfd)
	ns, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", nsfd))
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func TestDialPortInSpaceNamespace(t *testing.T) {
	e := portsEngine(t, false)
	for _, mode := range []string{spaces.NetworkNone, spaces.NetworkInternet} {
		t.Run(mode, func(t *testing.T) {
			name := portsSpace(t, e, "dial-"+mode, mode)
			serve(t, e, name, serverPy, "127.0.0.1", "8001", "reply")
			serve(t, e, name, serverPy, "0.0.0.0", "8003", "reply")

			// Loopback only and all addresses: both reached, bytes both
			// ways, and the half-close seen by the server.
			checkReply(t, e, name, 8001)
			checkReply(t, e, name, 8003)

			// The socket is the space's: made in its network namespace.
			c, err := e.DialPort(t.Context(), name, 8001)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := socketNetNS(t, c), netnsOf(t, e, name); got != want {
				t.Errorf("the connection's socket is in %s, the space's namespace is %s", got, want)
			}
			// With a connection open (an established socket in the
			// table), the list is the two listeners: not the sockets
			// closed again (8002, 8004), nor the connection.
			want := []spaces.ListeningPort{lp(8001, "127.0.0.1"), lp(8003, "0.0.0.0")}
			if got := listening(t, e, name); !slices.Equal(got, want) {
				t.Errorf("ListeningPorts = %v, want %v", got, want)
			}
			c.Close()

			_, err = e.DialPort(t.Context(), name, 8002)
			wantKind(t, "dial of a closed port", err, spaces.ErrConflict, "nothing listens on port 8002 in space "+name)
			_, err = e.DialPort(t.Context(), name, 0)
			wantKind(t, "dial of port 0", err, spaces.ErrInvalid, "port 0")
		})
	}
}

// TestDialPortIPv6Loopback: a server on ::1 only is reached too. The
// engine here starts containers with IPv6 off; the test turns it on for
// the space's loopback from inside its namespace.
func TestDialPortIPv6Loopback(t *testing.T) {
	e := portsEngine(t, false)
	name := portsSpace(t, e, "dial6", spaces.NetworkNone)
	res, err := e.Client().ContainerInspect(t.Context(), e.ContainerName(name), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inNetNS(t, res.Container.State.Pid, func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/lo/disable_ipv6", []byte("0"), 0)
	})
	serve(t, e, name, serverPy, "::1", "8001", "reply")
	checkReply(t, e, name, 8001)
	if got, want := listening(t, e, name), []spaces.ListeningPort{lp(8001, "::1")}; !slices.Equal(got, want) {
		t.Errorf("ListeningPorts = %v, want %v", got, want)
	}
}

// inNetNS runs f on a thread in the network namespace of pid, and brings
// the thread back (or leaves it locked, to be discarded).
func inNetNS(t *testing.T, pid int, f func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer self.Close()
		ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		ferr := f()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	if err := <-errc; err != nil {
		t.Fatalf("in the network namespace of %d: %v", pid, err)
	}
}

func TestDialPortStates(t *testing.T) {
	e := portsEngine(t, false)
	ctx := t.Context()
	name := portsSpace(t, e, "dial-states", spaces.NetworkNone)
	serve(t, e, name, serverPy, "127.0.0.1", "8001", "reply")
	checkReply(t, e, name, 8001)

	// Paused: refused (a dial into a frozen space would hang), then
	// reached again once resumed.
	if err := e.Pause(ctx, name); err != nil {
		t.Fatal(err)
	}
	_, err := e.DialPort(ctx, name, 8001)
	wantKind(t, "dial of a paused space", err, spaces.ErrNotRunning, "paused")
	_, err = e.ListeningPorts(ctx, name)
	wantKind(t, "ListeningPorts of a paused space", err, spaces.ErrNotRunning, "paused")
	if err := e.Resume(ctx, name); err != nil {
		t.Fatal(err)
	}
	checkReply(t, e, name, 8001)

	// Stopped, by the engine behind the node's back: refused; started
	// again, the dial reaches the new process's namespace (where nothing
	// listens yet) and its server once there is one.
	if _, err := e.Client().ContainerStop(ctx, e.ContainerName(name), client.ContainerStopOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = e.DialPort(ctx, name, 8001)
	wantKind(t, "dial of a stopped space", err, spaces.ErrNotRunning, "stopped")
	_, err = e.ListeningPorts(ctx, name)
	wantKind(t, "ListeningPorts of a stopped space", err, spaces.ErrNotRunning, "stopped")
	if err := e.Resume(ctx, name); err != nil {
		t.Fatal(err)
	}
	_, err = e.DialPort(ctx, name, 8001)
	wantKind(t, "dial after a restart", err, spaces.ErrConflict, "nothing listens on port 8001")
	if got := listening(t, e, name); len(got) != 0 {
		t.Errorf("ListeningPorts after a restart = %v", got)
	}
	serve(t, e, name, serverPy, "127.0.0.1", "8001", "reply")
	checkReply(t, e, name, 8001)

	// Missing, and another namespace's.
	_, err = e.DialPort(ctx, uniqueName("missing"), 8001)
	wantKind(t, "dial of a missing space", err, spaces.ErrNotFound, "Space not found")
	_, err = e.ListeningPorts(ctx, uniqueName("missing"))
	wantKind(t, "ListeningPorts of a missing space", err, spaces.ErrNotFound, "Space not found")
	_, err = newEngine(t, "t1").DialPort(ctx, name, 8001)
	wantKind(t, "dial from another namespace", err, spaces.ErrNotFound, "Space not found")

	// Removed by the node: its cached target goes with it.
	if err := e.Remove(ctx, name, true); err != nil {
		t.Fatal(err)
	}
	_, err = e.DialPort(ctx, name, 8001)
	wantKind(t, "dial of a removed space", err, spaces.ErrNotFound, "Space not found")
}

// TestDialPortByAddress: a node that cannot enter namespaces dials the
// space's address, which reaches servers on all addresses only, and reads
// the sockets with an exec.
func TestDialPortByAddress(t *testing.T) {
	e := portsEngine(t, true)
	ctx := t.Context()
	name := portsSpace(t, e, "dial-addr", spaces.NetworkInternet)
	serve(t, e, name, serverPy, "127.0.0.1", "8001", "reply")
	serve(t, e, name, serverPy, "0.0.0.0", "8003", "reply")
	checkReply(t, e, name, 8003)
	_, err := e.DialPort(ctx, name, 8001)
	wantKind(t, "dial of a loopback server by address", err, spaces.ErrConflict, "reaches only servers that listen on all addresses")
	want := []spaces.ListeningPort{lp(8001, "127.0.0.1"), lp(8003, "0.0.0.0")}
	if got := listening(t, e, name); !slices.Equal(got, want) {
		t.Errorf("ListeningPorts by exec = %v, want %v", got, want)
	}
	if err := e.Pause(ctx, name); err != nil {
		t.Fatal(err)
	}
	_, err = e.DialPort(ctx, name, 8003)
	wantKind(t, "dial of a paused space", err, spaces.ErrNotRunning, "paused")
	_, err = e.ListeningPorts(ctx, name)
	wantKind(t, "ListeningPorts of a paused space", err, spaces.ErrNotRunning, "paused")

	offline := portsSpace(t, e, "dial-addr-none", spaces.NetworkNone)
	_, err = e.DialPort(ctx, offline, 8003)
	wantKind(t, "dial of a space without network", err, spaces.ErrUnavailable, "has no network")
}

// TestListeningPortsMany: a space with 300 listeners gets the
// MaxListeningPorts lowest, whichever way the node reads them.
func TestListeningPortsMany(t *testing.T) {
	e := portsEngine(t, false)
	name := portsSpace(t, e, "many", spaces.NetworkNone)
	serve(t, e, name, manyPy, "20000", "300")
	byExec := portsEngine(t, true)
	for _, eng := range []*engine.Engine{e, byExec} {
		got := listening(t, eng, name)
		if len(got) != spaces.MaxListeningPorts {
			t.Fatalf("%d ports, want %d", len(got), spaces.MaxListeningPorts)
		}
		for i, p := range got {
			if want := lp(uint16(20000+i), "0.0.0.0"); p != want {
				t.Fatalf("port %d: %v, want %v", i, p, want)
			}
		}
	}
}

// foreignThreads returns the threads of this process whose network
// namespace is not self.
func foreignThreads(self string) []string {
	tasks, _ := os.ReadDir("/proc/self/task")
	var out []string
	for _, task := range tasks {
		ns, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net")
		if err == nil && ns != self {
			out = append(out, task.Name()+" in "+ns)
		}
	}
	return out
}

// TestDialPortConcurrent: 200 dials at once all work, and afterwards no
// thread of the process is left in a space's network namespace.
func TestDialPortConcurrent(t *testing.T) {
	e := portsEngine(t, false)
	name := portsSpace(t, e, "dial-many", spaces.NetworkNone)
	serve(t, e, name, serverPy, "127.0.0.1", "8001", "reply")
	self, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	spaceNS := netnsOf(t, e, name)

	// The check sees a thread that is in a space's namespace.
	res, err := e.Client().ContainerInspect(t.Context(), e.ContainerName(name), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	inNetNS(t, res.Container.State.Pid, func() error {
		seen = foreignThreads(self)
		return nil
	})
	if want := strconv.Itoa(unix.Gettid()); len(seen) == 0 || !strings.Contains(strings.Join(seen, ","), spaceNS) {
		t.Fatalf("the check does not see a thread in the space's namespace (%s): %v (this thread %s)", spaceNS, seen, want)
	}

	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			c, err := e.DialPort(t.Context(), name, 8001)
			if err != nil {
				errs <- fmt.Errorf("dial %d: %w", i, err)
				return
			}
			msg := fmt.Sprintf("dial %d", i)
			got, err := roundTrip(c, msg)
			if want := fmt.Sprintf("got %d: %s", len(msg), reversed(msg)); got != want || err != nil {
				errs <- fmt.Errorf("dial %d: answer %q, %v", i, got, err)
				return
			}
			// The caller's thread is the node's (it may have moved
			// between threads; each is checked below).
			if ns, err := os.Readlink("/proc/thread-self/ns/net"); err != nil || ns != self {
				errs <- fmt.Errorf("dial %d: the caller's thread is in %s (%v)", i, ns, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if left := foreignThreads(self); len(left) > 0 {
		t.Errorf("threads left in another network namespace: %v", left)
	}

	// The process's own loopback still works from every thread it uses.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	errs = make(chan error, n)
	for i := range n {
		wg.Go(func() {
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				errs <- fmt.Errorf("local dial %d: %w", i, err)
				return
			}
			if got, err := roundTrip(c, "local"); got != "local" || err != nil {
				errs <- fmt.Errorf("local dial %d: %q, %v", i, got, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// stuckPy listens on argv[1] with the smallest backlog and never accepts:
// once its queue is full, the kernel drops further handshakes.
const stuckPy = `
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(0)
print("ready", flush=True)
time.sleep(3600)
`

// TestDialPortUnanswered: a dial that the space never answers ends at
// the engine's call timeout with 503, not a hang.
func TestDialPortUnanswered(t *testing.T) {
	e, err := engine.New(t.Context(), engine.Config{CallTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	name := portsSpace(t, e, "dial-stuck", spaces.NetworkNone)
	serve(t, e, name, stuckPy, "8001")
	var err2 error
	for i := 0; i < 8 && err2 == nil; i++ {
		var c net.Conn
		if c, err2 = e.DialPort(t.Context(), name, 8001); err2 == nil {
			defer c.Close()
		}
	}
	wantKind(t, "dial of a full queue", err2, spaces.ErrUnavailable, "did not accept the connection within 3s")
}
