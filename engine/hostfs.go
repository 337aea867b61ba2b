package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/adam91holt/clawdspace/spaces"
)

// hostfs does a space's file operations on its workspace folder as the
// engine's host sees it (the node runs there, as root). Every path is walked
// one component at a time from an open handle of the workspace with
// openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS), and
// a symlink is followed by reading it and walking its target the same way.
// So the kernel keeps every open beneath the workspace whatever the space
// does meanwhile: a folder swapped for a symlink to /etc is refused, never
// followed (issue 11, High 1).
type hostfs struct {
	root int // O_RDONLY|O_DIRECTORY handle of the workspace; closed by close
}

const (
	// maxLinks bounds the symlinks one path may pass through, as Linux does.
	maxLinks = 40
	// maxNameLen is Linux's NAME_MAX.
	maxNameLen = 255
	// maxTreeDepth bounds a recursive delete, which holds one handle per level.
	maxTreeDepth = 1024
)

const beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

func (h *hostfs) close() { unix.Close(h.root) }

// openat opens one name below dir, never through a symlink, never above dir.
func openat(dir int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat2(dir, name, &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: beneath})
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue // a rename elsewhere raced the lookup: try again
		}
		return fd, err
	}
}

// walker holds the folders of a walk, from the workspace down.
type walker struct {
	fs    *hostfs
	fds   []int    // fds[0] is the workspace (not owned)
	names []string // names[i] is the name of fds[i+1]
	links int
	// create makes missing folders (owned by the sandbox user).
	create bool
}

func (w *walker) top() int { return w.fds[len(w.fds)-1] }

// display is the workspace path of name in the current folder.
func (w *walker) display(name string) string {
	return spaces.DisplayPath(path.Join(append([]string{spaces.WorkspacePath}, append(w.names, name)...)...))
}

// maxOpenDirs bounds the folders a walk holds open: a deep path (2047
// parts, or symlinks to deep folders) must not take a handle per part.
const maxOpenDirs = 32

// push enters a folder the walk opened; the handle of the folder
// maxOpenDirs above it is closed (-1) and opened again if a ".." comes
// back to it.
func (w *walker) push(fd int, name string) {
	w.fds, w.names = append(w.fds, fd), append(w.names, name)
	if i := len(w.fds) - 1 - maxOpenDirs; i > 0 && w.fds[i] >= 0 {
		unix.Close(w.fds[i])
		w.fds[i] = -1
	}
}

