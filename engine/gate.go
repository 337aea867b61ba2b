package engine

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
)

// gateMap holds one gate per container: execs that are starting hold it
// shared, a pause holds it exclusively (see Pause). Engine 20.10 hangs for
// good when a container is frozen while an exec's process is still runc's
// init (created, started, but not yet running the command), and with it
// every later exec and inspect of that container.
type gateMap struct {
	mu sync.Mutex
	m  map[string]*gate
}

// gate is a reader-writer lock whose waits end with their context. A
// waiting writer keeps new readers out, so a stream of execs cannot
// starve a pause.
type gate struct {
	mu      sync.Mutex
	readers int
	writer  bool
	waiting int
	// changed is closed (and replaced) whenever the gate opens a little.
	changed chan struct{}
	refs    int
}

func (g *gate) broadcastLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

func (g *gateMap) get(id string) *gate {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = make(map[string]*gate)
	}
	x := g.m[id]
	if x == nil {
		x = &gate{changed: make(chan struct{})}
		g.m[id] = x
	}
	x.refs++
	return x
}

func (g *gateMap) put(id string, x *gate) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if x.refs--; x.refs == 0 {
		delete(g.m, id)
	}
}

// rlock takes the gate of a container shared, waiting while a pause holds
// it or waits for it; it fails only when ctx ends first.
func (g *gateMap) rlock(ctx context.Context, id string) (unlock func(), err error) {
	x := g.get(id)
	for {
		x.mu.Lock()
		if !x.writer && x.waiting == 0 {
			x.readers++
			x.mu.Unlock()
			return sync.OnceFunc(func() {
				x.mu.Lock()
				if x.readers--; x.readers == 0 {
					x.broadcastLocked()
				}
				x.mu.Unlock()
				g.put(id, x)
			}), nil
		}
		ch := x.changed
		x.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			g.put(id, x)
			return nil, context.Cause(ctx)
		}
	}
}

// lock takes the gate of a container exclusively, once every exec that
// holds it shared has let go; it fails when ctx ends first.
func (g *gateMap) lock(ctx context.Context, id string) (unlock func(), err error) {
	x := g.get(id)
	x.mu.Lock()
	x.waiting++
	for x.writer || x.readers > 0 {
		ch := x.changed
		x.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			x.mu.Lock()
			x.waiting--
			x.broadcastLocked()
			x.mu.Unlock()
			g.put(id, x)
			return nil, context.Cause(ctx)
		}
		x.mu.Lock()
	}
	x.waiting--
	x.writer = true
	x.mu.Unlock()
	return sync.OnceFunc(func() {
		x.mu.Lock()
		x.writer = false
		x.broadcastLocked()
		x.mu.Unlock()
		g.put(id, x)
	}), nil
}

// isRuncInit reports whether a process name is runc's, i.e. the process
// is still runc's init setting up an exec and has not yet run the command
// ("runc:[2:INIT]" and its earlier stages; plain "runc" before nsexec
// renames it).
func isRuncInit(comm string) bool {
	return comm == "runc" || strings.HasPrefix(comm, "runc:[")
}

// procComm reads the name of a process; ok is false when it is gone.
func procComm(proc string, pid int) (comm string, ok bool) {
	b, err := os.ReadFile(proc + "/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// runcInits returns the PIDs listed in a cgroup.procs file whose process
// is still runc's init.
func runcInits(proc, procsFile string) ([]int, error) {
	b, err := os.ReadFile(procsFile)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if comm, ok := procComm(proc, pid); ok && isRuncInit(comm) {
			out = append(out, pid)
		}
	}
	return out, nil
}

// cgroupProcsFile finds the cgroup.procs file of the freezer cgroup
// (cgroup v1) or the unified cgroup (v2) of a process, from its
// /proc/PID/cgroup; "" when it cannot be read.
func cgroupProcsFile(proc, sysfs string, pid int) string {
	b, err := os.ReadFile(proc + "/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return ""
	}
	var unified string
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "freezer" {
				return sysfs + "/freezer" + parts[2] + "/cgroup.procs"
			}
		}
	}
	if unified != "" {
		return sysfs + unified + "/cgroup.procs"
	}
	return ""
}

// frozen reports whether the cgroup whose cgroup.procs file is procsFile
// is frozen or freezing; known is false when the state cannot be read.
// The cgroup is the truth: Engine 20.10 applies the pause and unpause
// events of containerd late, and for a moment after a quick pause and
// unpause believes a running space paused, or a frozen one running.
func frozen(procsFile string) (frozen, known bool) {
	if procsFile == "" {
		return false, false
	}
	dir := strings.TrimSuffix(procsFile, "cgroup.procs")
	if b, err := os.ReadFile(dir + "freezer.state"); err == nil {
		return strings.TrimSpace(string(b)) != "THAWED", true
	}
	if b, err := os.ReadFile(dir + "cgroup.freeze"); err == nil {
		return strings.TrimSpace(string(b)) == "1", true
	}
	return false, false
}
