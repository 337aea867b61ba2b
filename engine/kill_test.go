package engine

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// fakeProc writes /proc/PID/stat files: pid -> (ppid, sid).
func fakeProc(t *testing.T, procs map[int][2]int, comm string) string {
	t.Helper()
	dir := t.TempDir()
	for pid, ids := range procs {
		d := filepath.Join(dir, strconv.Itoa(pid))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := strconv.Itoa(pid) + " (" + comm + ") S " + strconv.Itoa(ids[0]) + " " + strconv.Itoa(ids[1]) + " " + strconv.Itoa(ids[1]) + " 0 -1\n"
		if err := os.WriteFile(filepath.Join(d, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestProcessTree(t *testing.T) {
	// 10 is the exec (session leader); 11, 12 its children, 13 a grandchild,
	// 20 double-forked away (parent 1) but still in session 10; 30 unrelated.
	procs := map[int][2]int{1: {0, 1}, 10: {5, 10}, 11: {10, 10}, 12: {10, 10}, 13: {11, 10}, 20: {1, 10}, 30: {1, 30}}
	for _, comm := range []string{"sh", "odd name) (x"} {
		got := processTree(fakeProc(t, procs, comm), 10)
		slices.Sort(got[1:])
		if !slices.Equal(got, []int{10, 11, 12, 13, 20}) {
			t.Fatalf("comm %q: processTree = %v", comm, got)
		}
	}
	if got := processTree(fakeProc(t, procs, "sh"), 99); got != nil {
		t.Fatalf("a gone process has a tree: %v", got)
	}
}

func TestInContainer(t *testing.T) {
	dir := t.TempDir()
	_ = os.MkdirAll(filepath.Join(dir, "7"), 0o755)
	_ = os.WriteFile(filepath.Join(dir, "7", "cgroup"), []byte("12:pids:/docker/abc123def\n"), 0o644)
	if !inContainer(dir, 7, "abc123def") || inContainer(dir, 7, "other") || inContainer(dir, 8, "abc123def") || inContainer(dir, 7, "") {
		t.Fatal("inContainer is wrong")
	}
}
