package node

import (
	"context"
	"net/http"
	"strconv"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
)

func (s *Server) handleListSpaces(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Spaces.List(r.Context(), callerOf(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]api.Space, 0, len(list))
	for _, sp := range list {
		out = append(out, api.SpaceFrom(sp))
	}
	// A request forwarded by another node acts here only: forwarding goes
	// one hop.
	if all, err := boolParam(r, "all"); err != nil {
		s.writeError(w, r, err)
		return
	} else if all && callerOf(r).Via == "" {
		s.listFleetSpaces(w, r, out)
		return
	}
	writeJSON(w, http.StatusOK, api.SpaceList{Spaces: out})
}

func (s *Server) handleGetSpace(w http.ResponseWriter, r *http.Request) {
	sp, err := s.cfg.Spaces.Get(r.Context(), callerOf(r), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.SpaceAnswer{Space: api.SpaceFrom(sp)})
}

func (s *Server) handleCreateSpace(w http.ResponseWriter, r *http.Request) {
	var req api.CreateSpace
	body, err := s.readBody(w, r)
	if err == nil {
		err = decodeJSON(body, &req)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.From != "" {
		s.forkSpace(w, r, req)
		return
	}
	if req.Node != "" && !s.isSelf(req.Node) && callerOf(r).Via == "" {
		target, err := s.createTarget(r.Context(), callerOf(r), req.Node, req.GPU, req.Template)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if target != "" {
			s.forwardCreate(w, r, body, target)
			return
		}
	}
	sp, err := s.cfg.Spaces.Create(r.Context(), callerOf(r), req.Domain())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The node that made the space, for a client that asked for "auto"
	// or another node and got this answer forwarded.
	w.Header().Set(headerNode, s.selfName())
	writeJSON(w, http.StatusCreated, api.SpaceAnswer{Space: api.SpaceFrom(sp)})
}

func (s *Server) handleDestroySpace(w http.ResponseWriter, r *http.Request) {
	removeVolume, err := boolParam(r, "removeVolume")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.cfg.Spaces.Destroy(r.Context(), callerOf(r), r.PathValue("name"), removeVolume); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Message{Message: "Space destroyed"})
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, spaces.Errorf(spaces.ErrInvalid, "%s must be true or false", name)
	}
	return b, nil
}

func (s *Server) handleStopSpace(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Spaces.Pause(r.Context(), callerOf(r), r.PathValue("name")); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Message{Message: "Space paused"})
}

func (s *Server) handleStartSpace(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Spaces.Start(r.Context(), callerOf(r), r.PathValue("name")); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Message{Message: "Space started"})
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	st, err := s.cfg.Spaces.Stats(r.Context(), callerOf(r), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.StatsAnswer{Stats: api.StatsFrom(st)})
}

// createTarget resolves the node a create names ("", a node's name, or
// "auto") to another node to send it to, or "" for this one.
func (s *Server) createTarget(ctx context.Context, c spaces.Caller, node string, gpu *bool, template string) (string, error) {
	if node == "auto" {
		// Placement looks at the fleet: only for callers who may create
		// (the node that is picked decides again).
		if err := s.cfg.Spaces.Authorize(ctx, c, "", spaces.ActCreate); err != nil {
			return "", err
		}
		want, err := s.wantsGPU(ctx, c, gpu, template)
		if err != nil {
			return "", err
		}
		if node, err = s.place(ctx, want); err != nil {
			return "", err
		}
	}
	if node == "" || s.isSelf(node) {
		return "", nil
	}
	return node, nil
}

// wantsGPU reports whether a create asks for a GPU, itself or through its
// template.
func (s *Server) wantsGPU(ctx context.Context, c spaces.Caller, gpu *bool, template string) (bool, error) {
	if gpu != nil {
		return *gpu, nil
	}
	if template == "" {
		return false, nil
	}
	t, err := s.cfg.Spaces.Template(ctx, c, template)
	if err != nil {
		return false, err
	}
	return t.Resources.GPU, nil
}
