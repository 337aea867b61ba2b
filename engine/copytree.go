package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/adam91holt/clawdspace/spaces"
)

// copyTree copies the folder tree under the open folder src into the open
// folder dst (both on this host, e.g. volumes' _data folders), keeping
// owner, mode, times, symlinks, hard links and holes as they are. Each file
// is first cloned (FICLONE: a reflink, which shares blocks on btrfs and xfs
// and costs no space), else its data ranges (SEEK_DATA, SEEK_HOLE) are
// copied in the kernel (copy_file_range), else read and written. It never
// follows a symlink: every entry is opened relative to its folder with
// O_NOFOLLOW, so a tree that changes meanwhile (the space is hostile) leads
// nowhere outside it. The space cannot make the copy outgrow its tree
// either: a file is copied up to its size when it was opened, a folder met
// twice (moved during the walk) is copied once, and the copy stops with
// ErrConflict once it wrote more than the tree's allocated blocks when it
// began plus a margin (copyBudget), or with ErrDiskFull before the target's
// free space falls below its reserve. It stops when ctx ends. Sockets and
// devices are left out. It returns the bytes of the regular files it copied
// and whether every file was cloned.
func copyTree(ctx context.Context, src, dst int) (copied int64, cloned bool, err error) {
	used, err := measureTree(ctx, src)
	if err != nil {
		return 0, false, mapCopyErr(err)
	}
	c, err := newTreeCopier(ctx, dst)
	if err != nil {
		return 0, false, err
	}
	c.budget = copyBudget(used)
	return c.copyAll(src, dst)
}

// copyAll copies src into dst within c's bounds.
func (c *treeCopier) copyAll(src, dst int) (copied int64, cloned bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return 0, false, err
	}
	c.seenDirs[inodeOf(&st)] = true
	if err := c.dir(src, dst, 0, ""); err != nil {
		return c.bytes, false, c.mapErr(err)
	}
	if err := setMeta(dst, &st, []unix.Timespec{st.Atim, st.Mtim}); err != nil {
		return c.bytes, false, c.mapErr(err)
	}
	return c.bytes, c.cloned && c.files > 0, nil
}

type treeCopier struct {
	ctx    context.Context
	bytes  int64
	files  int
	cloned bool
	// noClone is set once the filesystem refused a clone: it refuses
	// every one; noRange likewise for copy_file_range.
	noClone, noRange bool
	buf              []byte
	// since (syncTree) is when the first copy began.
	since unix.Timespec
	// root is the target's top folder: hard links are made relative to it,
	// its filesystem's free space is watched.
	root int
	room diskRoom
	// written is what the copy charged so far (data written, blocks
	// cloned); budget, when not 0, bounds it.
	written, budget int64
	// seenDirs are the source's folders entered so far.
	seenDirs map[inode]bool
	// links maps a source file with more than one link to its first copy,
	// by its path below root; linkBytes bounds the paths kept.
	links     map[inode]string
	linkBytes int
}

func newTreeCopier(ctx context.Context, dst int) (*treeCopier, error) {
	c := &treeCopier{ctx: ctx, cloned: true, root: dst, seenDirs: map[inode]bool{}, links: map[inode]string{}}
	if err := c.room.refresh(dst); err != nil {
		return nil, fmt.Errorf("reading the target's free space: %w", err)
	}
	return c, nil
}

func mapCopyErr(err error) error {
	switch {
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return spaces.Errorf(spaces.ErrDiskFull, "the engine's disk is full: the checkpoint was not taken")
	case errors.Is(err, errTooDeep):
		return spaces.Errorf(spaces.ErrConflict, "the workspace's folders are nested more than %d deep", maxTreeDepth)
	}
	return err
}

// mapErr maps err as mapCopyErr does, and the copy's own bounds too.
func (c *treeCopier) mapErr(err error) error {
	switch {
	case errors.Is(err, errOverBudget):
		return spaces.Errorf(spaces.ErrConflict, "the workspace grew past what it held when the copy began (%d bytes with the margin): the copy was stopped", c.budget)
	case errors.Is(err, errNoRoom):
		return spaces.Errorf(spaces.ErrDiskFull, "the engine's disk would fall below its reserve of %d bytes free: the copy was stopped", c.room.reserve)
	}
	return mapCopyErr(err)
}

