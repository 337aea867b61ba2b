package node

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"strconv"
	"syscall"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
)

const (
	defaultMaxReadBytes = 256 << 10
	// maxJSONReadBytes bounds what a JSON read may ask for: base64 in JSON
	// is held in memory. Larger files stream with raw=true.
	maxJSONReadBytes = 64 << 20
	// spoolThreshold: raw uploads above it are spooled to disk before they
	// reach the space, so a client that goes away mid-upload never leaves a
	// truncated file where a good one was (every write then goes next to
	// the file and is renamed over it).
	spoolThreshold = 1 << 20
)

func (s *Server) handleListFiles(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query().Get("path")
	if p == "" {
		p = "/"
	}
	abs, entries, err := s.cfg.Spaces.ListFiles(r.Context(), callerOf(r), r.PathValue("name"), p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]api.FileEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, api.FileEntryFrom(e))
	}
	writeJSON(w, http.StatusOK, api.FileList{Path: spaces.DisplayPath(abs), Entries: out})
}

func (s *Server) handleReadFile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	raw, err := boolParam(r, "raw")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	maxBytes := int64(defaultMaxReadBytes)
	if v := q.Get("maxBytes"); v != "" && !raw {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > maxJSONReadBytes {
			s.writeError(w, r, spaces.Errorf(spaces.ErrInvalid, "maxBytes must be a whole number from 0 to %d (use raw=true for larger files)", maxJSONReadBytes))
			return
		}
		maxBytes = n
	}
	info, rc, err := s.cfg.Spaces.OpenFile(r.Context(), callerOf(r), r.PathValue("name"), q.Get("path"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer rc.Close()
	if raw {
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(info.Path)}))
		h.Set("Last-Modified", info.MTime.UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusOK)
		if _, err := io.Copy(w, rc); err != nil {
			s.log.Debug("file download ended early", "space", r.PathValue("name"), "err", err)
		}
		return
	}
	data, err := io.ReadAll(io.LimitReader(rc, maxBytes))
	if err != nil {
		s.writeError(w, r, fmt.Errorf("reading file: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, api.FileContent{
		Path:          spaces.DisplayPath(info.Path),
		ContentBase64: base64.StdEncoding.EncodeToString(data),
		Truncated:     info.Size > int64(len(data)),
		Size:          info.Size,
	})
}

func isOctetStream(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/octet-stream"
}

func (s *Server) handleWriteFile(w http.ResponseWriter, r *http.Request) {
	name, p := r.PathValue("name"), r.URL.Query().Get("path")
	// Refused before the body is read and spooled, not after.
	if err := s.cfg.Spaces.Authorize(r.Context(), callerOf(r), name, spaces.ActFiles); err != nil {
		s.writeError(w, r, err)
		return
	}
	var (
		size    int64
		content io.Reader
	)
	if isOctetStream(r) {
		body, n, cleanup, err := s.receiveUpload(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		defer cleanup()
		size, content = n, body
	} else {
		var req api.WriteFile
		if err := s.readJSON(w, r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		if req.ContentBase64 == nil {
			s.writeError(w, r, spaces.Errorf(spaces.ErrInvalid, "contentBase64 is required (or send the bytes with Content-Type: application/octet-stream)"))
			return
		}
		data, err := base64.StdEncoding.DecodeString(*req.ContentBase64)
		if err != nil {
			s.writeError(w, r, spaces.Errorf(spaces.ErrInvalid, "contentBase64 is not valid base64"))
			return
		}
		size, content = int64(len(data)), bytes.NewReader(data)
	}
	if err := s.cfg.Spaces.WriteFile(r.Context(), callerOf(r), name, p, size, content); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.WriteFileAnswer{Message: "OK", Size: size})
}

// receiveUpload reads a raw upload within the configured limit: small ones
// into memory, larger ones into a spool file that cleanup removes.
func (s *Server) receiveUpload(w http.ResponseWriter, r *http.Request) (io.Reader, int64, func(), error) {
	limit := s.cfg.MaxFileBytes
	noop := func() {}
	if r.ContentLength > limit {
		return nil, 0, noop, errFileTooLarge(limit)
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength >= 0 && r.ContentLength <= spoolThreshold {
		data, err := io.ReadAll(body)
		if err != nil {
			return nil, 0, noop, uploadErr(r, err, limit)
		}
		return bytes.NewReader(data), int64(len(data)), noop, nil
	}
	f, n, cleanup, err := s.spool(r, body)
	if err != nil {
		return nil, 0, noop, err
	}
	return f, n, cleanup, nil
}

// spool copies content, the body of r, into a new file of the spool
// folder and rewinds it; cleanup closes and removes it.
func (s *Server) spool(r *http.Request, content io.Reader) (*os.File, int64, func(), error) {
	if err := os.MkdirAll(s.cfg.SpoolDir, 0o700); err != nil {
		return nil, 0, nil, fmt.Errorf("creating spool folder: %w", diskFull(err))
	}
	f, err := os.CreateTemp(s.cfg.SpoolDir, "upload-*")
	if err != nil {
		return nil, 0, nil, fmt.Errorf("creating spool file: %w", diskFull(err))
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	n, err := io.Copy(spoolFile{f}, content)
	if err != nil {
		cleanup()
		var full writeError
		if errors.As(err, &full) {
			// Never the client's fault, and never its path in the answer.
			return nil, 0, nil, fmt.Errorf("spooling an upload: %w", diskFull(full.error))
		}
		return nil, 0, nil, uploadErr(r, err, s.cfg.MaxFileBytes)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, 0, nil, fmt.Errorf("rewinding spool file: %w", err)
	}
	return f, n, cleanup, nil
}

// spoolFile tells the errors of writing the spool from those of reading
// the upload, which io.Copy returns alike.
type spoolFile struct{ f *os.File }

func (s spoolFile) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	if err != nil {
		return n, writeError{err}
	}
	return n, nil
}

type writeError struct{ error }

func (e writeError) Unwrap() error { return e.error }

// diskFull marks err as the node's disk being full when it is ENOSPC (or
// EDQUOT).
func diskFull(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", spaces.ErrDiskFull, err)
	}
	return err
}

func errFileTooLarge(limit int64) error {
	return spaces.Errorf(spaces.ErrTooLarge, "file is larger than this node's limit of %d bytes", limit)
}

func uploadErr(r *http.Request, err error, limit int64) error {
	return bodyErr(r, err, func() error { return errFileTooLarge(limit) })
}

func (s *Server) handleDeleteFile(w http.ResponseWriter, r *http.Request) {
	recursive, err := boolParam(r, "recursive")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.cfg.Spaces.DeleteFile(r.Context(), callerOf(r), r.PathValue("name"), r.URL.Query().Get("path"), recursive); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Message{Message: "OK"})
}

func (s *Server) handleMkdir(w http.ResponseWriter, r *http.Request) {
	var req api.Mkdir
	if err := s.readJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Path == "" {
		req.Path = r.URL.Query().Get("path")
	}
	if err := s.cfg.Spaces.MakeDir(r.Context(), callerOf(r), r.PathValue("name"), req.Path); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Message{Message: "OK"})
}