// pop leaves the current folder for its parent. A parent whose handle was
// closed is opened again from the workspace in one openat2, which refuses
// any symlink on the way, so it is the same folder or an error.
func (w *walker) pop() error {
	if fd := w.top(); fd >= 0 {
		unix.Close(fd)
	}
	w.fds, w.names = w.fds[:len(w.fds)-1], w.names[:len(w.names)-1]
	if w.top() >= 0 {
		return nil
	}
	fd, err := openat(w.fs.root, strings.Join(w.names, "/"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		w.fds, w.names = w.fds[:len(w.fds)-1], w.names[:len(w.names)-1]
		return spaces.Errorf(spaces.ErrConflict, "%s changed while the node walked it: try again", w.display(""))
	}
	w.fds[len(w.fds)-1] = fd
	return nil
}

func (w *walker) release() {
	for _, fd := range w.fds[1:] {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	w.fds, w.names = w.fds[:1], w.names[:0]
}

// target is what the walk found: the folder that holds the last component,
// its name, and its lstat (nil when it does not exist). The walker keeps
// the folder open until release.
type target struct {
	dir  int
	name string
	st   *unix.Stat_t
	path string // as the client writes it, for messages
}

// walk resolves abs (an absolute path under /workspace). Intermediate
// components must be folders (symlinks inside the workspace are followed);
// the last is followed when it is a symlink and follow is set. With
// allDirs, the last component is entered as a folder too (list, mkdir), and
// the target's dir is that folder itself with name ".".
func (h *hostfs) walk(abs string, follow, allDirs, create bool) (*walker, target, error) {
	w := &walker{fs: h, fds: []int{h.root}, create: create}
	t, err := w.run(abs, follow, allDirs)
	if err != nil {
		w.release()
		return nil, target{}, err
	}
	return w, t, nil
}

func splitRel(abs string) []string {
	rel := strings.Trim(strings.TrimPrefix(abs, spaces.WorkspacePath), "/")
	if rel == "" {
		return nil
	}
	return strings.Split(rel, "/")
}

func (w *walker) run(abs string, follow, allDirs bool) (target, error) {
	queue := splitRel(abs)
	if len(queue) == 0 {
		if !allDirs {
			return target{}, spaces.Errorf(spaces.ErrInvalid, "/ is a folder, not a file")
		}
		return w.here(abs)
	}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		last := len(queue) == 0
		switch c {
		case "", ".":
			if last && allDirs {
				return w.here(abs)
			}
			continue
		case "..":
			// Only link targets have these (client paths are refused).
			if len(w.fds) == 1 {
				return target{}, spaces.Errorf(spaces.ErrForbidden, "%s leads outside /workspace through a symlink", spaces.DisplayPath(abs))
			}
			if err := w.pop(); err != nil {
				return target{}, err
			}
			if last && allDirs {
				return w.here(abs)
			}
			continue
		}
		if len(c) > maxNameLen {
			return target{}, spaces.Errorf(spaces.ErrInvalid, "a part of the path is longer than %d bytes", maxNameLen)
		}
		if last && !allDirs {
			var st unix.Stat_t
			err := unix.Fstatat(w.top(), c, &st, unix.AT_SYMLINK_NOFOLLOW)
			switch {
			case errors.Is(err, unix.ENOENT):
				return target{dir: w.top(), name: c, path: spaces.DisplayPath(abs)}, nil
			case err != nil:
				return target{}, w.pathErr(err, c)
			case st.Mode&unix.S_IFMT == unix.S_IFLNK && follow:
				more, err := w.link(c)
				if err != nil {
					return target{}, err
				}
				queue = more
				if len(queue) == 0 { // a link to the workspace itself
					return target{}, spaces.Errorf(spaces.ErrInvalid, "%s is a folder, not a file", spaces.DisplayPath(abs))
				}
				continue
			}
			return target{dir: w.top(), name: c, st: &st, path: spaces.DisplayPath(abs)}, nil
		}
		fd, err := openat(w.top(), c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if errors.Is(err, unix.ENOENT) && w.create {
			err = unix.Mkdirat(w.top(), c, 0o755)
			if err == nil || errors.Is(err, unix.EEXIST) {
				fd, err = openat(w.top(), c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
				if err == nil {
					err = chownNew(fd)
				}
			}
		}
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			// A symlink (refused by RESOLVE_NO_SYMLINKS) is followed by
			// hand; anything else is not a folder.
			var st unix.Stat_t
			if unix.Fstatat(w.top(), c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			} else {
				err = unix.ENOTDIR
			}
		}
		switch {
		case errors.Is(err, unix.ELOOP):
			more, err := w.link(c)
			if err != nil {
				return target{}, err
			}
			if len(more) == 0 && last && allDirs {
				return w.here(abs)
			}
			queue = append(more, queue...)
			continue
		case errors.Is(err, unix.ENOENT):
			return target{}, spaces.PathNotFound(abs)
		case errors.Is(err, unix.ENOTDIR):
			if last {
				return target{}, spaces.Errorf(spaces.ErrInvalid, "%s exists and is not a folder", spaces.DisplayPath(abs))
			}
			return target{}, spaces.Errorf(spaces.ErrInvalid, "%s is not a folder", w.display(c))
		case err != nil:
			return target{}, w.pathErr(err, c)
		}
		w.push(fd, c)
		if last {
			return w.here(abs)
		}
	}
	return w.here(abs)
}

// chownNew gives a folder or file the node just made to the sandbox user.
func chownNew(fd int) error {
	if err := unix.Fchown(fd, spaces.SandboxUID, spaces.SandboxUID); err != nil {
		unix.Close(fd)
		return fmt.Errorf("giving a new entry to the sandbox user: %w", err)
	}
	return nil
}

// here is the target for the folder the walk stands in.
func (w *walker) here(abs string) (target, error) {
	var st unix.Stat_t
	if err := unix.Fstat(w.top(), &st); err != nil {
		return target{}, fmt.Errorf("reading folder information: %w", err)
	}
	return target{dir: w.top(), name: ".", st: &st, path: spaces.DisplayPath(abs)}, nil
}

// link reads the symlink name in the current folder and returns the
// components of its target, to be walked from where the walk now stands
// (an absolute target inside /workspace restarts at the workspace).
func (w *walker) link(name string) ([]string, error) {
	w.links++
	if w.links > maxLinks {
		return nil, spaces.Errorf(spaces.ErrInvalid, "%s: too many levels of symlinks", w.display(name))
	}
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(w.top(), name, buf)
	if errors.Is(err, unix.EINVAL) {
		// Swapped back to a folder or file since the open: walk it again.
		return []string{name}, nil
	}
	if err != nil {
		return nil, w.pathErr(err, name)
	}
	dest := string(buf[:n])
	if strings.HasPrefix(dest, "/") {
		clean := path.Clean(dest)
		if !spaces.InWorkspace(clean) {
			return nil, spaces.Errorf(spaces.ErrForbidden, "%s is a symlink that points outside /workspace", w.display(name))
		}
		w.release()
		return splitRel(clean), nil
	}
	return strings.Split(dest, "/"), nil
}

// pathErr maps a system call's error on name for clients.
func (w *walker) pathErr(err error, name string) error {
	return mapErrno(err, w.display(name))
}

func mapErrno(err error, display string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOENT):
		return spaces.Errorf(spaces.ErrNotFound, "No such file or folder: %s", display)
	case errors.Is(err, unix.ENAMETOOLONG):
		return spaces.Errorf(spaces.ErrInvalid, "%s: a name in the path is too long", display)
	case errors.Is(err, unix.ELOOP):
		return spaces.Errorf(spaces.ErrInvalid, "%s: too many levels of symlinks", display)
	case errors.Is(err, unix.ENOTDIR):
		return spaces.Errorf(spaces.ErrInvalid, "%s: a part of the path is not a folder", display)
	case errors.Is(err, unix.EISDIR):
		return spaces.Errorf(spaces.ErrInvalid, "%s is a folder, not a file", display)
	case errors.Is(err, unix.EXDEV):
		return spaces.Errorf(spaces.ErrForbidden, "%s leads outside /workspace", display)
	case errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.EEXIST):
		return spaces.Errorf(spaces.ErrConflict, "%s changed while the node worked on it", display)
	case errors.Is(err, errTooDeep):
		return spaces.Errorf(spaces.ErrInvalid, "%s holds folders more than %d levels deep: delete the deepest ones first (for example with exec rm -rf)", display, maxTreeDepth)
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return spaces.Errorf(spaces.ErrTooLarge, "the workspace is full")
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return spaces.Errorf(spaces.ErrForbidden, "%s: permission denied", display)
	}
	return fmt.Errorf("acting on a workspace file: %w", err)
}

