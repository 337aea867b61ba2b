package spaces

import (
	"context"
	"errors"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
)

// maxLinkHops bounds how many final symlinks a path may pass through.
const maxLinkHops = 8

// resolved is a workspace path after every component was checked.
type resolved struct {
	Path   string   // what to act on: final symlinks inside /workspace followed when asked
	Info   FileInfo // of Path, when Exists
	Exists bool
	// Existing is the deepest existing folder on the way to Path, and
	// Missing the components below it that do not exist yet, in order.
	Existing string
	Missing  []string
}

// resolvePath checks every component of abs (concurrently, one round trip)
// so that no symlink anywhere in the path leads outside /workspace. A final
// symlink inside /workspace is followed when follow is set.
//
// The checks and the action that follows are separate engine calls, so a
// process in the space could swap a folder for a symlink in between. The
// engine resolves every path within the space's own file system, so such a
// race can reach other files of the same space, never the host.
func (s *Service) resolvePath(ctx context.Context, name, abs string, follow bool) (resolved, error) {
	for hop := 0; hop <= maxLinkHops; hop++ {
		comps := prefixes(abs)
		if len(comps) == 0 {
			return resolved{Path: WorkspacePath, Exists: true, Existing: WorkspacePath,
				Info: FileInfo{Name: "workspace", Path: WorkspacePath, Type: TypeDir}}, nil
		}
		infos, errs := s.statAll(ctx, name, comps)
		existing := WorkspacePath
		next := ""
		for i, c := range comps {
			if err := errs[i]; err != nil {
				if errors.Is(err, ErrNotFound) && !errors.Is(err, SpaceNotFound()) {
					missing := make([]string, 0, len(comps)-i)
					for _, m := range comps[i:] {
						missing = append(missing, path.Base(m))
					}
					return resolved{Path: abs, Existing: existing, Missing: missing}, nil
				}
				return resolved{}, err
			}
			fi, last := infos[i], i == len(comps)-1
			if fi.Type == TypeSymlink && !(last && !follow) {
				// A link is only passed through, or followed, inside the
				// workspace; unfollowed (delete) it is just a name.
				if !InWorkspace(fi.LinkTarget) {
					return resolved{}, Errorf(ErrForbidden, "%s is a symlink that points outside /workspace", DisplayPath(c))
				}
				if last {
					next = fi.LinkTarget
					break
				}
			} else if !last && fi.Type != TypeDir {
				return resolved{}, Errorf(ErrInvalid, "%s is not a folder", DisplayPath(c))
			}
			if last {
				return resolved{Path: c, Info: fi, Exists: true, Existing: existing}, nil
			}
			existing = c
		}
		abs = next
	}
	return resolved{}, Errorf(ErrInvalid, "too many levels of symlinks")
}

// prefixes lists /workspace/a, /workspace/a/b, ... for /workspace/a/b.
func prefixes(abs string) []string {
	rel := strings.TrimPrefix(strings.TrimPrefix(abs, WorkspacePath), "/")
	if rel == "" {
		return nil
	}
	parts := strings.Split(rel, "/")
	out := make([]string, len(parts))
	cur := WorkspacePath
	for i, p := range parts {
		cur += "/" + p
		out[i] = cur
	}
	return out
}

func (s *Service) statAll(ctx context.Context, name string, paths []string) ([]FileInfo, []error) {
	infos, errs := make([]FileInfo, len(paths)), make([]error, len(paths))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, p := range paths {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			infos[i], errs[i] = s.cfg.Engine.StatPath(ctx, name, p)
		}()
	}
	wg.Wait()
	return infos, errs
}

// fileAccess wakes a paused space and counts the access as activity, while
// resolve runs: the engine can stat a paused space, so both go at once.
func (s *Service) fileAccess(ctx context.Context, name string, resolve func() (resolved, error)) (resolved, error) {
	if err := ValidateName(name); err != nil {
		return resolved{}, SpaceNotFound()
	}
	var wakeErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		unlock := s.locks.Lock(name)
		defer unlock()
		wakeErr = s.resumeLocked(ctx, name)
	}()
	r, err := resolve()
	<-done
	if wakeErr != nil {
		return resolved{}, wakeErr
	}
	return r, err
}