// dir copies the entries of src into dst, then dst's own metadata is set by
// the caller. rel is dst's path below root.
func (c *treeCopier) dir(src, dst, depth int, rel string) error {
	if depth > maxTreeDepth {
		return errTooDeep
	}
	// Readdirnames on a dup: closing the os.File must not close src.
	dup, err := unix.Dup(src)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(dup), "")
	defer d.Close()
	if _, err := d.Seek(0, io.SeekStart); err != nil {
		return err
	}
	for {
		names, err := d.Readdirnames(512)
		for _, n := range names {
			if err := c.entry(src, dst, n, depth, rel); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && len(names) == 0) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func below(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

// entry copies one entry name of src into dst.
func (c *treeCopier) entry(src, dst int, name string, depth int, rel string) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(src, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return ignoreENOENT(err)
	}
	times := []unix.Timespec{st.Atim, st.Mtim}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		sfd, err := openat(src, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return skipSwapped(err)
		}
		defer unix.Close(sfd)
		var fst unix.Stat_t
		if err := unix.Fstat(sfd, &fst); err != nil {
			return err
		}
		// A folder met again was moved during the walk: copied once, as
		// it was where the walk met it first.
		if c.seenDirs[inodeOf(&fst)] {
			return nil
		}
		c.seenDirs[inodeOf(&fst)] = true
		if err := unix.Mkdirat(dst, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		dfd, err := openat(dst, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(dfd)
		if err := c.dir(sfd, dfd, depth+1, below(rel, name)); err != nil {
			return err
		}
		return setMeta(dfd, &fst, []unix.Timespec{fst.Atim, fst.Mtim})
	case unix.S_IFREG:
		return c.file(src, dst, name, below(rel, name))
	case unix.S_IFLNK:
		target, err := readlinkat(src, name)
		if err != nil {
			return ignoreENOENT(err)
		}
		if err := unix.Symlinkat(target, dst, name); err != nil {
			return err
		}
		if err := unix.Fchownat(dst, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		return unix.UtimesNanoAt(dst, name, times, unix.AT_SYMLINK_NOFOLLOW)
	case unix.S_IFIFO:
		if err := unix.Mkfifoat(dst, name, 0o600); err != nil {
			return err
		}
		if err := unix.Fchownat(dst, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if err := unix.Fchmodat(dst, name, st.Mode&0o7777, 0); err != nil {
			return err
		}
		return unix.UtimesNanoAt(dst, name, times, unix.AT_SYMLINK_NOFOLLOW)
	}
	return nil // sockets and devices: nothing to keep
}

// skipSwapped ignores an entry that changed kind or vanished between its
// stat and its open.
func skipSwapped(err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// file copies the regular file name of src into dst, or links it to the
// copy of the same source file made before. rel is its path below root.
func (c *treeCopier) file(src, dst int, name, rel string) error {
	// O_NONBLOCK: an entry swapped for a fifo must not block the open.
	sfd, err := openat(src, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return skipSwapped(err)
	}
	defer unix.Close(sfd)
	var fst unix.Stat_t
	if err := unix.Fstat(sfd, &fst); err != nil {
		return err
	}
	if fst.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil
	}
	if fst.Nlink > 1 {
		if first, ok := c.links[inodeOf(&fst)]; ok {
			err := unix.Linkat(c.root, first, dst, name, 0)
			if err == nil {
				return nil
			}
			// Too many links or a path too long for the target: a copy.
			if !errors.Is(err, unix.EMLINK) && !errors.Is(err, unix.ENAMETOOLONG) && !errors.Is(err, unix.ENOENT) {
				return err
			}
		}
	}
	dfd, err := openat(dst, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	n, err := c.content(sfd, dfd, &fst)
	if err != nil {
		return err
	}
	c.bytes += n
	c.files++
	if fst.Nlink > 1 && len(rel) < unix.PathMax && c.linkBytes+len(rel) <= maxLinkPaths {
		c.links[inodeOf(&fst)] = rel
		c.linkBytes += len(rel)
	}
	return setMeta(dfd, &fst, []unix.Timespec{fst.Atim, fst.Mtim})
}

// content copies the data of sfd into the empty dfd, up to fst's size (the
// size when sfd was opened: a file growing meanwhile is not chased), and
// keeps its holes.
func (c *treeCopier) content(sfd, dfd int, fst *unix.Stat_t) (int64, error) {
	size := fst.Size
	if size == 0 {
		return 0, nil
	}
	if !c.noClone {
		err := unix.IoctlFileClone(dfd, sfd)
		if err == nil {
			if err := c.charge(fst.Blocks*512, false); err != nil {
				return 0, err
			}
			// A file that grew since its open is cut back to its size then.
			return size, unix.Ftruncate(dfd, size)
		}
		c.noClone = errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL)
	}
	c.cloned = false
	for off := int64(0); off < size; {
		start, err := unix.Seek(sfd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // a hole up to the end
		}
		if err != nil {
			return 0, err
		}
		if start >= size {
			break
		}
		end, err := unix.Seek(sfd, start, unix.SEEK_HOLE)
		if errors.Is(err, unix.ENXIO) {
			break // the file shrank
		}
		if err != nil {
			return 0, err
		}
		end = min(end, size)
		if end <= start {
			break
		}
		done, err := c.span(sfd, dfd, start, end)
		if err != nil {
			return 0, err
		}
		if !done {
			break // the file shrank
		}
		off = end
	}
	return size, unix.Ftruncate(dfd, size)
}

// copyChunk is the most the copy writes between two checks of its bounds
// and of its context.
const copyChunk = 16 << 20

// span copies the bytes [start, end) of sfd at the same offsets of dfd, in
// chunks charged before they are written. It reports false when sfd ended
// before end.
func (c *treeCopier) span(sfd, dfd int, start, end int64) (bool, error) {
	for off := start; off < end; {
		if err := c.ctx.Err(); err != nil {
			return false, err
		}
		want := min(end-off, copyChunk)
		if err := c.charge(want, true); err != nil {
			return false, err
		}
		m, err := c.chunk(sfd, dfd, off, int(want))
		c.uncharge(want - int64(m))
		if err != nil {
			return false, err
		}
		if m == 0 {
			return false, nil
		}
		off += int64(m)
	}
	return true, nil
}

// chunk copies at most n bytes at off, in the kernel where it can.
func (c *treeCopier) chunk(sfd, dfd int, off int64, n int) (int, error) {
	if !c.noRange {
		roff, woff := off, off
		m, err := unix.CopyFileRange(sfd, &roff, dfd, &woff, n, 0)
		if err == nil {
			return m, nil
		}
		if !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EOPNOTSUPP) {
			return 0, err
		}
		c.noRange = true
	}
	if c.buf == nil {
		c.buf = make([]byte, 1<<20)
	}
	m, err := unix.Pread(sfd, c.buf[:min(n, len(c.buf))], off)
	for errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
		m, err = unix.Pread(sfd, c.buf[:min(n, len(c.buf))], off)
	}
	if err != nil {
		return 0, err
	}
	for w := 0; w < m; {
		k, err := unix.Pwrite(dfd, c.buf[w:m], off+int64(w))
		if err != nil {
			return w, err
		}
		w += k
	}
	return m, nil
}

// setMeta gives an open copy the owner, mode and times of st; the mode
// after the owner, which clears set-id bits.
func setMeta(fd int, st *unix.Stat_t, times []unix.Timespec) error {
	if err := unix.Fchown(fd, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, st.Mode&0o7777); err != nil {
		return err
	}
	return futimens(fd, times)
}

// futimens sets the times of an open file: utimensat with a NULL path.
func futimens(fd int, times []unix.Timespec) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&times[0])), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// readlinkat reads a symlink's target, bounded by PATH_MAX.
func readlinkat(dir int, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dir, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// emptyTree removes every entry of the open folder dir.
func emptyTree(dir int) error {
	dup, err := unix.Dup(dir)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(dup), "")
	defer d.Close()
	if _, err := d.Seek(0, io.SeekStart); err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := removeTree(dir, n, 0); err != nil {
			return err
		}
	}
	return nil
}

