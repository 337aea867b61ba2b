package node

import (
	"cmp"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
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
	rest := req
	rest.Name, rest.From, rest.Node = "", "", ""
	if !reflect.ValueOf(rest).IsZero() {
		s.writeError(w, r, spaces.Errorf(spaces.ErrInvalid, "a fork (from) takes its settings from its source: give only name, from and node"))
		return
	}
	if req.Node != "" && !s.isSelf(req.Node) {
		s.forkToNode(w, r, req)
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

// errOtherNodeAnswered ends the export of a fork to another node once
// that node has answered.
var errOtherNodeAnswered = errors.New("the other node answered")

// forkToNode makes a fork of a space of this node on another node of the
// fleet: the source's archive (Service.Export, as the caller) streams into
// that node's import (as the caller, vouched for), without a copy on
// disk. The other node's answer is the client's.
func (s *Server) forkToNode(w http.ResponseWriter, r *http.Request, req api.CreateSpace) {
	ctx := r.Context()
	c := callerOf(r)
	if c.Via != "" {
		s.writeError(w, r, spaces.Errorf(spaces.ErrInvalid, "a fork forwarded by node %s cannot be sent on to node %s", c.Via, req.Node))
		return
	}
	src, checkpoint, err := spaces.ParseFrom(req.From)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	n, err := s.onlineNode(ctx, req.Node)
	if err == nil {
		err = s.cfg.Fleet.CanVouch(c)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	exported := make(chan error, 1)
	go func() {
		err := s.cfg.Spaces.Export(ctx, c, src, checkpoint, pw)
		pw.CloseWithError(cmp.Or(err, io.EOF))
		exported <- err
	}()
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL+"/api/spaces/import?name="+url.QueryEscape(req.Name), pr)
	if err != nil {
		pr.CloseWithError(err)
		<-exported
		s.writeError(w, r, err)
		return
	}
	vouch(out.Header, c, s.requestKey(r))
	out.Header.Set("Content-Type", "application/x-tar")
	res, err := (&http.Client{Transport: s.cfg.Fleet.Transport()}).Do(out)
	if err == nil {
		defer res.Body.Close()
	}
	// The other node may answer before it read the whole archive (a
	// refusal): the export ends then.
	pr.CloseWithError(errOtherNodeAnswered)
	xerr := <-exported
	if xerr != nil && !errors.Is(xerr, errOtherNodeAnswered) && (err != nil || res.StatusCode != http.StatusCreated) {
		// The source's refusal (403, 404) explains the failure better
		// than the cut archive the other node saw.
		s.writeError(w, r, xerr)
		return
	}
	if err != nil {
		s.writeError(w, r, errNodeUnreachable(n.Name, err))
		return
	}
	for _, h := range []string{"Content-Type", headerNode} {
		if v := res.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(res.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(res.Body, 1<<20))
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
	sp, err := s.cfg.Spaces.Import(r.Context(), callerOf(r), r.URL.Query().Get("name"), body, limit)
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
