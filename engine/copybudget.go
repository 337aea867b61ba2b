package engine

import (
	"context"
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// The bounds of a copy of a space's tree (copyTree): what the tree held
// when the copy began, and the target filesystem's free space.
const (
	// copyMargin is what a copy may write beyond the blocks its tree
	// held, besides an eighth of them: files that a running space writes
	// meanwhile, data that takes more room copied than where it lies.
	copyMargin = 256 << 20
	// maxReserve and reserveShare give the free space a copy leaves on its
	// target: the smaller of 1 GiB and 5% of the filesystem.
	maxReserve   = 1 << 30
	reserveShare = 20
	// roomCheck is how much a copy writes between two reads of the
	// target's free space.
	roomCheck = 64 << 20
	// maxLinkPaths bounds the paths that a copy keeps to link the later
	// names of a file with several to its first copy.
	maxLinkPaths = 64 << 20
)

var (
	// errOverBudget stops a copy that wrote more than its tree held.
	errOverBudget = errors.New("the copy outgrew its tree")
	// errNoRoom stops a copy before the target's reserve.
	errNoRoom = errors.New("the copy would eat the target's reserve")
)

// copyBudget is what a copy of a tree that holds used bytes may write.
func copyBudget(used int64) int64 { return used + used/8 + copyMargin }

// inode names a file: a copy keeps one per source inode.
type inode struct{ dev, ino uint64 }

func inodeOf(st *unix.Stat_t) inode { return inode{dev: st.Dev, ino: st.Ino} }

// measureTree returns the bytes of the blocks that the tree under the open
// folder src holds, each inode counted once, each folder entered once.
func measureTree(ctx context.Context, src int) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return 0, err
	}
	m := &measurer{ctx: ctx, seen: map[inode]bool{inodeOf(&st): true}, used: st.Blocks * 512}
	err := m.dir(src, 0)
	return m.used, err
}

type measurer struct {
	ctx  context.Context
	seen map[inode]bool
	used int64
}

func (m *measurer) dir(src, depth int) error {
	if depth > maxTreeDepth {
		return errTooDeep
	}
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
			if err := m.entry(src, n, depth); err != nil {
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

func (m *measurer) entry(src int, name string, depth int) error {
	if err := m.ctx.Err(); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(src, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return ignoreENOENT(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if st.Nlink > 1 {
			if m.seen[inodeOf(&st)] {
				return nil
			}
			m.seen[inodeOf(&st)] = true
		}
		m.used += st.Blocks * 512
		return nil
	}
	fd, err := openat(src, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return skipSwapped(err)
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if m.seen[inodeOf(&st)] {
		return nil
	}
	m.seen[inodeOf(&st)] = true
	m.used += st.Blocks * 512
	return m.dir(fd, depth+1)
}

// diskRoom follows the free space of a copy's target filesystem.
type diskRoom struct {
	// avail is the free space at the last statfs, less what was written
	// since; reserve is what must stay free.
	avail, reserve int64
	// sinceCheck is what was written since the last statfs.
	sinceCheck int64
}

func (r *diskRoom) refresh(fd int) error {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return err
	}
	r.avail = int64(fs.Bavail) * fs.Bsize
	r.reserve = min(maxReserve, int64(fs.Blocks)*fs.Bsize/reserveShare)
	r.sinceCheck = 0
	return nil
}

// charge counts n bytes that the copy is about to write (uses: on the
// target's disk; else shared blocks of a clone, counted in the budget
// only), or refuses them.
func (c *treeCopier) charge(n int64, uses bool) error {
	if c.budget > 0 && c.written+n > c.budget {
		return errOverBudget
	}
	if uses {
		if c.room.avail-n < c.room.reserve || c.room.sinceCheck >= roomCheck {
			if err := c.room.refresh(c.root); err != nil {
				return err
			}
			if c.room.avail-n < c.room.reserve {
				return errNoRoom
			}
		}
		c.room.avail -= n
		c.room.sinceCheck += n
	}
	c.written += n
	return nil
}

// uncharge gives back what charge counted but was not written.
func (c *treeCopier) uncharge(n int64) {
	c.written -= n
	c.room.avail += n
	c.room.sinceCheck -= n
}