// syncTree makes the copy dst of src (made by copyTree from a moment
// before since) equal to src again, and returns the bytes of its regular
// files: entries whose inode changed at or
// after since (their ctime, which no process can set back), new entries
// and entries of another type are copied again; entries src no longer has
// are removed. It runs while the space is frozen, so that it stays short:
// a walk of the metadata plus what changed since the copy.
//
// The space is frozen, so its tree cannot grow meanwhile: syncTree has no
// budget, but keeps the target's reserve free and stops when ctx ends.
func syncTree(ctx context.Context, src, dst int, since time.Time) (copied int64, err error) {
	c, err := newTreeCopier(ctx, dst)
	if err != nil {
		return 0, err
	}
	c.since = unix.NsecToTimespec(since.UnixNano())
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return 0, err
	}
	c.seenDirs[inodeOf(&st)] = true
	if err := c.sync(src, dst, 0, ""); err != nil {
		return c.bytes, c.mapErr(err)
	}
	if err := setMeta(dst, &st, []unix.Timespec{st.Atim, st.Mtim}); err != nil {
		return c.bytes, c.mapErr(err)
	}
	return c.bytes, nil
}

func (c *treeCopier) changed(st *unix.Stat_t) bool {
	return st.Ctim.Sec > c.since.Sec || (st.Ctim.Sec == c.since.Sec && st.Ctim.Nsec >= c.since.Nsec)
}