func infoOf(name, abs string, st *unix.Stat_t) spaces.FileInfo {
	m := uint32(st.Mode)
	return spaces.FileInfo{
		Name: name, Path: abs, Type: unixType(m), Size: st.Size, Mode: m & 0o7777,
		MTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC(),
	}
}

// stat describes abs, following a last symlink inside the workspace when
// follow is set.
func (h *hostfs) stat(abs string, follow bool) (spaces.FileInfo, error) {
	if len(splitRel(abs)) == 0 {
		w, t, err := h.walk(abs, true, true, false)
		if err != nil {
			return spaces.FileInfo{}, err
		}
		defer w.release()
		return infoOf("workspace", abs, t.st), nil
	}
	w, t, err := h.walk(abs, follow, false, false)
	if err != nil {
		return spaces.FileInfo{}, err
	}
	defer w.release()
	if t.st == nil {
		return spaces.FileInfo{}, spaces.PathNotFound(abs)
	}
	fi := infoOf(t.name, abs, t.st)
	if fi.Type == spaces.TypeSymlink {
		buf := make([]byte, unix.PathMax)
		if n, err := unix.Readlinkat(t.dir, t.name, buf); err == nil {
			fi.LinkTarget = string(buf[:n])
		}
	}
	return fi, nil
}

