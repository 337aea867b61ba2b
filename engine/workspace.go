package engine

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/adam91holt/clawdspace/spaces"
)

// File operations never use the engine's archive endpoints: they act as
// root inside the container, on a path the space can change under them.
// Where the node sees the workspace on the engine's host (it runs there as
// root, the normal case), it acts there, confined by the kernel (hostfs.go);
// elsewhere it runs a small script in the space as the sandbox user
// (spacefs), which can do nothing the space's own code could not.

// workspace opens the space's workspace folder on this host, or returns nil
// when the node cannot see it (a remote engine, a node without root, a node
// in a container without the volumes, or Config.FilesInSpace).
func (e *Engine) workspace(ctx context.Context, name string) (*hostfs, error) {
	if e.filesInSpace || !strings.HasPrefix(e.c.DaemonHost(), "unix://") {
		return nil, nil // the script in the space finds a missing space itself
	}
	// One inspect by name: it verifies the space and gives its mounts.
	c, err := e.inspectSpace(ctx, name)
	if err != nil {
		return nil, err
	}
	src := ""
	for _, m := range c.Mounts {
		if m.Destination == spaces.WorkspacePath {
			src = m.Source
		}
	}
	if src == "" {
		return nil, nil
	}
	fd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil // not visible from here
	}
	// Where the container runs, its /workspace must be this very folder.
	if c.State != nil && c.State.Pid > 0 {
		var mine, theirs unix.Stat_t
		if unix.Stat("/proc/"+strconv.Itoa(c.State.Pid)+"/root"+spaces.WorkspacePath, &theirs) == nil &&
			unix.Fstat(fd, &mine) == nil && (mine.Dev != theirs.Dev || mine.Ino != theirs.Ino) {
			unix.Close(fd)
			return nil, nil
		}
	}
	return &hostfs{root: fd, run: e.run}, nil
}

// StatPath describes path; a last symlink inside the workspace is followed
// when follow is set.
func (e *Engine) StatPath(ctx context.Context, name, p string, follow bool) (spaces.FileInfo, error) {
	h, err := e.workspace(ctx, name)
	if err != nil {
		return spaces.FileInfo{}, err
	}
	if h != nil {
		defer h.close()
		return h.stat(p, follow)
	}
	return e.spaceStat(ctx, name, p, follow)
}

// OpenFile opens a regular file at offset.
func (e *Engine) OpenFile(ctx context.Context, name, p string, offset int64) (spaces.FileInfo, io.ReadCloser, error) {
	h, err := e.workspace(ctx, name)
	if err != nil {
		return spaces.FileInfo{}, nil, err
	}
	if h != nil {
		defer h.close()
		return h.open(p, offset)
	}
	return e.spaceOpen(ctx, name, p, offset)
}

// WriteFile writes a whole file beside its name and renames it over it.
func (e *Engine) WriteFile(ctx context.Context, name, p string, f spaces.FileContent) error {
	h, err := e.workspace(ctx, name)
	if err != nil {
		return err
	}
	if h != nil {
		defer h.close()
		return h.write(p, f)
	}
	return e.spaceWrite(ctx, name, p, f)
}

// MakeDir makes a folder and its parents.
func (e *Engine) MakeDir(ctx context.Context, name, p string) error {
	h, err := e.workspace(ctx, name)
	if err != nil {
		return err
	}
	if h != nil {
		defer h.close()
		return h.mkdir(p)
	}
	_, err = e.spaceRun(ctx, name, nil, nil, "mkdir", p)
	return err
}

// ListDir lists a folder.
func (e *Engine) ListDir(ctx context.Context, name, p string) ([]spaces.FileInfo, error) {
	h, err := e.workspace(ctx, name)
	if err != nil {
		return nil, err
	}
	if h != nil {
		defer h.close()
		return h.list(p)
	}
	var out strings.Builder
	if _, err := e.spaceRun(ctx, name, nil, &out, "list", p); err != nil {
		return nil, err
	}
	list := parseStatLines(".", out.String())
	for i := range list {
		list[i].Path = p + "/" + list[i].Name
	}
	return list, nil
}

// RemovePath deletes a file or symlink, or a folder when recursive is set.
func (e *Engine) RemovePath(ctx context.Context, name, p string, recursive bool) error {
	h, err := e.workspace(ctx, name)
	if err != nil {
		return err
	}
	if h != nil {
		defer h.close()
		return h.remove(p, recursive)
	}
	_, err = e.spaceRun(ctx, name, nil, nil, "remove", p, strconv.FormatBool(recursive))
	return err
}

