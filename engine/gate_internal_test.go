package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestGateLockWaitsForReaders(t *testing.T) {
	var g gateMap
	runlock, err := g.rlock(t.Context(), "c")
	if err != nil {
		t.Fatal(err)
	}
	// A pause whose deadline passes while an exec starts gives up, and
	// leaves the gate usable.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := g.lock(ctx, "c"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lock with a reader = %v, want the deadline", err)
	}
	locked := make(chan func())
	go func() {
		unlock, err := g.lock(t.Context(), "c")
		if err != nil {
			t.Error(err)
		}
		locked <- unlock
	}()
	// While the pause waits, a new exec waits too.
	waitFor(t, func() bool {
		x := g.get("c")
		defer g.put("c", x)
		x.mu.Lock()
		defer x.mu.Unlock()
		return x.waiting == 1
	})
	ctx2, cancel2 := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel2()
	if _, err := g.rlock(ctx2, "c"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("rlock while a pause waits = %v, want the deadline", err)
	}
	runlock()
	runlock() // a second release is harmless
	unlock := <-locked
	unlock()
	if r, err := g.rlock(t.Context(), "c"); err != nil {
		t.Fatal(err)
	} else {
		r()
	}
	if len(g.m) != 0 {
		t.Fatalf("gates left behind: %v", g.m)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRuncInits(t *testing.T) {
	proc := t.TempDir()
	for pid, comm := range map[string]string{"10": "runc:[2:INIT]", "11": "sh", "12": "runc", "13": "sleep", "14": "runcmd"} {
		_ = os.MkdirAll(filepath.Join(proc, pid), 0o755)
		_ = os.WriteFile(filepath.Join(proc, pid, "comm"), []byte(comm+"\n"), 0o644)
	}
	procs := filepath.Join(t.TempDir(), "cgroup.procs")
	_ = os.WriteFile(procs, []byte("10\n11\n12\n13\n14\n99\n"), 0o644)
	got, err := runcInits(proc, procs)
	if err != nil || !slices.Equal(got, []int{10, 12}) {
		t.Fatalf("runcInits = %v, %v; want [10 12]", got, err)
	}
}

func TestCgroupProcsFile(t *testing.T) {
	tests := []struct {
		name, cgroup, want string
	}{
		{"v1", "12:pids:/docker/abc\n4:cpuset:/docker/abc\n3:freezer:/docker/abc\n0::/\n", "/sys/fs/cgroup/freezer/docker/abc/cgroup.procs"},
		{"v2", "0::/system.slice/docker-abc.scope\n", "/sys/fs/cgroup/system.slice/docker-abc.scope/cgroup.procs"},
		{"none", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc := t.TempDir()
			_ = os.MkdirAll(filepath.Join(proc, "7"), 0o755)
			_ = os.WriteFile(filepath.Join(proc, "7", "cgroup"), []byte(tt.cgroup), 0o644)
			if got := cgroupProcsFile(proc, "/sys/fs/cgroup", 7); got != tt.want {
				t.Fatalf("cgroupProcsFile = %q, want %q", got, tt.want)
			}
		})
	}
}
