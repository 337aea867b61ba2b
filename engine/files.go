package engine

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/spaces"
)

// isNoSuchContainer tells a missing container from a missing path: the
// archive endpoints answer 404 for both.
func isNoSuchContainer(err error) bool {
	return cerrdefs.IsNotFound(err) && strings.Contains(err.Error(), "No such container")
}

// mapPathErr maps archive-endpoint errors for path p.
func mapPathErr(err error, p, what string) error {
	switch {
	case err == nil:
		return nil
	case isNoSuchContainer(err):
		return spaces.SpaceNotFound()
	case cerrdefs.IsNotFound(err):
		return spaces.PathNotFound(p)
	case strings.Contains(err.Error(), "not a directory"):
		return spaces.Errorf(spaces.ErrInvalid, "%s: a part of the path is not a folder", spaces.DisplayPath(p))
	}
	return mapErr(err, what)
}

func fileType(m fs.FileMode) spaces.FileType {
	switch {
	case m.IsRegular():
		return spaces.TypeFile
	case m.IsDir():
		return spaces.TypeDir
	case m&fs.ModeSymlink != 0:
		return spaces.TypeSymlink
	}
	return spaces.TypeOther
}

func fromPathStat(p string, st container.PathStat) spaces.FileInfo {
	return spaces.FileInfo{
		Name:       st.Name,
		Path:       p,
		Type:       fileType(st.Mode),
		Size:       st.Size,
		Mode:       uint32(st.Mode.Perm()),
		MTime:      st.Mtime.UTC(),
		LinkTarget: st.LinkTarget,
	}
}

// StatPath describes one path with a HEAD on the archive endpoint.
func (e *Engine) StatPath(ctx context.Context, name, p string) (spaces.FileInfo, error) {
	var st container.PathStat
	err := e.onSpace(ctx, name, func(id string) error {
		res, err := e.c.ContainerStatPath(ctx, id, client.ContainerStatPathOptions{Path: p})
		st = res.Stat
		return err
	})
	if err != nil {
		return spaces.FileInfo{}, mapPathErr(err, p, "reading file information")
	}
	return fromPathStat(p, st), nil
}

// ReadFile streams one regular file out of the space through the archive
// endpoint; only the tar framing is parsed, the content is never buffered.
func (e *Engine) ReadFile(ctx context.Context, name, p string) (spaces.FileInfo, io.ReadCloser, error) {
	var res client.CopyFromContainerResult
	err := e.onSpace(ctx, name, func(id string) (err error) {
		res, err = e.c.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: p})
		return err
	})
	if err != nil {
		return spaces.FileInfo{}, nil, mapPathErr(err, p, "reading file")
	}
	info := fromPathStat(p, res.Stat)
	if info.Type != spaces.TypeFile {
		res.Content.Close()
		return info, nil, nil
	}
	tr := tar.NewReader(res.Content)
	hdr, err := tr.Next()
	if err != nil {
		res.Content.Close()
		return info, nil, fmt.Errorf("reading file archive: %w", err)
	}
	info.Size = hdr.Size
	return info, readCloser{Reader: tr, Closer: res.Content}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// WriteFiles streams a tar of the folders and the file into Dir. Entries
// carry the sandbox user's uid and gid, which the engine applies.
func (e *Engine) WriteFiles(ctx context.Context, name string, w spaces.FileWrite) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, w)) }()
	err := e.onSpace(ctx, name, func(id string) error {
		_, err := e.c.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: w.Dir, Content: pr})
		return err
	})
	pr.CloseWithError(errors.New("write finished"))
	if err != nil {
		if strings.Contains(err.Error(), "cannot overwrite") {
			return spaces.Errorf(spaces.ErrInvalid, "%s: a folder is in the way", spaces.DisplayPath(w.Dir))
		}
		return mapPathErr(err, w.Dir, "writing file")
	}
	return nil
}

func writeTar(out io.Writer, w spaces.FileWrite) error {
	bw := bufio.NewWriterSize(out, 64<<10)
	tw := tar.NewWriter(bw)
	now := time.Now()
	for _, d := range w.Dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755,
			Uid: spaces.SandboxUID, Gid: spaces.SandboxUID, ModTime: now, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	if f := w.File; f != nil {
		mode := int64(f.Mode)
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.Name, Mode: mode, Size: f.Size,
			Uid: spaces.SandboxUID, Gid: spaces.SandboxUID, ModTime: now, Format: tar.FormatPAX}); err != nil {
			return err
		}
		n, err := io.Copy(tw, f.Content)
		if err != nil {
			return err
		}
		if n != f.Size {
			return fmt.Errorf("file content ended after %d of %d bytes", n, f.Size)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// ListDir lists a folder with find and stat in the space (as its user), or,
// for images without them, from the folder's archive.
func (e *Engine) ListDir(ctx context.Context, name, dir string) ([]spaces.FileInfo, error) {
	var stdout, stderr bytes.Buffer
	code, err := e.Exec(ctx, name, spaces.ExecSpec{
		Cmd:    []string{"find", dir, "-mindepth", "1", "-maxdepth", "1", "-exec", "stat", "-c", "%f/%s/%Y/%n", "{}", "+"},
		Stdout: &stdout, Stderr: &stderr,
	})
	if err != nil {
		return nil, err
	}
	if spaces.MissingTool(code) {
		return e.listDirFromArchive(ctx, name, dir)
	}
	entries := parseStatLines(dir, stdout.String())
	if code != 0 && len(entries) == 0 {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "Permission denied") {
			return nil, spaces.Errorf(spaces.ErrForbidden, "%s: permission denied", spaces.DisplayPath(dir))
		}
		if strings.Contains(msg, "No such file") {
			return nil, spaces.PathNotFound(dir)
		}
		return nil, spaces.Errorf(spaces.ErrInvalid, "listing %s: %s", spaces.DisplayPath(dir), msg)
	}
	return entries, nil
}

