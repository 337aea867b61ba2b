package engine

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"
)

// Docker fixes a container's host name when it creates it: the UTS
// namespace gets it at each start, and the hostname and hosts files the
// container sees (bind mounts of files in the engine's folder) are written
// from it. A claimed pool member (pool.go) was made with poolHostname, so
// the node, root on the engine's host, sets the space's name in all three;
// a later start of the container (after a stop) brings Docker's back, and
// Resume sets it again.

// selfUTS opens the UTS namespace of the calling thread, where threads go
// back to after setting a space's host name (see selfNetNS for why the
// thread's).
func selfUTS() (*os.File, error) {
	return os.Open("/proc/thread-self/ns/uts")
}

// setHostname gives the running (or paused) container c the host name
// name, when it was made with the pool's.
func (e *Engine) setHostname(c container.InspectResponse, name string) error {
	if c.Config == nil || c.Config.Hostname != poolHostname || name == poolHostname {
		return nil // not a pooled space's container (or one named like the pool's)
	}
	if e.selfUTS == nil {
		return fmt.Errorf("setting the space's host name: %s", e.noUTS)
	}
	if c.State == nil || c.State.Pid <= 0 {
		return fmt.Errorf("setting the space's host name: the container does not run")
	}
	ns, err := os.Open("/proc/" + strconv.Itoa(c.State.Pid) + "/ns/uts")
	if err != nil {
		return fmt.Errorf("opening the space's UTS namespace: %w", err)
	}
	defer ns.Close()
	// The pid is the container's (its process may have ended and the
	// number been reused before the open).
	if !inContainer("/proc", c.State.Pid, c.ID) {
		return fmt.Errorf("setting the space's host name: the container's process has changed")
	}
	errc := make(chan error, 1)
	go func() {
		// As in socketIn: a thread that cannot go back stays locked and
		// ends with the goroutine.
		runtime.LockOSThread()
		back, err := sethostnameIn(e.selfUTS, ns, name)
		if back {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		return err
	}
	if err := rewriteFile(c.HostnamePath, func([]byte) []byte { return []byte(name + "\n") }); err != nil {
		return fmt.Errorf("writing the space's hostname file: %w", err)
	}
	if err := rewriteFile(c.HostsPath, func(b []byte) []byte { return replaceWord(b, poolHostname, name) }); err != nil {
		return fmt.Errorf("writing the space's hosts file: %w", err)
	}
	return nil
}

// sethostnameIn sets the host name in the UTS namespace ns on the locked
// calling thread and goes back to self. back reports whether it did.
func sethostnameIn(self, ns *os.File, name string) (back bool, err error) {
	if err := setNS(ns, unix.CLONE_NEWUTS); err != nil {
		return true, fmt.Errorf("entering the space's UTS namespace: %w", err)
	}
	herr := unix.Sethostname([]byte(name))
	if err := setNS(self, unix.CLONE_NEWUTS); err != nil {
		return false, fmt.Errorf("going back to the node's UTS namespace: %w", err)
	}
	if herr != nil {
		return true, fmt.Errorf("setting the space's host name: %w", herr)
	}
	return true, nil
}

// rewriteFile rewrites a file of the engine's folder in place (the
// container sees it through a bind mount of this very inode). The path
// comes from the engine, and the node writes as root: it is opened with no
// symlink anywhere along it (openat2 RESOLVE_NO_SYMLINKS), and must be a
// regular file that root owns, as the engine's own files are.
func rewriteFile(path string, edit func([]byte) []byte) error {
	if path == "" {
		return nil // the engine keeps none (network of another container)
	}
	f, err := openEngineFile(path)
	if err != nil {
		return err
	}
	defer f.Close()
	old, err := readSmall(f, 1<<20)
	if err != nil {
		return err
	}
	b := edit(old)
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	if err := f.Truncate(int64(len(b))); err != nil {
		return err
	}
	return f.Close()
}

// openEngineFile opens a file of the engine's folder to rewrite it: no
// symlink along the path, a regular file, owned by root.
func openEngineFile(path string) (*os.File, error) {
	fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{
		Flags:   unix.O_RDWR | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", path)
	case st.Uid != 0:
		f.Close()
		return nil, fmt.Errorf("%s is not root's (owner %d)", path, st.Uid)
	}
	return f, nil
}

// hostnameUnsupported says why the node cannot set host names for the
// engine at the unix socket path with data folder root (pool.go), "" when
// it can: it writes files of the engine's folder as root, so it trusts
// them only from an engine that runs as root (whose socket root owns: a
// rootless engine's files are its user's), in a folder it reaches with no
// symlink, on a kernel that has openat2.
func hostnameUnsupported(socket, root string) string {
	var st unix.Stat_t
	if err := unix.Stat(socket, &st); err != nil {
		return "it cannot look at the engine's socket"
	}
	if st.Uid != 0 {
		return "the engine's socket is not root's (a rootless engine)"
	}
	if root == "" {
		return "the engine does not say where its folder is"
	}
	fd, err := unix.Openat2(unix.AT_FDCWD, root, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | unix.O_DIRECTORY,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	switch {
	case errors.Is(err, unix.ENOSYS):
		return "the kernel has no openat2"
	case err != nil:
		return "the engine's folder cannot be reached without a symlink"
	}
	unix.Close(fd)
	return ""
}

// readSmall reads a whole file of at most max bytes.
func readSmall(f *os.File, max int64) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", f.Name(), max)
	}
	b := make([]byte, st.Size())
	n, err := f.ReadAt(b, 0)
	if err != nil && n != len(b) {
		return nil, err
	}
	return b, nil
}

// replaceWord replaces every whitespace-delimited field of b equal to old
// by new, keeping the rest as it is.
func replaceWord(b []byte, old, new string) []byte {
	var out bytes.Buffer
	for i := 0; i < len(b); {
		j := i
		for j < len(b) && !isSpace(b[j]) {
			j++
		}
		if string(b[i:j]) == old {
			out.WriteString(new)
		} else {
			out.Write(b[i:j])
		}
		for j < len(b) && isSpace(b[j]) {
			out.WriteByte(b[j])
			j++
		}
		i = j
	}
	return out.Bytes()
}