// spaceScript does one file operation in the space as the sandbox user:
// $1 the operation, $2 the path, then its arguments. The deepest existing
// part of the path must resolve inside /workspace (a last symlink too,
// where it is followed). What it then does runs with the space user's own
// rights, so a folder swapped for a symlink meanwhile reaches nothing the
// space could not reach itself. Exit codes: 3 outside, 4 missing, 5 a
// folder where a file is needed, 6 a folder to delete without recursive,
// 7 not a folder, 8 not a regular file, 10 unresolvable (a symlink loop);
// other failures print why.
const spaceScript = `set -u
op=$1 p=$2
inws() { case "$1" in /workspace|/workspace/*) ;; *) exit 3;; esac; }
q=$p
while [ ! -e "$q" ] && [ ! -L "$q" ]; do q=${q%/*}; done
if [ "$q" = "$p" ] && [ -L "$p" ] && { [ "$op" = lstat ] || [ "$op" = remove ]; }; then
  r=$(readlink -f -- "${p%/*}") || exit 10
else
  r=$(readlink -f -- "$q") || exit 10
fi
[ -n "$r" ] || exit 10
inws "$r"
found=no; [ "$q" = "$p" ] && found=yes
if [ $found = yes ] && [ "$op" != lstat ] && [ "$op" != remove ]; then p=$r; fi
case $op in
stat|lstat)
  [ $found = yes ] || exit 4
  stat -c '%f/%s/%Y' -- "$p" || exit 9
  if [ -L "$p" ]; then readlink -- "$p"; fi
  exit 0;;
read)
  [ -e "$p" ] || exit 4; [ -d "$p" ] && exit 5; [ -f "$p" ] || exit 8
  if [ "$3" -gt 0 ]; then
    # dd seeks to the block; tail drops the rest (busybox's tail cannot
    # take a large offset itself).
    dd if="$p" bs=4096 skip=$(($3 / 4096)) 2>/dev/null | tail -c +$(($3 % 4096 + 1)); exit
  fi
  exec cat -- "$p";;
write)
  [ -d "$p" ] && exit 5
  d=${p%/*} b=${p##*/}
  mkdir -p -- "$d" || exit 9
  t="$d/.$b.$$` + spaces.UploadSuffix + `"
  if cat > "$t" && chmod "$3" -- "$t" && mv -f -- "$t" "$p"; then exit 0; fi
  rm -f -- "$t"; exit 9;;
mkdir)
  if [ -e "$p" ] && [ ! -d "$p" ]; then exit 7; fi
  exec mkdir -p -- "$p";;
list)
  [ -e "$p" ] || exit 4; [ -d "$p" ] || exit 7
  cd -- "$p" && exec find . -mindepth 1 -maxdepth 1 -exec stat -c '%f/%s/%Y/%n' {} +;;
remove)
  [ -e "$p" ] || [ -L "$p" ] || exit 4
  if [ -d "$p" ] && [ ! -L "$p" ] && [ "$3" != true ]; then exit 6; fi
  exec rm -rf -- "$p";;
esac
exit 9`

// Bounds on the output the node keeps of its own execs in a space: a
// folder's listing, and any other file operation's (a stat, a sweep).
const (
	maxListOutput     = 32 << 20
	maxSpaceRunOutput = 1 << 20
)

// spaceRun runs spaceScript for op on p and maps its exit code.
func (e *Engine) spaceRun(ctx context.Context, name string, stdin io.Reader, stdout io.Writer, op, p string, args ...string) (int, error) {
	var stderr limitedWriter
	if stdout == nil {
		stdout = io.Discard
	}
	cmd := append([]string{"sh", "-c", spaceScript, "sh", op, p}, args...)
	// What the node keeps of the output is bounded (the space, or whoever
	// holds its agent's socket, may print without end); a read streams to
	// its caller, which the space cannot make the node buffer.
	var max int64
	switch op {
	case "read":
	case "list":
		max = maxListOutput
	default:
		max = maxSpaceRunOutput
	}
	code, err := e.Exec(ctx, name, spaces.ExecSpec{Cmd: cmd, Stdin: stdin, Stdout: stdout, Stderr: &stderr, MaxOutput: max})
	if err != nil {
		return code, err
	}
	d := spaces.DisplayPath(p)
	switch code {
	case 0:
		return 0, nil
	case 3:
		return code, spaces.Errorf(spaces.ErrForbidden, "%s: a symlink on the way points outside /workspace", d)
	case 4:
		return code, spaces.PathNotFound(p)
	case 5:
		return code, spaces.Errorf(spaces.ErrInvalid, "%s is a folder, not a file", d)
	case 6:
		return code, spaces.Errorf(spaces.ErrInvalid, "%s is a folder: pass recursive=true to delete it with its contents", d)
	case 7:
		return code, spaces.Errorf(spaces.ErrInvalid, "%s exists and is not a folder", d)
	case 8:
		return code, spaces.Errorf(spaces.ErrInvalid, "%s is not a regular file", d)
	case 10:
		return code, spaces.Errorf(spaces.ErrInvalid, "%s: too many levels of symlinks", d)
	case 126, 127:
		return code, spaces.Errorf(spaces.ErrInvalid, "this space's image has no sh, so its files cannot be reached from this node")
	}
	msg := strings.TrimSpace(stderr.String())
	if strings.Contains(msg, "Permission denied") {
		return code, spaces.Errorf(spaces.ErrForbidden, "%s: permission denied", d)
	}
	return code, spaces.Errorf(spaces.ErrInvalid, "%s: %s", d, msg)
}