// ListFiles lists a folder of a space, folders first, then by name.
func (s *Service) ListFiles(ctx context.Context, c Caller, name, p string) (string, []FileInfo, error) {
	abs, err := WorkspacePathOf(p)
	if err != nil {
		return "", nil, err
	}
	r, err := s.fileAccess(ctx, name, func() (resolved, error) { return s.resolvePath(ctx, name, abs, true) })
	if err != nil {
		return "", nil, err
	}
	if !r.Exists {
		return "", nil, PathNotFound(abs)
	}
	if r.Info.Type != TypeDir {
		return "", nil, Errorf(ErrInvalid, "%s is not a folder", DisplayPath(abs))
	}
	entries, err := s.cfg.Engine.ListDir(ctx, name, r.Path)
	if err != nil {
		return "", nil, err
	}
	for i := range entries {
		entries[i].Path = path.Join(abs, entries[i].Name)
	}
	sort.Slice(entries, func(i, j int) bool {
		di, dj := entries[i].Type == TypeDir, entries[j].Type == TypeDir
		if di != dj {
			return di
		}
		return entries[i].Name < entries[j].Name
	})
	return abs, entries, nil
}

// OpenFile opens a regular file of a space for reading.
func (s *Service) OpenFile(ctx context.Context, c Caller, name, p string) (FileInfo, io.ReadCloser, error) {
	abs, err := WorkspacePathOf(p)
	if err != nil {
		return FileInfo{}, nil, err
	}
	r, err := s.fileAccess(ctx, name, func() (resolved, error) { return s.resolvePath(ctx, name, abs, true) })
	if err != nil {
		return FileInfo{}, nil, err
	}
	if !r.Exists {
		return FileInfo{}, nil, PathNotFound(abs)
	}
	if r.Info.Type == TypeDir {
		return FileInfo{}, nil, Errorf(ErrInvalid, "%s is a folder, not a file", DisplayPath(abs))
	}
	info, rc, err := s.cfg.Engine.ReadFile(ctx, name, r.Path)
	if err != nil {
		return FileInfo{}, nil, err
	}
	if rc == nil {
		return FileInfo{}, nil, Errorf(ErrInvalid, "%s is not a regular file", DisplayPath(abs))
	}
	info.Path = abs
	return info, rc, nil
}

// WriteFile writes size bytes from content to a file of a space, creating
// its parent folders; everything written belongs to the sandbox user.
func (s *Service) WriteFile(ctx context.Context, c Caller, name, p string, size int64, content io.Reader) error {
	abs, err := WorkspacePathOf(p)
	if err != nil {
		return err
	}
	if abs == WorkspacePath {
		return Errorf(ErrInvalid, "path must name a file inside /workspace")
	}
	if err := s.audit(ctx, c, name, EventFileWrite, map[string]any{"path": DisplayPath(abs), "size": size}); err != nil {
		return err
	}
	r, err := s.fileAccess(ctx, name, func() (resolved, error) { return s.resolvePath(ctx, name, abs, true) })
	if err != nil {
		return err
	}
	// The content is all on the node by now (in memory or spooled), so the
	// write goes on even if the client leaves: half a write is worse.
	ctx = context.WithoutCancel(ctx)
	if r.Exists && r.Info.Type == TypeFile && size > atomicWriteThreshold {
		return s.replaceFile(ctx, name, r, size, content)
	}
	return s.writeResolved(ctx, name, r, 0, size, content)
}

// atomicWriteThreshold: larger files that replace an existing one go to a
// temporary sibling first and are renamed over it, so a failure midway
// (a full disk, say) leaves the old file as it was. The rename is an exec
// (about as slow as a small write), hence only for large files.
const atomicWriteThreshold = 1 << 20

