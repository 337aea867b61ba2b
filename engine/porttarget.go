package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/adam91holt/clawdspace/spaces"
)

// portTarget is how the node reaches one space's ports, cached per space
// name, so that a dial makes no engine call: it reads the cgroup's freezer
// state (one pread) and enters the namespace through a pidfd of the
// space's init process, which fails once that process has ended (the
// space stopped or restarted), and never reaches another process.
type portTarget struct {
	id string
	// pid is the container's init process on this host and proc a pidfd
	// of it; 0 and nil where the node cannot enter its namespaces (why
	// says why).
	pid  int
	proc *os.File
	why  string
	// freezer is the cgroup's freezer state file (freezer.state on cgroup
	// v1, cgroup.freeze on v2); nil when unknown, and then every call
	// inspects.
	freezer *os.File
	// addr is the space's address on its network; invalid when it has none.
	addr netip.Addr
}

// close releases the target's files. Calls that use them meanwhile keep
// them open until they are done (os.File counts its users) and then fail
// as for a process that ended.
func (t *portTarget) close() {
	for _, f := range []*os.File{t.proc, t.freezer} {
		if f != nil {
			f.Close()
		}
	}
}

// frozen reports whether t's cgroup is frozen; known is false when that
// cannot be read (no file, or the cgroup is gone with its container).
func (t *portTarget) frozen() (frozen, known bool) {
	if t.freezer == nil {
		return false, false
	}
	var b [16]byte
	n, err := t.freezer.ReadAt(b[:], 0)
	if n == 0 && err != nil {
		return false, false
	}
	v := strings.TrimSpace(string(b[:n]))
	if strings.HasSuffix(t.freezer.Name(), "cgroup.freeze") {
		return v == "1", true
	}
	return v != "THAWED", true
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

// dropTarget forgets the cached target t of a space (when it is still the
// cached one) and closes it.
func (e *Engine) dropTarget(name string, t *portTarget) {
	if e.targets.CompareAndDelete(name, t) {
		t.close()
	}
}

// forgetTarget forgets whatever target of a space is cached.
func (e *Engine) forgetTarget(name string) {
	if v, ok := e.targets.LoadAndDelete(name); ok {
		v.(*portTarget).close()
	}
}

// notRunning is the error for a space that is paused or stopped: the
// caller resumes it first. Dialing into a frozen space would hang, as its
// kernel completes the handshake for a server that cannot answer.
func notRunning(name, state string) error {
	return &spaces.Error{Kind: spaces.ErrNotRunning, Msg: fmt.Sprintf("Space %s is %s: resume it first", name, state)}
}

// reach finds how to reach a running space: the cached target while its
// cgroup tells it is not frozen, else the target one inspect finds. The
// caller calls done when it no longer uses the target.
func (e *Engine) reach(ctx context.Context, name string) (t *portTarget, done func(), err error) {
	if v, ok := e.targets.Load(name); ok {
		t := v.(*portTarget)
		switch f, known := t.frozen(); {
		case known && f:
			return nil, nil, notRunning(name, "paused")
		case known:
			return t, func() {}, nil
		}
		e.dropTarget(name, t)
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
	t = e.newTarget(c)
	if t.why == whyProcessGone {
		// Stopped (or removed) since the inspect: not a reason to try the
		// space's address or an exec in it, which would fail as a 503.
		t.close()
		return nil, nil, notRunning(name, "stopped")
	}
	// The engine may believe a frozen space running (see frozen).
	if f, _ := t.frozen(); f {
		t.close()
		return nil, nil, notRunning(name, "paused")
	}
	if t.proc == nil || t.freezer == nil {
		// Nothing to check a cached target by: every call inspects.
		return t, t.close, nil
	}
	if old, loaded := e.targets.Swap(name, t); loaded {
		old.(*portTarget).close()
	}
	return t, func() {}, nil
}

// whyProcessGone is a target's reason when the container's process ended
// between the inspect and the node opening it.
const whyProcessGone = "the space's process is gone"

// newTarget makes the target of a running container.
func (e *Engine) newTarget(c container.InspectResponse) *portTarget {
	t := &portTarget{id: c.ID, addr: networkAddr(c), why: e.noNetNS}
	if t.why != "" {
		return t
	}
	pid := c.State.Pid
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case errors.Is(err, unix.ENOSYS):
		t.why = "the kernel has no pidfd (Linux 5.8 or later is needed)"
		return t
	case err != nil:
		t.why = whyProcessGone
		return t
	}
	proc := os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
	// Checked after pidfd_open: where the PID now belongs to another
	// process than the one opened, that one has ended, and entering its
	// namespace fails; otherwise it is the one in the container.
	if !inContainer("/proc", pid, c.ID) {
		proc.Close()
		t.why = "the engine's processes are not visible to the node"
		return t
	}
	t.pid, t.proc = pid, proc
	if procs := e.procsFileOf(c.ID, c.State); procs != "" {
		dir := strings.TrimSuffix(procs, "cgroup.procs")
		for _, name := range []string{"freezer.state", "cgroup.freeze"} {
			if f, err := os.Open(dir + name); err == nil {
				t.freezer = f
				break
			}
		}
	}
	return t
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
