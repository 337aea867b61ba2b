package engine

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/adam91holt/clawdspace/spaces"
)

// newHostfs makes a workspace folder with a sibling "etc" outside it, and
// opens the workspace as the node does.
func newHostfs(t *testing.T) (*hostfs, string, string) {
	t.Helper()
	base := t.TempDir()
	ws, etc := filepath.Join(base, "ws"), filepath.Join(base, "etc")
	for _, d := range []string{ws, etc} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(etc, "shadow"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(ws, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := &hostfs{root: fd}
	t.Cleanup(h.close)
	return h, ws, etc
}

// TestHostfsConfined: links are followed inside the workspace only, by
// name and by "..", wherever they point on the host.
func TestHostfsConfined(t *testing.T) {
	h, ws, etc := newHostfs(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(ws, "notes"), 0o755))
	must(os.WriteFile(filepath.Join(ws, "notes", "f"), []byte("hi"), 0o644))
	must(os.Symlink(etc, filepath.Join(ws, "host-abs")))              // the host's path of etc
	must(os.Symlink("../etc", filepath.Join(ws, "up")))               // above the workspace
	must(os.Symlink("/workspace/notes", filepath.Join(ws, "abs")))    // the space's own path
	must(os.Symlink("/etc", filepath.Join(ws, "etc-link")))           // the space's /etc
	must(os.Symlink("../notes/f", filepath.Join(ws, "notes", "rel"))) // climbs and comes back
	must(os.Symlink("loop2", filepath.Join(ws, "loop1")))
	must(os.Symlink("loop1", filepath.Join(ws, "loop2")))

	tests := []struct {
		path string
		want error // nil: reads "hi"
	}{
		{"/workspace/notes/f", nil},
		{"/workspace/abs/f", nil},
		{"/workspace/notes/rel", nil},
		{"/workspace/host-abs/shadow", spaces.ErrForbidden},
		{"/workspace/up/shadow", spaces.ErrForbidden},
		{"/workspace/etc-link/shadow", spaces.ErrForbidden},
		{"/workspace/loop1", spaces.ErrInvalid},
		{"/workspace/notes/f/x", spaces.ErrInvalid},
		{"/workspace/nope", spaces.ErrNotFound},
	}
	for _, tt := range tests {
		_, rc, err := h.open(tt.path, 0)
		if tt.want != nil {
			if !errors.Is(err, tt.want) {
				t.Errorf("open %s = %v, want %v", tt.path, err, tt.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("open %s: %v", tt.path, err)
			continue
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != "hi" {
			t.Errorf("open %s read %q", tt.path, b)
		}
	}
	if err := h.write("/workspace/up/pwned", spaces.FileContent{Size: 1, Content: strings.NewReader("x")}); !errors.Is(err, spaces.ErrForbidden) {
		t.Errorf("write through a link above = %v", err)
	}
	if err := h.mkdir("/workspace/host-abs/pwned"); !errors.Is(err, spaces.ErrForbidden) {
		t.Errorf("mkdir through a host link = %v", err)
	}
	if err := h.remove("/workspace/up", false); err != nil {
		t.Errorf("removing a link above: %v", err)
	}
	if _, err := os.Stat(filepath.Join(etc, "shadow")); err != nil {
		t.Fatalf("the link's target went with it: %v", err)
	}
	if ents, _ := os.ReadDir(etc); len(ents) != 1 {
		t.Fatalf("something was written outside the workspace: %v", ents)
	}
}

// TestHostfsWrite: a write makes its folders and file as the sandbox user,
// through a temporary file that does not stay, and keeps a file's mode.
func TestHostfsWrite(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to give files to uid 1001, as the node does")
	}
	h, ws, _ := newHostfs(t)
	data := bytes.Repeat([]byte("z"), 3<<20)
	if err := h.write("/workspace/a/b/f", spaces.FileContent{Size: int64(len(data)), Content: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "a/b", "a/b/f"} {
		st, err := os.Stat(filepath.Join(ws, p))
		if err != nil {
			t.Fatal(err)
		}
		if sys := st.Sys().(*syscall.Stat_t); sys.Uid != spaces.SandboxUID || sys.Gid != spaces.SandboxUID {
			t.Errorf("%s owned by %d:%d", p, sys.Uid, sys.Gid)
		}
	}
	if err := os.Chmod(filepath.Join(ws, "a/b/f"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.write("/workspace/a/b/f", spaces.FileContent{Size: 2, Content: strings.NewReader("ok")}); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(ws, "a/b/f")); st.Mode().Perm() != 0o600 || st.Size() != 2 {
		t.Errorf("replaced file: mode %v size %d", st.Mode(), st.Size())
	}
	// A short body fails and leaves the file as it was, and no temporary.
	if err := h.write("/workspace/a/b/f", spaces.FileContent{Size: 10, Content: strings.NewReader("bad")}); err == nil {
		t.Error("a short body was accepted")
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "a/b/f")); string(b) != "ok" {
		t.Errorf("after a failed write the file reads %q", b)
	}
	if ents, _ := os.ReadDir(filepath.Join(ws, "a/b")); len(ents) != 1 {
		t.Errorf("left in the folder: %v", ents)
	}
}

// TestHostfsSweep: the sweep removes old upload leftovers and nothing else.
func TestHostfsSweep(t *testing.T) {
	h, ws, _ := newHostfs(t)
	old := time.Now().Add(-time.Hour)
	files := map[string]bool{ // path: removed by the sweep
		".f.clawdspace-upload":                    true,
		"d/e/.g.clawdspace-upload":                true,
		"keep.clawdspace-upload":                  false, // not hidden: not the node's
		".h.clawdspace-upload.bak":                false,
		"d/.fresh.clawdspace-upload":              false, // newer than the start
		"d/e/f/g/h/i/j/k/.deep.clawdspace-upload": false, // deeper than the bound
	}
	for p, gone := range files {
		full := filepath.Join(ws, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if gone || !strings.Contains(p, "fresh") {
			if err := os.Chtimes(full, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	removed, err := h.sweep(time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 {
		t.Errorf("removed %v, want the 2 old hidden uploads", removed)
	}
	for p, gone := range files {
		if _, err := os.Lstat(filepath.Join(ws, p)); (err != nil) != gone {
			t.Errorf("%s: removed %v, want %v", p, err != nil, gone)
		}
	}
}

// TestHostfsRemoveTooDeep: a tree deeper than a recursive delete goes is
// refused with a clear ErrInvalid, not an internal error, and what it
// could not reach is still there.
func TestHostfsRemoveTooDeep(t *testing.T) {
	h, ws, _ := newHostfs(t)
	// Built with mkdirat level by level: the whole path is longer than
	// PATH_MAX.
	dir, err := unix.Open(ws, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	top := dir
	for range maxTreeDepth + 5 {
		if err := unix.Mkdirat(dir, "d", 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(dir, "d", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if dir != top {
			unix.Close(dir)
		}
		dir = next
	}
	unix.Close(dir)
	unix.Close(top)
	err = h.remove("/workspace/d", true)
	if !errors.Is(err, spaces.ErrInvalid) || !strings.Contains(err.Error(), "levels deep") {
		t.Fatalf("remove of a too deep tree = %v, want ErrInvalid saying so", err)
	}
	if _, err := os.Stat(filepath.Join(ws, "d")); err != nil {
		t.Fatalf("the top folder is gone: %v", err)
	}
	// t.TempDir's clean-up cannot remove it either: take it apart from
	// the bottom.
	t.Cleanup(func() { removeDeep(t, filepath.Join(ws, "d")) })
}

// removeDeep deletes a tree too deep for os.RemoveAll's paths by
// renaming its levels up one at a time.
func removeDeep(t *testing.T, top string) {
	t.Helper()
	for {
		child := filepath.Join(top, "d")
		if _, err := os.Stat(child); err != nil {
			break
		}
		tmp := top + ".up"
		if err := os.Rename(child, tmp); err != nil {
			t.Logf("clean-up: %v", err)
			return
		}
		if err := os.Remove(top); err != nil {
			t.Logf("clean-up: %v", err)
			return
		}
		if err := os.Rename(tmp, top); err != nil {
			t.Logf("clean-up: %v", err)
			return
		}
	}
	os.Remove(top)
}