func (e *Engine) spaceStat(ctx context.Context, name, p string, follow bool) (spaces.FileInfo, error) {
	op := "lstat"
	if follow {
		op = "stat"
	}
	var out strings.Builder
	if _, err := e.spaceRun(ctx, name, nil, &out, op, p); err != nil {
		return spaces.FileInfo{}, err
	}
	first, link, _ := strings.Cut(out.String(), "\n")
	infos := parseStatLines(".", first+"/./"+pathBase(p)+"\n")
	if len(infos) != 1 {
		return spaces.FileInfo{}, fmt.Errorf("reading file information: unexpected output %q", first)
	}
	fi := infos[0]
	fi.Name, fi.Path, fi.LinkTarget = pathBase(p), p, strings.TrimSuffix(link, "\n")
	return fi, nil
}

func pathBase(p string) string {
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[i+1:]
	}
	return p
}

func (e *Engine) spaceOpen(ctx context.Context, name, p string, offset int64) (spaces.FileInfo, io.ReadCloser, error) {
	fi, err := e.spaceStat(ctx, name, p, true)
	if err != nil {
		return spaces.FileInfo{}, nil, err
	}
	switch fi.Type {
	case spaces.TypeDir:
		return spaces.FileInfo{}, nil, spaces.Errorf(spaces.ErrInvalid, "%s is a folder, not a file", spaces.DisplayPath(p))
	case spaces.TypeFile:
	default:
		return spaces.FileInfo{}, nil, spaces.Errorf(spaces.ErrInvalid, "%s is not a regular file", spaces.DisplayPath(p))
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := e.spaceRun(ctx, name, nil, pw, "read", p, strconv.FormatInt(offset, 10))
		pw.CloseWithError(err)
	}()
	return fi, pr, nil
}

func (e *Engine) spaceWrite(ctx context.Context, name, p string, f spaces.FileContent) error {
	mode := f.Mode
	if mode == 0 {
		if fi, err := e.spaceStat(ctx, name, p, true); err == nil && fi.Type == spaces.TypeFile {
			mode = fi.Mode
		} else {
			mode = 0o644
		}
	}
	cr := &countReader{r: f.Content}
	if _, err := e.spaceRun(ctx, name, cr, nil, "write", p, fmt.Sprintf("%o", mode&0o777)); err != nil {
		return err
	}
	if cr.n != f.Size {
		return fmt.Errorf("file content ended after %d of %d bytes", cr.n, f.Size)
	}
	return nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// limitedWriter keeps the first 4 KiB written (an error message).
type limitedWriter struct{ b []byte }

func (w *limitedWriter) Write(p []byte) (int, error) {
	if room := 4096 - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (w *limitedWriter) String() string { return string(w.b) }

// parseStatLines parses "hexmode/size/mtime/path" lines of entries of dir.
func parseStatLines(dir, out string) []spaces.FileInfo {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	var list []spaces.FileInfo
	for _, line := range strings.Split(out, "\n") {
		f := strings.SplitN(line, "/", 4)
		if len(f) != 4 {
			continue
		}
		mode, err1 := strconv.ParseUint(f[0], 16, 32)
		size, err2 := strconv.ParseInt(f[1], 10, 64)
		mtime, err3 := strconv.ParseInt(f[2], 10, 64)
		full := f[3]
		if err1 != nil || err2 != nil || err3 != nil || !strings.HasPrefix(full, prefix) {
			continue
		}
		name := full[len(prefix):]
		if name == "" || strings.Contains(name, "/") {
			continue
		}
		list = append(list, spaces.FileInfo{
			Name: name, Path: full, Type: unixType(uint32(mode)), Size: size,
			Mode: uint32(mode) & 0o7777, MTime: time.Unix(mtime, 0).UTC(),
		})
	}
	return list
}

// SweepUploads removes the hidden files writes that a killed node never
// finished left in the workspace (bounded: see hostfs.sweep), and returns
// their paths. In the space (a node that cannot see the workspace) it runs
// find as the space's user, for a running space only.
func (e *Engine) SweepUploads(ctx context.Context, name string, before time.Time) ([]string, error) {
	h, err := e.workspace(ctx, name)
	if err != nil {
		return nil, err
	}
	if h != nil {
		defer h.close()
		return h.sweep(before)
	}
	var out strings.Builder
	code, err := e.Exec(ctx, name, spaces.ExecSpec{Stdout: &out, MaxOutput: maxSpaceRunOutput, Cmd: []string{"find", spaces.WorkspacePath,
		"-maxdepth", strconv.Itoa(sweepMaxDepth), "-type", "f", "-name", ".*" + spaces.UploadSuffix, "-print", "-exec", "rm", "-f", "{}", "+"}})
	if err != nil {
		return nil, err
	}
	if code != 0 && out.Len() == 0 {
		return nil, nil // no find in the image, or nothing readable
	}
	return strings.Fields(out.String()), nil
}
