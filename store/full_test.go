package store

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/adam91holt/clawdspace/spaces"
)

// smallDisk mounts a 2 MiB tmpfs for the test (nodetest.SmallDisk, which
// this package cannot import).
func smallDisk(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small disk needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mounting a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func fill(t *testing.T, dir, name string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int{4096, 1} {
		for {
			if _, err := f.Write(make([]byte, size)); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
}

// TestDiskFull: writes on a full disk fail as spaces.ErrDiskFull, and a
// store opened on a full disk says the disk is full, not "disk I/O error".
func TestDiskFull(t *testing.T) {
	dir := smallDisk(t)
	path := filepath.Join(dir, "state.db")
	s, err := New(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, dir, "filler")
	big := map[string]any{"command": strings.Repeat("x", 2048)}
	for i := 0; ; i++ {
		err := s.Record(t.Context(), spaces.Event{Type: spaces.EventExec, Space: "a", Meta: big})
		if err == nil {
			if i == 100 {
				t.Fatal("100 audit rows written on a full disk")
			}
			continue
		}
		if !errors.Is(err, spaces.ErrDiskFull) {
			t.Fatalf("Record on a full disk: %v, want ErrDiskFull", err)
		}
		break
	}
	if err := s.Touch(t.Context(), "a", t0); err != nil && !errors.Is(err, spaces.ErrDiskFull) {
		t.Fatalf("Touch on a full disk: %v, want ErrDiskFull or nil", err)
	}
	s.Close()
	// Closing may have freed the WAL: fill what it left.
	fill(t, dir, "filler2")
	// A restart on the full disk: opening may work (the WAL and its index
	// are still there) or not; either way the error says the disk is full.
	s, err = New(t.Context(), Config{Path: path})
	if err == nil {
		err = s.Record(t.Context(), spaces.Event{Type: spaces.EventExec, Space: "a", Meta: big})
		s.Close()
	}
	if !errors.Is(err, spaces.ErrDiskFull) || !strings.Contains(err.Error(), "the node's disk is full") {
		t.Fatalf("a restart on a full disk: %v, want the node's disk is full", err)
	}
	t.Log(err)
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	s2, err := New(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatalf("New once space is free again: %v", err)
	}
	s2.Close()
}