func (c *treeCopier) sync(src, dst, depth int, rel string) error {
	if depth > maxTreeDepth {
		return errTooDeep
	}
	have, err := dirNames(dst)
	if err != nil {
		return err
	}
	names, err := dirNames(src)
	if err != nil {
		return err
	}
	keep := make(map[string]bool, len(names))
	for _, name := range names {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		keep[name] = true
		var st, dt unix.Stat_t
		if err := unix.Fstatat(src, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				delete(keep, name)
				continue
			}
			return err
		}
		derr := unix.Fstatat(dst, name, &dt, unix.AT_SYMLINK_NOFOLLOW)
		sameType := derr == nil && dt.Mode&unix.S_IFMT == st.Mode&unix.S_IFMT
		if st.Mode&unix.S_IFMT == unix.S_IFDIR && sameType {
			sfd, err := openat(src, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
			if err != nil {
				return skipSwapped(err)
			}
			var fst unix.Stat_t
			if err := unix.Fstat(sfd, &fst); err != nil {
				unix.Close(sfd)
				return err
			}
			if c.seenDirs[inodeOf(&fst)] {
				unix.Close(sfd)
				continue
			}
			c.seenDirs[inodeOf(&fst)] = true
			dfd, err := openat(dst, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
			if err != nil {
				unix.Close(sfd)
				return err
			}
			err = c.sync(sfd, dfd, depth+1, below(rel, name))
			if err == nil {
				err = setMeta(dfd, &st, []unix.Timespec{st.Atim, st.Mtim})
			}
			unix.Close(sfd)
			unix.Close(dfd)
			if err != nil {
				return err
			}
			continue
		}
		if sameType && !c.changed(&st) {
			if st.Mode&unix.S_IFMT == unix.S_IFREG {
				c.bytes += st.Size
			}
			continue
		}
		if derr == nil {
			if err := removeTree(dst, name, 0); err != nil {
				return err
			}
		}
		if err := c.entry(src, dst, name, depth, rel); err != nil {
			return err
		}
	}
	for _, name := range have {
		if !keep[name] {
			if err := removeTree(dst, name, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// dirNames lists the open folder dir.
func dirNames(dir int) ([]string, error) {
	dup, err := unix.Dup(dir)
	if err != nil {
		return nil, err
	}
	d := os.NewFile(uintptr(dup), "")
	defer d.Close()
	if _, err := d.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return d.Readdirnames(-1)
}