// open opens the regular file abs (a last symlink inside the workspace is
// followed) at offset.
func (h *hostfs) open(abs string, offset int64) (spaces.FileInfo, io.ReadCloser, error) {
	w, t, err := h.walk(abs, true, false, false)
	if err != nil {
		return spaces.FileInfo{}, nil, err
	}
	defer w.release()
	if t.st == nil {
		return spaces.FileInfo{}, nil, spaces.PathNotFound(abs)
	}
	switch t.st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return spaces.FileInfo{}, nil, spaces.Errorf(spaces.ErrInvalid, "%s is a folder, not a file", t.path)
	default:
		return spaces.FileInfo{}, nil, spaces.Errorf(spaces.ErrInvalid, "%s is not a regular file", t.path)
	}
	// O_NONBLOCK: a pipe swapped in must not hang the open; the type is
	// checked on the handle itself.
	fd, err := openat(t.dir, t.name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return spaces.FileInfo{}, nil, spaces.Errorf(spaces.ErrConflict, "%s changed while it was opened: try again", t.path)
		}
		return spaces.FileInfo{}, nil, mapErrno(err, t.path)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return spaces.FileInfo{}, nil, fmt.Errorf("reading file information: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return spaces.FileInfo{}, nil, spaces.Errorf(spaces.ErrInvalid, "%s is not a regular file", t.path)
	}
	f := os.NewFile(uintptr(fd), t.name)
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return spaces.FileInfo{}, nil, fmt.Errorf("seeking in file: %w", err)
		}
	}
	return infoOf(t.name, abs, &st), f, nil
}

// uploadName is the hidden name a write of name goes to first; a long name
// is cut so the temporary name fits NAME_MAX.
func uploadName(name string) string {
	if max := maxNameLen - 1 - len(spaces.UploadSuffix); len(name) > max {
		name = name[:max]
	}
	return "." + name + spaces.UploadSuffix
}

// write writes f to abs: to a hidden file beside it, owned by the sandbox
// user, synced, then renamed over the name, so a crash at any point leaves
// the old file or the new one, never part of it. Missing folders are made.
func (h *hostfs) write(abs string, f spaces.FileContent) error {
	w, t, err := h.walk(abs, true, false, true)
	if err != nil {
		return err
	}
	defer w.release()
	mode := f.Mode
	if t.st != nil {
		switch t.st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			return spaces.Errorf(spaces.ErrInvalid, "%s is a folder, not a file", t.path)
		case unix.S_IFREG:
			if mode == 0 {
				mode = uint32(t.st.Mode)
			}
		}
	}
	if mode == 0 {
		mode = 0o644
	}
	mode &= 0o777 // never set-id bits on what the node writes
	tmp := uploadName(t.name)
	if err := unix.Unlinkat(t.dir, tmp, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return mapErrno(err, t.path)
	}
	fd, err := openat(t.dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return mapErrno(err, t.path)
	}
	if err := chownNew(fd); err != nil {
		unix.Unlinkat(t.dir, tmp, 0)
		return err
	}
	file := os.NewFile(uintptr(fd), tmp)
	if err := fill(file, f, mode); err != nil {
		file.Close()
		unix.Unlinkat(t.dir, tmp, 0)
		return err
	}
	if err := file.Close(); err != nil {
		unix.Unlinkat(t.dir, tmp, 0)
		return mapErrno(err, t.path)
	}
	if err := unix.Renameat(t.dir, tmp, t.dir, t.name); err != nil {
		unix.Unlinkat(t.dir, tmp, 0)
		return mapErrno(err, t.path)
	}
	// The rename is durable once the folder is.
	_ = unix.Fsync(t.dir)
	return nil
}

func fill(file *os.File, f spaces.FileContent, mode uint32) error {
	n, err := io.Copy(file, f.Content)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return mapErrno(pe.Err, "")
		}
		return fmt.Errorf("writing file: %w", err)
	}
	if n != f.Size {
		return fmt.Errorf("file content ended after %d of %d bytes", n, f.Size)
	}
	if err := file.Chmod(os.FileMode(mode)); err != nil {
		return fmt.Errorf("setting file mode: %w", err)
	}
	if err := file.Sync(); err != nil {
		return mapErrno(err, "")
	}
	return nil
}

// mkdir makes the folder abs and its parents; an existing folder is fine.
func (h *hostfs) mkdir(abs string) error {
	w, _, err := h.walk(abs, true, true, true)
	if err != nil {
		return err
	}
	w.release()
	return nil
}

