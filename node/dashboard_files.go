package node

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/views"
)

// maxEditBytes is the largest file the dashboard opens in its editor.
const maxEditBytes = 256 << 10

// listFiles is the file browser's view of one folder of a space.
func (s *Server) listFiles(r *http.Request, name, p string) views.Files {
	if p == "" {
		p = "/"
	}
	abs, entries, err := s.cfg.Spaces.ListFiles(r.Context(), callerOf(r), name, p)
	if err != nil {
		_, msg := s.classify(err)
		return views.Files{Path: absOf(p), Crumbs: crumbs(absOf(p)), Error: msg}
	}
	f := views.Files{Path: abs, Crumbs: crumbs(abs)}
	if abs != spaces.WorkspacePath {
		f.Parent = path.Dir(abs)
	}
	for _, e := range entries {
		f.Entries = append(f.Entries, views.FileEntry{
			Name: e.Name, Path: e.Path, Type: string(e.Type), Size: e.Size, MTime: e.MTime,
		})
	}
	return f
}

// absOf is the absolute path (/workspace/...) of a path from a form or a
// link, or /workspace when it is not one. Pages carry absolute paths: the
// short form (/a for /workspace/a) cannot tell /workspace/workspace/a
// from /workspace/a.
func absOf(p string) string {
	if abs, err := spaces.WorkspacePathOf(p); err == nil {
		return abs
	}
	return spaces.WorkspacePath
}

// crumbs splits "/workspace/a/b" into workspace, a, b with their
// (absolute) paths.
func crumbs(abs string) []views.Crumb {
	out := []views.Crumb{{Name: "workspace", Path: spaces.WorkspacePath}}
	cur := spaces.WorkspacePath
	rel := strings.TrimPrefix(strings.TrimPrefix(abs, spaces.WorkspacePath), "/")
	for _, part := range strings.Split(rel, "/") {
		if part == "" {
			continue
		}
		cur += "/" + part
		out = append(out, views.Crumb{Name: part, Path: cur})
	}
	return out
}

// handleFilePage shows a file: small UTF-8 text in an editor, anything
// else as a download. With new=1 a missing file opens empty.
func (s *Server) handleFilePage(w http.ResponseWriter, r *http.Request) {
	name, p := r.PathValue("name"), r.URL.Query().Get("path")
	abs := absOf(p)
	vm := views.FilePage{Chrome: s.chrome(r, path.Base(abs), ""), Space: name, Path: abs, Dir: path.Dir(abs)}
	info, rc, err := s.cfg.Spaces.OpenFile(r.Context(), callerOf(r), name, p)
	switch {
	case err != nil && errors.Is(err, spaces.ErrNotFound) && r.URL.Query().Get("new") == "1" && abs != spaces.WorkspacePath:
		if _, gerr := s.cfg.Spaces.Get(r.Context(), callerOf(r), name); gerr != nil {
			s.pageError(w, r, gerr)
			return
		}
		vm.Editable = true
	case err != nil:
		s.pageError(w, r, err)
		return
	default:
		defer rc.Close()
		vm.Size = info.Size
		data, rerr := io.ReadAll(io.LimitReader(rc, maxEditBytes+1))
		switch {
		case rerr != nil:
			s.pageError(w, r, fmt.Errorf("reading file: %w", rerr))
			return
		case info.Size > maxEditBytes || len(data) > maxEditBytes:
			vm.Why = fmt.Sprintf("This file is larger than %s, too large to edit here. Download it instead.", views.Bytes(int64(maxEditBytes)))
		case !utf8.Valid(data) || strings.ContainsRune(string(data), 0):
			vm.Why = "This file is not text. Download it instead."
		default:
			vm.Editable, vm.Text = true, string(data)
		}
	}
	s.render(w, r, http.StatusOK, views.FileView(vm))
}

