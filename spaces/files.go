package spaces

import (
	"context"
	"io"
	"path"
	"sort"
)

// UploadSuffix ends the hidden name (".NAME" + UploadSuffix) a file is
// written to before it is renamed over NAME. One left by a crash is
// removed by SweepUploads.
const UploadSuffix = ".clawdspace-upload"

// fileAccess wakes a paused space and counts the access as activity. The
// engine acts on the files only after, each operation whole (see Engine).
func (s *Service) fileAccess(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return SpaceNotFound()
	}
	unlock := s.locks.Lock(name)
	defer unlock()
	return s.resumeLocked(ctx, name)
}

// ListFiles lists a folder of a space, folders first, then by name.
func (s *Service) ListFiles(ctx context.Context, c Caller, name, p string) (string, []FileInfo, error) {
	if err := s.authorize(ctx, c, name, ActFiles); err != nil {
		return "", nil, err
	}
	abs, err := WorkspacePathOf(p)
	if err != nil {
		return "", nil, err
	}
	if err := s.fileAccess(ctx, name); err != nil {
		return "", nil, err
	}
	entries, err := s.cfg.Engine.ListDir(ctx, name, abs)
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
	if err := s.authorize(ctx, c, name, ActFiles); err != nil {
		return FileInfo{}, nil, err
	}
	abs, err := WorkspacePathOf(p)
	if err != nil {
		return FileInfo{}, nil, err
	}
	if err := s.fileAccess(ctx, name); err != nil {
		return FileInfo{}, nil, err
	}
	info, rc, err := s.cfg.Engine.OpenFile(ctx, name, abs, 0)
	if err != nil {
		return FileInfo{}, nil, err
	}
	info.Path = abs
	return info, rc, nil
}

// WriteFile writes size bytes from content to a file of a space, creating
// its parent folders; everything written belongs to the sandbox user.
func (s *Service) WriteFile(ctx context.Context, c Caller, name, p string, size int64, content io.Reader) error {
	if err := s.authorize(ctx, c, name, ActFiles); err != nil {
		return err
	}
	abs, err := WorkspacePathOf(p)
	if err != nil {
		return err
	}
	if abs == WorkspacePath {
		return FieldErrorf(ErrInvalid, FieldPath, "must name a file inside /workspace")
	}
	if err := s.audit(ctx, c, name, EventFileWrite, map[string]any{"path": DisplayPath(abs), "size": size}); err != nil {
		return err
	}
	if err := s.fileAccess(ctx, name); err != nil {
		return err
	}
	// The content is all on the node by now (in memory or spooled), so the
	// write goes on even if the client leaves: half a write is worse.
	ctx = context.WithoutCancel(ctx)
	return s.cfg.Engine.WriteFile(ctx, name, abs, FileContent{Size: size, Content: content})
}

// MakeDir creates a folder and its parents; an existing folder is fine.
func (s *Service) MakeDir(ctx context.Context, c Caller, name, p string) error {
	if err := s.authorize(ctx, c, name, ActFiles); err != nil {
		return err
	}
	abs, err := WorkspacePathOf(p)
	if err != nil {
		return err
	}
	if err := s.audit(ctx, c, name, EventFileMkdir, map[string]any{"path": DisplayPath(abs)}); err != nil {
		return err
	}
	if err := s.fileAccess(ctx, name); err != nil {
		return err
	}
	return s.cfg.Engine.MakeDir(ctx, name, abs)
}

// DeleteFile deletes a file or symlink, or a folder when recursive is set.
func (s *Service) DeleteFile(ctx context.Context, c Caller, name, p string, recursive bool) error {
	if err := s.authorize(ctx, c, name, ActFiles); err != nil {
		return err
	}
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
	if err := s.fileAccess(ctx, name); err != nil {
		return err
	}
	return s.cfg.Engine.RemovePath(ctx, name, abs, recursive)
}
