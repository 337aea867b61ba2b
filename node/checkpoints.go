package node

import (
	"errors"
	"io"
	"net/http"
	"reflect"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
)

func (s *Server) handleListCheckpoints(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Spaces.Checkpoints(r.Context(), callerOf(r), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.CheckpointListFrom(list))
}

func (s *Server) handleCreateCheckpoint(w http.ResponseWriter, r *http.Request) {
	var req api.CreateCheckpoint
	body, err := s.readBody(w, r)
	if err == nil {
		err = decodeJSON(body, &req)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	taken, err := s.cfg.Spaces.CreateCheckpoint(r.Context(), callerOf(r), r.PathValue("name"), req.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.CheckpointAnswerFrom(taken))
}

func (s *Server) handleDeleteCheckpoint(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Spaces.DeleteCheckpoint(r.Context(), callerOf(r), r.PathValue("name"), r.PathValue("checkpoint")); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Message{Message: "Checkpoint deleted"})
}

func (s *Server) handleRestoreCheckpoint(w http.ResponseWriter, r *http.Request) {
	force, err := boolParam(r, "force")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sp, err := s.cfg.Spaces.Restore(r.Context(), callerOf(r), r.PathValue("name"), r.PathValue("checkpoint"), force)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.SpaceAnswer{Space: api.SpaceFrom(sp)})
}

// forkSpace answers a create with "from": a fork on this node, of a space
// or checkpoint this node has. A fork takes the source's settings, so the
// request may name nothing else.
func (s *Server) forkSpace(w http.ResponseWriter, r *http.Request, req api.CreateSpace) {
	if req.Node != "" && !s.isSelf(req.Node) {
		s.writeError(w, r, spaces.Errorf(spaces.ErrInvalid, "a fork is made on its source's node: ask that node, without node"))
		return
	}
	rest := req
	rest.Name, rest.From, rest.Node = "", "", ""
	if !reflect.ValueOf(rest).IsZero() {
		s.writeError(w, r, spaces.Errorf(spaces.ErrInvalid, "a fork (from) takes its settings from its source: give only name and from"))
		return
	}
	sp, err := s.cfg.Spaces.Fork(r.Context(), callerOf(r), req.From, req.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set(headerNode, s.selfName())
	writeJSON(w, http.StatusCreated, api.SpaceAnswer{Space: api.SpaceFrom(sp)})
}

// handleExport streams a space's archive, or a checkpoint's
// (?checkpoint=). An error before the first byte is answered as usual; one
// after it ends the connection, so the client sees a cut archive.
func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	aw := &archiveWriter{w: w, name: name}
	err := s.cfg.Spaces.Export(r.Context(), callerOf(r), name, r.URL.Query().Get("checkpoint"), aw)
	switch {
	case err == nil && !aw.started:
		aw.start()
	case err != nil && !aw.started:
		s.writeError(w, r, err)
	case err != nil:
		s.log.Error("exporting a space: the archive was cut", "space", name, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// archiveWriter sends the answer's headers with the first byte.
type archiveWriter struct {
	w       http.ResponseWriter
	name    string
	started bool
}

func (a *archiveWriter) start() {
	a.started = true
	h := a.w.Header()
	h.Set("Content-Type", "application/x-tar")
	h.Set("Content-Disposition", `attachment; filename="`+a.name+`.tar"`)
	a.w.WriteHeader(http.StatusOK)
}

func (a *archiveWriter) Write(p []byte) (int, error) {
	if !a.started {
		a.start()
	}
	return a.w.Write(p)
}

// handleImport makes the space ?name= from the archive in the body, at
// most the node's --max-file-bytes (413 beyond).
func (s *Server) handleImport(w http.ResponseWriter, r *http.Request) {
	limit := s.cfg.MaxFileBytes
	if r.ContentLength > limit {
		s.writeError(w, r, errFileTooLarge(limit))
		return
	}
	body := &readWatch{r: http.MaxBytesReader(w, r.Body, limit)}
	sp, err := s.cfg.Spaces.Import(r.Context(), callerOf(r), r.URL.Query().Get("name"), body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(body.err, &mbe) {
			err = errFileTooLarge(limit)
		}
		s.writeError(w, r, err)
		return
	}
	w.Header().Set(headerNode, s.selfName())
	writeJSON(w, http.StatusCreated, api.SpaceAnswer{Space: api.SpaceFrom(sp)})
}

// readWatch remembers the first error of a reader other than EOF.
type readWatch struct {
	r   io.Reader
	err error
}

func (rw *readWatch) Read(p []byte) (int, error) {
	n, err := rw.r.Read(p)
	if err != nil && err != io.EOF && rw.err == nil {
		rw.err = err
	}
	return n, err
}
