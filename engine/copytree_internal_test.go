package engine

import (
	"context"
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
	n, _, err := copyTree(t.Context(), openDir(t, src), openDir(t, dst))
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
	n, err = syncTree(t.Context(), openDir(t, src), openDir(t, dst), since)
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
	_, _, err := copyTree(t.Context(), openDir(t, src), openDir(t, dst))
	if !errors.Is(err, spaces.ErrDiskFull) {
		t.Fatalf("copy into a full disk: %v, want ErrDiskFull", err)
	}
}

// copyInto copies src into a new folder beside it, as copyTree does.
func copyInto(t *testing.T, src string) (dst string, err error) {
	t.Helper()
	dst = filepath.Join(filepath.Dir(src), "dst")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, err = copyTree(t.Context(), openDir(t, src), openDir(t, dst))
	return dst, err
}

func stat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// TestCopyTreeKeepsHardLinks copies a file with many names as one file
// with as many names, not as many copies.
func TestCopyTreeKeepsHardLinks(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	body := strings.Repeat("x", 1<<20)
	write(t, src+"/a/big", body, 0o644)
	var names []string
	for i := range 50 {
		name := filepath.Join(src, "d"+strconv.Itoa(i%5), "link"+strconv.Itoa(i))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(src+"/a/big", name); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	dst, err := copyInto(t, src)
	if err != nil {
		t.Fatalf("copyTree: %v", err)
	}
	first := stat(t, dst+"/a/big")
	if first.Nlink != 51 {
		t.Errorf("the copy has %d links, want 51", first.Nlink)
	}
	for _, name := range names {
		rel, _ := filepath.Rel(src, name)
		st := stat(t, filepath.Join(dst, rel))
		if st.Ino != first.Ino {
			t.Fatalf("%s is another inode than a/big in the copy", rel)
		}
	}
	if b, _ := os.ReadFile(dst + "/d3/link8"); string(b) != body {
		t.Errorf("a link's content differs")
	}
}

// TestCopyTreeKeepsHoles copies a 1 TiB sparse file with a little data in
// it as a sparse file.
func TestCopyTreeKeepsHoles(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	write(t, src+"/sparse", "", 0o644)
	f, err := os.OpenFile(src+"/sparse", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("middle"), 1<<39); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dst, err := copyInto(t, src)
	if err != nil {
		t.Fatalf("copyTree: %v", err)
	}
	st := stat(t, dst+"/sparse")
	if st.Size != 1<<40 {
		t.Errorf("the copy has %d bytes, want 1 TiB", st.Size)
	}
	if st.Blocks*512 > 1<<20 {
		t.Errorf("the copy holds %d bytes of blocks, want its holes kept", st.Blocks*512)
	}
	g, err := os.Open(dst + "/sparse")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	got := make([]byte, 8)
	if _, err := g.ReadAt(got, 1<<39-1); err != nil {
		t.Fatal(err)
	}
	if string(got) != "\x00middle\x00" {
		t.Errorf("the copy's data reads %q", got)
	}
}

// TestCopyTreeFileGrowing copies a file that grows after it was opened to
// the size it had then.
func TestCopyTreeFileGrowing(t *testing.T) {
	dir := t.TempDir()
	write(t, dir+"/f", "before", 0o644)
	sfd, err := unix.Open(dir+"/f", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sfd)
	var fst unix.Stat_t
	if err := unix.Fstat(sfd, &fst); err != nil {
		t.Fatal(err)
	}
	// The space appends while the copy runs.
	f, err := os.OpenFile(dir+"/f", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(strings.Repeat("after", 1<<16)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dfd, err := unix.Open(dir+"/copy", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	c, err := newTreeCopier(t.Context(), openDir(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.content(sfd, dfd, &fst); err != nil {
		t.Fatalf("copying: %v", err)
	}
	if b, _ := os.ReadFile(dir + "/copy"); string(b) != "before" {
		t.Errorf("the copy holds %d bytes %.20q…, want what the file held at its open", len(b), b)
	}
	// What it charged: the bytes it wrote, or the blocks it cloned.
	if c.written > max(int64(len("before")), fst.Blocks*512) {
		t.Errorf("the copy wrote %d bytes, want at most the size at the open", c.written)
	}
}

// TestCopyTreeFolderMetTwice copies a folder that the walk meets again
// (as after a move during the copy; here a bind mount of it below
// itself) once.
func TestCopyTreeFolderMetTwice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a bind mount needs root")
	}
	src := filepath.Join(t.TempDir(), "src")
	write(t, src+"/a/file", "one", 0o644)
	if err := os.MkdirAll(src+"/a/b/again", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(src+"/a", src+"/a/b/again", "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(src+"/a/b/again", unix.MNT_DETACH) })
	dst, err := copyInto(t, src)
	if err != nil {
		t.Fatalf("copyTree: %v", err)
	}
	if b, _ := os.ReadFile(dst + "/a/file"); string(b) != "one" {
		t.Errorf("a/file reads %q", b)
	}
	if _, err := os.Lstat(dst + "/a/b/again"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the folder met again was copied again: %v", err)
	}
}

// TestCopyTreeBudget stops a copy of a tree that grew past what it held
// when the copy began.
func TestCopyTreeBudget(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	write(t, src+"/small", strings.Repeat("s", 4096), 0o644)
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	sfd, dfd := openDir(t, src), openDir(t, dst)
	used, err := measureTree(t.Context(), sfd)
	if err != nil {
		t.Fatal(err)
	}
	if used < 4096 {
		t.Fatalf("measured %d bytes, want at least the file's block", used)
	}
	// The space writes 2 MiB more between the measure and the copy.
	write(t, src+"/grown", strings.Repeat("g", 2<<20), 0o644)
	c, err := newTreeCopier(t.Context(), dfd)
	if err != nil {
		t.Fatal(err)
	}
	c.budget = used + 1<<20
	_, _, err = c.copyAll(sfd, dfd)
	if !errors.Is(err, spaces.ErrConflict) || !strings.Contains(err.Error(), "grew") {
		t.Fatalf("copy past the budget: %v, want ErrConflict", err)
	}
	if st := stat(t, dst+"/grown"); st.Size > 0 && st.Blocks*512 > 1<<20+4096 {
		t.Errorf("the copy wrote %d bytes of the grown file past its budget", st.Blocks*512)
	}
}

// TestCopyTreeCancelled stops a copy whose context ended.
func TestCopyTreeCancelled(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	for i := range 20 {
		write(t, src+"/f"+strconv.Itoa(i), "x", 0o644)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	dst := filepath.Join(filepath.Dir(src), "dst")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, err := copyTree(ctx, openDir(t, src), openDir(t, dst))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("copy with an ended context: %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(dst); len(entries) != 0 {
		t.Errorf("the cancelled copy made %d entries", len(entries))
	}
	_, err = syncTree(ctx, openDir(t, src), openDir(t, dst), time.Now())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("sync with an ended context: %v, want context.Canceled", err)
	}
}
