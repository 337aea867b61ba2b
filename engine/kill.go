package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/adam91holt/clawdspace/spaces"
)

// killExec kills the process of an exec and everything it started. The
// Engine API has no call for it, so the node finds the process tree under
// the exec's host PID in /proc and signals it. That needs the node on the
// engine's host; where the node may not signal those processes (not root),
// it runs kill inside the space as the exec's user instead. An exec that
// has no process yet (the engine is still starting it) is waited for, up
// to killWait: its caller is told it is dead.
func (e *Engine) killExec(containerID, execID string) {
	ctx, cancel := context.WithTimeout(context.Background(), killWait)
	defer cancel()
	pid, err := e.waitPID(ctx, execID)
	if err != nil {
		e.log.Error("could not kill an exec: it did not start in time", "container", shortID(containerID), "err", err)
		return
	}
	if pid == 0 {
		return // ended
	}
	// The PID is the engine host's: only act on it when this process sees
	// the same processes (the node runs on that host), which the container
	// ID in its cgroup proves.
	if !inContainer("/proc", pid, containerID) {
		if _, alive := procComm("/proc", pid); alive {
			e.log.Warn("cannot kill an exec's processes: the engine's processes are not visible to the node", "container", shortID(containerID))
		}
		return
	}
	for round := 0; round < 3; round++ {
		// A PID freed by the previous round can be reused at once on a
		// host with a small pid_max: only a process of this container is
		// the exec's.
		if round > 0 && !inContainer("/proc", pid, containerID) {
			return
		}
		tree := processTree("/proc", pid)
		if len(tree) == 0 {
			return
		}
		var denied []int
		for _, p := range tree {
			if err := syscall.Kill(p, syscall.SIGKILL); errors.Is(err, syscall.EPERM) {
				denied = append(denied, p)
			}
		}
		if len(denied) > 0 {
			e.killInside(ctx, containerID, denied)
		}
	}
}

// killWait bounds how long a kill waits for the engine to start an exec.
const killWait = 10 * time.Second

// waitPID waits until an exec has a process and returns its host PID, or
// 0 when the exec has ended (or never will run).
func (e *Engine) waitPID(ctx context.Context, execID string) (int, error) {
	for delay := 2 * time.Millisecond; ; delay = min(delay*2, 50*time.Millisecond) {
		ins, err := e.inspectExec(ctx, execID)
		switch {
		case cerrdefs.IsNotFound(err):
			return 0, nil
		case err != nil:
			// The engine may be slow; try again until ctx ends.
		case ins.Running && ins.PID > 0:
			return ins.PID, nil
		case !ins.Running && (ins.PID > 0 || ins.ExitCode != 0):
			return 0, nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			if err == nil {
				err = ctx.Err()
			}
			return 0, fmt.Errorf("waiting for the exec's process: %w", err)
		case <-t.C:
		}
	}
}

// killInside signals host PIDs from inside the space, by their PIDs there.
func (e *Engine) killInside(ctx context.Context, containerID string, hostPIDs []int) {
	args := []string{"kill", "-9"}
	for _, pid := range hostPIDs {
		if ns := namespacePID("/proc", pid); ns > 0 {
			args = append(args, strconv.Itoa(ns))
		}
	}
	if len(args) == 2 {
		return
	}
	if _, err := e.execIn(ctx, containerID, spaces.ExecSpec{Cmd: args}); err != nil {
		e.log.Warn("could not kill an exec's processes", "container", shortID(containerID), "err", err)
	}
}

func inContainer(proc string, pid int, containerID string) bool {
	b, err := os.ReadFile(proc + "/" + strconv.Itoa(pid) + "/cgroup")
	return err == nil && containerID != "" && strings.Contains(string(b), containerID)
}

// processTree returns pid, its descendants and the rest of its session
// (the engine starts each exec as a session leader, so processes that
// double-forked away from the tree still carry its session), parents first.
func processTree(proc string, root int) []int {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	var session []int
	alive := false
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, sid := statIDs(proc, pid)
		if ppid < 0 {
			continue
		}
		if pid == root {
			alive = true
			continue
		}
		children[ppid] = append(children[ppid], pid)
		if sid == root {
			session = append(session, pid)
		}
	}
	if !alive {
		return nil
	}
	out := []int{root}
	seen := map[int]bool{root: true}
	for i := 0; i < len(out); i++ {
		for _, c := range children[out[i]] {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	for _, p := range session {
		if !seen[p] {
			out = append(out, p)
		}
	}
	return out
}

// statIDs reads the PPID and session ID from /proc/PID/stat; the command
// name may hold spaces and parentheses, so fields are read after its last ')'.
func statIDs(proc string, pid int) (ppid, sid int) {
	b, err := os.ReadFile(proc + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1, -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1, -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 4 {
		return -1, -1
	}
	ppid, err1 := strconv.Atoi(f[1])
	sid, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil {
		return -1, -1
	}
	return ppid, sid
}

// namespacePID maps a host PID to its PID in the innermost PID namespace.
func namespacePID(proc string, pid int) int {
	b, err := os.ReadFile(proc + "/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0
			}
			n, _ := strconv.Atoi(f[len(f)-1])
			return n
		}
	}
	return 0
}
