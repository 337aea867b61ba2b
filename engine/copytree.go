package engine

import (
	"errors"
	"io"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/adam91holt/clawdspace/spaces"
)

// copyTree copies the folder tree under the open folder src into the open
// folder dst (both on this host, e.g. volumes' _data folders), keeping
// owner, mode, times and symlinks as they are. Each file is first cloned
// (FICLONE: a reflink, which shares blocks on btrfs and xfs and costs no
// space), else copied in the kernel (copy_file_range), else read and
// written. It never follows a symlink: every entry is opened relative to
// its folder with O_NOFOLLOW, so a tree that changes meanwhile (the space
// is hostile) leads nowhere outside it. Hard links become separate files;
// sockets and devices are left out. It returns the bytes of the regular
// files it copied and whether every file was cloned.
func copyTree(src, dst int) (copied int64, cloned bool, err error) {
	c := &treeCopier{cloned: true}
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return 0, false, err
	}
	if err := c.dir(src, dst, 0); err != nil {
		return c.bytes, false, mapCopyErr(err)
	}
	if err := setMeta(dst, &st, []unix.Timespec{st.Atim, st.Mtim}); err != nil {
		return c.bytes, false, mapCopyErr(err)
	}
	return c.bytes, c.cloned && c.files > 0, nil
}

type treeCopier struct {
	bytes  int64
	files  int
	cloned bool
	// noClone is set once the filesystem refused a clone: it refuses
	// every one.
	noClone bool
	buf     []byte
	// since (syncTree) is when the first copy began.
	since unix.Timespec
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

// dir copies the entries of src into dst, then dst's own metadata is set by
// the caller.
func (c *treeCopier) dir(src, dst, depth int) error {
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
			if err := c.entry(src, dst, n, depth); err != nil {
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

// entry copies one entry name of src into dst.
func (c *treeCopier) entry(src, dst int, name string, depth int) error {
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
		if err := unix.Mkdirat(dst, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		dfd, err := openat(dst, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(dfd)
		if err := c.dir(sfd, dfd, depth+1); err != nil {
			return err
		}
		return setMeta(dfd, &st, times)
	case unix.S_IFREG:
		return c.file(src, dst, name, &st)
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

func (c *treeCopier) file(src, dst int, name string, st *unix.Stat_t) error {
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
	dfd, err := openat(dst, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	n, err := c.content(sfd, dfd, fst.Size)
	if err != nil {
		return err
	}
	c.bytes += n
	c.files++
	return setMeta(dfd, &fst, []unix.Timespec{fst.Atim, fst.Mtim})
}

// content copies the data of sfd into the empty dfd.
func (c *treeCopier) content(sfd, dfd int, size int64) (int64, error) {
	if size == 0 {
		return 0, nil
	}
	if !c.noClone {
		err := unix.IoctlFileClone(dfd, sfd)
		if err == nil {
			return size, nil
		}
		c.noClone = errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL)
	}
	c.cloned = false
	var n int64
	for {
		m, err := unix.CopyFileRange(sfd, nil, dfd, nil, 1<<30, 0)
		if err != nil {
			if n == 0 && (errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)) {
				return c.readWrite(sfd, dfd)
			}
			return n, err
		}
		if m == 0 {
			return n, nil
		}
		n += int64(m)
	}
}

func (c *treeCopier) readWrite(sfd, dfd int) (int64, error) {
	if c.buf == nil {
		c.buf = make([]byte, 1<<20)
	}
	var n int64
	for {
		m, err := unix.Read(sfd, c.buf)
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			return n, err
		}
		if m == 0 {
			return n, nil
		}
		for w := 0; w < m; {
			k, err := unix.Write(dfd, c.buf[w:m])
			if err != nil {
				return n, err
			}
			w += k
		}
		n += int64(m)
	}
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
func syncTree(src, dst int, since time.Time) (copied int64, err error) {
	c := &treeCopier{cloned: true, since: unix.NsecToTimespec(since.UnixNano())}
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return 0, err
	}
	if err := c.sync(src, dst, 0); err != nil {
		return c.bytes, mapCopyErr(err)
	}
	if err := setMeta(dst, &st, []unix.Timespec{st.Atim, st.Mtim}); err != nil {
		return c.bytes, mapCopyErr(err)
	}
	return c.bytes, nil
}

func (c *treeCopier) changed(st *unix.Stat_t) bool {
	return st.Ctim.Sec > c.since.Sec || (st.Ctim.Sec == c.since.Sec && st.Ctim.Nsec >= c.since.Nsec)
}

func (c *treeCopier) sync(src, dst, depth int) error {
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
			dfd, err := openat(dst, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
			if err != nil {
				unix.Close(sfd)
				return err
			}
			err = c.sync(sfd, dfd, depth+1)
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
		if err := c.entry(src, dst, name, depth); err != nil {
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