// replaceFile writes next to the file and renames over it with mv in the
// space, as its user. Images without mv get a direct write.
func (s *Service) replaceFile(ctx context.Context, name string, r resolved, size int64, content io.Reader) error {
	var probe limitedBuffer
	code, err := s.cfg.Engine.Exec(ctx, name, ExecSpec{Cmd: []string{"mv", "--help"}, Stdout: &probe, Stderr: &probe})
	if err != nil {
		return err
	}
	if MissingTool(code) {
		return s.writeResolved(ctx, name, r, 0, size, content)
	}
	dir, base := path.Dir(r.Path), path.Base(r.Path)
	tmp := "." + base + ".clawdspace-upload"
	w := FileWrite{Dir: dir, File: &FileContent{Name: tmp, Size: size, Mode: r.Info.Mode, Content: content}}
	if err := s.cfg.Engine.WriteFiles(ctx, name, w); err != nil {
		_ = s.cfg.Engine.RemovePath(ctx, name, dir+"/"+tmp)
		return err
	}
	var stderr limitedBuffer
	code, err = s.cfg.Engine.Exec(ctx, name, ExecSpec{Cmd: []string{"mv", "-f", "--", dir + "/" + tmp, r.Path}, Stderr: &stderr})
	if err != nil {
		return err
	}
	if code != 0 {
		_ = s.cfg.Engine.RemovePath(ctx, name, dir+"/"+tmp)
		return Errorf(ErrInvalid, "replacing %s: %s", DisplayPath(r.Path), strings.TrimSpace(stderr.String()))
	}
	return nil
}

// writeResolved writes a file at a resolved path: over an existing file
// (keeping its mode unless mode is set) or as a new one with its parents.
func (s *Service) writeResolved(ctx context.Context, name string, r resolved, mode uint32, size int64, content io.Reader) error {
	w := FileWrite{File: &FileContent{Size: size, Mode: mode, Content: content}}
	switch {
	case r.Exists && r.Info.Type == TypeDir:
		return Errorf(ErrInvalid, "%s is a folder, not a file", DisplayPath(r.Path))
	case r.Exists:
		w.Dir, w.File.Name = path.Dir(r.Path), path.Base(r.Path)
		if mode == 0 {
			w.File.Mode = r.Info.Mode
		}
	default:
		w.Dir = r.Existing
		w.Dirs = cumulative(r.Missing[:len(r.Missing)-1])
		w.File.Name = strings.Join(r.Missing, "/")
	}
	return s.cfg.Engine.WriteFiles(ctx, name, w)
}

// cumulative turns [a b c] into [a a/b a/b/c].
func cumulative(parts []string) []string {
	out := make([]string, len(parts))
	for i := range parts {
		out[i] = strings.Join(parts[:i+1], "/")
	}
	return out
}

// MakeDir creates a folder and its parents; an existing folder is fine.
func (s *Service) MakeDir(ctx context.Context, c Caller, name, p string) error {
	abs, err := WorkspacePathOf(p)
	if err != nil {
		return err
	}
	if err := s.audit(ctx, c, name, EventFileMkdir, map[string]any{"path": DisplayPath(abs)}); err != nil {
		return err
	}
	r, err := s.fileAccess(ctx, name, func() (resolved, error) { return s.resolvePath(ctx, name, abs, true) })
	if err != nil {
		return err
	}
	if r.Exists {
		if r.Info.Type == TypeDir {
			return nil
		}
		return Errorf(ErrInvalid, "%s exists and is not a folder", DisplayPath(abs))
	}
	return s.cfg.Engine.WriteFiles(ctx, name, FileWrite{Dir: r.Existing, Dirs: cumulative(r.Missing)})
}

// DeleteFile deletes a file or symlink, or a folder when recursive is set.
func (s *Service) DeleteFile(ctx context.Context, c Caller, name, p string, recursive bool) error {
	abs, err := WorkspacePathOf(p)
	if err != nil {
		return err
	}
	if abs == WorkspacePath {
		return Errorf(ErrInvalid, "the workspace itself cannot be deleted")
	}
	if err := s.audit(ctx, c, name, EventFileDelete, map[string]any{"path": DisplayPath(abs), "recursive": recursive}); err != nil {
		return err
	}
	r, err := s.fileAccess(ctx, name, func() (resolved, error) { return s.resolvePath(ctx, name, abs, false) })
	if err != nil {
		return err
	}
	if !r.Exists {
		return PathNotFound(abs)
	}
	if r.Info.Type == TypeDir && !recursive {
		return Errorf(ErrInvalid, "%s is a folder: pass recursive=true to delete it with its contents", DisplayPath(abs))
	}
	return s.cfg.Engine.RemovePath(ctx, name, r.Path)
}
