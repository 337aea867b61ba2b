package store

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/adam91holt/clawdspace/spaces"
)

// lowSpace is how little free space counts as a full disk when SQLite
// reports only an I/O error (growing its shared-memory index, say).
const lowSpace = 64 << 10

// mapFull marks *err as spaces.ErrDiskFull when the database could not
// write because the disk that holds it is full; deferred by every write.
func (s *Store) mapFull(err *error) {
	if *err != nil && isFull(*err, s.dir) {
		*err = fmt.Errorf("%w: %w", spaces.ErrDiskFull, *err)
	}
}

// isFull: SQLITE_FULL, ENOSPC or EDQUOT, or an I/O error of SQLite while
// the folder dir has (almost) no space left.
func isFull(err error, dir string) bool {
	if errors.Is(err, spaces.ErrDiskFull) {
		return false // already marked
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_FULL:
		return true
	case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN:
		free, ok := FreeBytes(dir)
		return ok && free < lowSpace
	}
	return false
}

// FreeBytes is the space left to unprivileged writers in dir's file system.
func FreeBytes(dir string) (uint64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return st.Bavail * uint64(st.Bsize), true
}