// list lists the folder abs (a symlink inside the workspace is followed).
func (h *hostfs) list(abs string) ([]spaces.FileInfo, error) {
	w, t, err := h.walk(abs, true, true, false)
	if err != nil {
		return nil, err
	}
	defer w.release()
	fd, err := unix.Dup(t.dir)
	if err != nil {
		return nil, fmt.Errorf("listing folder: %w", err)
	}
	d := os.NewFile(uintptr(fd), "dir")
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, mapErrno(err, t.path)
	}
	out := make([]spaces.FileInfo, 0, len(names))
	buf := make([]byte, unix.PathMax)
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(t.dir, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // gone since the listing
		}
		fi := infoOf(n, path.Join(abs, n), &st)
		if fi.Type == spaces.TypeSymlink {
			if k, err := unix.Readlinkat(t.dir, n, buf); err == nil {
				fi.LinkTarget = string(buf[:k])
			}
		}
		out = append(out, fi)
	}
	return out, nil
}

// remove deletes abs (a last symlink is removed itself, not followed); a
// folder needs recursive.
func (h *hostfs) remove(abs string, recursive bool) error {
	w, t, err := h.walk(abs, false, false, false)
	if err != nil {
		return err
	}
	defer w.release()
	if t.st == nil {
		return spaces.PathNotFound(abs)
	}
	if t.st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return mapErrno(ignoreENOENT(unix.Unlinkat(t.dir, t.name, 0)), t.path)
	}
	if !recursive {
		return spaces.Errorf(spaces.ErrInvalid, "%s is a folder: pass recursive=true to delete it with its contents", t.path)
	}
	if err := removeTree(t.dir, t.name, 0); err != nil {
		return mapErrno(err, t.path)
	}
	return nil
}

func ignoreENOENT(err error) error {
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// errTooDeep stops a delete of a tree deeper than maxTreeDepth.
var errTooDeep = errors.New("folder tree too deep")

// removeTree deletes name in dir with everything below it, opening each
// folder beneath its parent without following symlinks (a symlink is
// removed, never entered).
func removeTree(dir int, name string, depth int) error {
	if depth > maxTreeDepth {
		return errTooDeep
	}
	err := unix.Unlinkat(dir, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	fd, err := openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return ignoreENOENT(unix.Unlinkat(dir, name, 0)) // swapped for a link or file
		}
		return ignoreENOENT(err)
	}
	d := os.NewFile(uintptr(fd), name)
	defer d.Close()
	for {
		names, err := d.Readdirnames(256)
		for _, n := range names {
			if err := removeTree(fd, n, depth+1); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && len(names) == 0) {
			break
		}
		if err != nil {
			return err
		}
	}
	return ignoreENOENT(unix.Unlinkat(dir, name, unix.AT_REMOVEDIR))
}

// Bounds of a sweep for left-over uploads, per space.
const (
	sweepMaxEntries = 100_000
	sweepMaxDepth   = 8
)

// sweep removes the hidden upload files (".NAME"+spaces.UploadSuffix) a write
// killed midway left, older than before, in the workspace's first
// sweepMaxDepth levels and first sweepMaxEntries entries. Folders are
// entered beneath their parent without following symlinks.
func (h *hostfs) sweep(before time.Time) ([]string, error) {
	var removed []string
	seen := 0
	var visit func(dir int, rel string, depth int) error
	visit = func(dir int, rel string, depth int) error {
		fd, err := unix.Dup(dir)
		if err != nil {
			return fmt.Errorf("sweeping uploads: %w", err)
		}
		d := os.NewFile(uintptr(fd), rel)
		defer d.Close()
		if _, err := d.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("sweeping uploads: %w", err)
		}
		for seen < sweepMaxEntries {
			names, err := d.Readdirnames(256)
			for _, n := range names {
				seen++
				var st unix.Stat_t
				if unix.Fstatat(dir, n, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
					continue
				}
				switch st.Mode & unix.S_IFMT {
				case unix.S_IFREG:
					if strings.HasPrefix(n, ".") && strings.HasSuffix(n, spaces.UploadSuffix) &&
						time.Unix(st.Mtim.Sec, st.Mtim.Nsec).Before(before) && unix.Unlinkat(dir, n, 0) == nil {
						removed = append(removed, path.Join(rel, n))
					}
				case unix.S_IFDIR:
					if depth+1 >= sweepMaxDepth {
						continue
					}
					sub, err := openat(dir, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
					if err != nil {
						continue
					}
					err = visit(sub, path.Join(rel, n), depth+1)
					unix.Close(sub)
					if err != nil {
						return err
					}
				}
			}
			if err != nil || len(names) == 0 {
				return nil
			}
		}
		return nil
	}
	err := visit(h.root, spaces.WorkspacePath, 0)
	return removed, err
}