// parseStatLines parses "hexmode/size/mtime/path" lines.
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

func unixType(mode uint32) spaces.FileType {
	switch mode & 0o170000 {
	case 0o100000:
		return spaces.TypeFile
	case 0o040000:
		return spaces.TypeDir
	case 0o120000:
		return spaces.TypeSymlink
	}
	return spaces.TypeOther
}

// listDirFromArchive reads a folder's tar and keeps its direct entries. The
// engine sends the whole tree, so this is the slow path for bare images.
func (e *Engine) listDirFromArchive(ctx context.Context, name, dir string) ([]spaces.FileInfo, error) {
	var res client.CopyFromContainerResult
	err := e.onSpace(ctx, name, func(id string) (err error) {
		res, err = e.c.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: dir})
		return err
	})
	if err != nil {
		return nil, mapPathErr(err, dir, "listing folder")
	}
	defer res.Content.Close()
	tr := tar.NewReader(res.Content)
	var list []spaces.FileInfo
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return list, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading folder archive: %w", err)
		}
		// Entries are "base/child..." where base is the folder's own name.
		rest := strings.Trim(hdr.Name, "/")
		_, child, ok := strings.Cut(rest, "/")
		if !ok || child == "" || strings.Contains(child, "/") {
			continue
		}
		fi := hdr.FileInfo()
		list = append(list, spaces.FileInfo{
			Name: child, Path: path.Join(dir, child), Type: fileType(fi.Mode()), Size: hdr.Size,
			Mode: uint32(fi.Mode().Perm()), MTime: hdr.ModTime.UTC(), LinkTarget: hdr.Linkname,
		})
	}
}

// RemovePath deletes with rm in the space, as its user.
func (e *Engine) RemovePath(ctx context.Context, name, p string) error {
	var stderr bytes.Buffer
	code, err := e.Exec(ctx, name, spaces.ExecSpec{Cmd: []string{"rm", "-rf", "--", p}, Stderr: &stderr})
	if err != nil {
		return err
	}
	switch {
	case spaces.MissingTool(code):
		return spaces.Errorf(spaces.ErrInvalid, "this space's image has no rm, so files cannot be deleted")
	case code != 0 && strings.Contains(stderr.String(), "Permission denied"):
		return spaces.Errorf(spaces.ErrForbidden, "%s: permission denied", spaces.DisplayPath(p))
	case code != 0:
		return spaces.Errorf(spaces.ErrInvalid, "deleting %s: %s", spaces.DisplayPath(p), strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Top lists a space's processes through the engine (ps runs on the host).
func (e *Engine) Top(ctx context.Context, name string) ([]spaces.Process, error) {
	var (
		res client.ContainerTopResult
		cid string
	)
	err := e.onSpace(ctx, name, func(id string) (err error) {
		cid = id
		res, err = e.c.ContainerTop(ctx, id, client.ContainerTopOptions{Arguments: []string{"-o", "pid,pcpu,pmem,etime,args"}})
		return err
	})
	if err != nil {
		return nil, mapErr(err, "listing processes")
	}
	procs := parseTop(res.Titles, res.Processes)
	// The engine reports host PIDs; show the ones the space itself sees
	// where the node can tell (it runs on the engine's host).
	for i, p := range procs {
		if inContainer("/proc", p.PID, cid) {
			if ns := namespacePID("/proc", p.PID); ns > 0 {
				procs[i].PID = ns
			}
		}
	}
	return procs, nil
}

func parseTop(titles []string, rows [][]string) []spaces.Process {
	col := map[string]int{}
	for i, t := range titles {
		col[strings.ToUpper(t)] = i
	}
	get := func(row []string, names ...string) string {
		for _, n := range names {
			if i, ok := col[n]; ok && i < len(row) {
				return row[i]
			}
		}
		return ""
	}
	out := make([]spaces.Process, 0, len(rows))
	for _, r := range rows {
		pid, _ := strconv.Atoi(get(r, "PID"))
		cpu, _ := strconv.ParseFloat(get(r, "%CPU"), 64)
		mem, _ := strconv.ParseFloat(get(r, "%MEM"), 64)
		out = append(out, spaces.Process{PID: pid, CPU: cpu, Mem: mem, Etime: get(r, "ELAPSED", "ETIME"), Command: get(r, "COMMAND", "CMD")})
	}
	return out
}
