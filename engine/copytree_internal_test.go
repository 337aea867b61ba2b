package engine

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/adam91holt/clawdspace/spaces"
)

// snapshot describes every entry of a tree: type, mode, owner, mtime,
// content or link target.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		desc := info.Mode().String() + " " + strconv.Itoa(int(st.Uid)) + ":" + strconv.Itoa(int(st.Gid)) + " " + info.ModTime().UTC().Format(time.RFC3339Nano)
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case info.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			desc += " " + string(b)
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func openDir(t *testing.T, p string) int {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func write(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func TestCopyTreeThenSyncTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("keeping owners needs root, as the node on the engine's host has")
	}
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	write(t, src+"/a.txt", "one", 0o640)
	write(t, src+"/d/b", "two", 0o600)
	write(t, src+"/gone", "bye", 0o644)
	write(t, src+"/kind", "a file first", 0o644)
	if err := os.Symlink("/etc/passwd", src+"/d/out"); err != nil { // a link out: copied as a link, never followed
		t.Fatal(err)
	}
	if err := os.Chown(src+"/d/b", 1001, 1001); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(src+"/d", 0o710); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(src+"/fifo", 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Second)
	n, _, err := copyTree(openDir(t, src), openDir(t, dst))
	if err != nil {
		t.Fatalf("copyTree: %v", err)
	}
	if n != int64(len("one")+len("two")+len("bye")+len("a file first")) {
		t.Errorf("copyTree copied %d bytes", n)
	}
	if got, want := snapshot(t, dst), snapshot(t, src); !maps.Equal(got, want) {
		t.Fatalf("copy differs:\n%v\nwant\n%v", got, want)
	}

	// What a running space changes between the copy and the freeze.
	write(t, src+"/a.txt", "ONE", 0o640)
	write(t, src+"/new/c", "three", 0o644)
	if err := os.Remove(src + "/gone"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(src + "/kind"); err != nil {
		t.Fatal(err)
	}
	write(t, src+"/kind/now-a-dir", "x", 0o644)
	if err := os.Chmod(src+"/d/b", 0o644); err != nil {
		t.Fatal(err)
	}
	// An old mtime does not hide a change: the ctime says it.
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(src+"/a.txt", old, old); err != nil {
		t.Fatal(err)
	}
	n, err = syncTree(openDir(t, src), openDir(t, dst), since)
	if err != nil {
		t.Fatalf("syncTree: %v", err)
	}
	if n != int64(len("ONE")+len("two")+len("three")+len("x")) {
		t.Errorf("syncTree counted %d bytes", n)
	}
	if got, want := snapshot(t, dst), snapshot(t, src); !maps.Equal(got, want) {
		t.Fatalf("synced copy differs:\n%v\nwant\n%v", got, want)
	}
}

// TestCopyTreeDiskFull copies into a full filesystem (a small tmpfs): the
// error is ErrDiskFull, which the API answers with 507.
func TestCopyTreeDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	write(t, src+"/big", strings.Repeat("x", 2<<20), 0o644)
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dst, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mounting a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dst, 0) })
	_, _, err := copyTree(openDir(t, src), openDir(t, dst))
	if !errors.Is(err, spaces.ErrDiskFull) {
		t.Fatalf("copy into a full disk: %v, want ErrDiskFull", err)
	}
}
