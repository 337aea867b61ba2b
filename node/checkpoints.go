package node

import (
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