// handleFileSave writes the editor's text back. Browsers send a textarea's
// line ends as CRLF; they are stored as LF.
func (s *Server) handleFileSave(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.readForm(w, r); err != nil {
		s.pageError(w, r, err)
		return
	}
	p := r.PostForm.Get("path")
	text := strings.ReplaceAll(r.PostForm.Get("content"), "\r\n", "\n")
	if err := s.cfg.Spaces.WriteFile(r.Context(), callerOf(r), name, p, int64(len(text)), strings.NewReader(text)); err != nil {
		if msg, ok := userError(err); ok {
			abs := absOf(p)
			s.render(w, r, http.StatusBadRequest, views.FileView(views.FilePage{
				Chrome: s.chrome(r, path.Base(abs), ""), Space: name, Path: abs, Dir: path.Dir(abs),
				Text: text, Editable: true, Error: msg, Size: int64(len(text)),
			}))
			return
		}
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, withDone("/spaces/"+name+"/file?path="+views.Q(absOf(p)), "saved"), http.StatusSeeOther)
}

// handleUpload streams the files of a multipart form into a folder of the
// space, each through a spool file (the service needs the size first).
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	// Refused before the upload is spooled, not after.
	if !s.pageAuthorize(w, r, name, spaces.ActFiles) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxFileBytes+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		s.pageError(w, r, spaces.Errorf(spaces.ErrInvalid, "The upload must be a multipart form"))
		return
	}
	dir, uploaded := "/", 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			s.pageError(w, r, uploadErr(r, err, s.cfg.MaxFileBytes))
			return
		}
		switch part.FormName() {
		case "dir":
			b, _ := io.ReadAll(io.LimitReader(part, 4096))
			dir = string(b)
		case "file":
			if part.FileName() == "" {
				continue
			}
			target := path.Join(absOf(dir), path.Base(part.FileName()))
			if err := s.spoolAndWrite(r, name, target, part); err != nil {
				s.pageError(w, r, err)
				return
			}
			uploaded++
		}
		part.Close()
	}
	if uploaded == 0 {
		s.pageError(w, r, spaces.Errorf(spaces.ErrInvalid, "Choose a file to upload"))
		return
	}
	http.Redirect(w, r, withDone("/spaces/"+name+"?path="+views.Q(absOf(dir)), "uploaded")+"#files", http.StatusSeeOther)
}

func (s *Server) spoolAndWrite(r *http.Request, name, target string, content io.Reader) error {
	f, n, cleanup, err := s.spool(r, io.LimitReader(content, s.cfg.MaxFileBytes+1))
	if err != nil {
		return err
	}
	defer cleanup()
	if n > s.cfg.MaxFileBytes {
		return errFileTooLarge(s.cfg.MaxFileBytes)
	}
	return s.cfg.Spaces.WriteFile(r.Context(), callerOf(r), name, target, n, f)
}

func (s *Server) handleFileDelete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.readForm(w, r); err != nil {
		s.pageError(w, r, err)
		return
	}
	p := r.PostForm.Get("path")
	if err := s.cfg.Spaces.DeleteFile(r.Context(), callerOf(r), name, p, true); err != nil {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, withDone("/spaces/"+name+"?path="+views.Q(path.Dir(absOf(p))), "deleted")+"#files", http.StatusSeeOther)
}

func (s *Server) handleMkdirPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.readForm(w, r); err != nil {
		s.pageError(w, r, err)
		return
	}
	dir, folder := r.PostForm.Get("dir"), strings.TrimSpace(r.PostForm.Get("name"))
	if folder == "" {
		s.pageError(w, r, spaces.Errorf(spaces.ErrInvalid, "Give the new folder a name"))
		return
	}
	target := path.Join(absOf(dir), folder)
	if err := s.cfg.Spaces.MakeDir(r.Context(), callerOf(r), name, target); err != nil {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, withDone("/spaces/"+name+"?path="+views.Q(absOf(target)), "folder")+"#files", http.StatusSeeOther)
}
