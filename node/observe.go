package node

import (
	"net/http"

	"github.com/adam91holt/clawdspace/spaces"
)

type observabilityJSON struct {
	Stats              spaces.Stats          `json:"stats"`
	WorkspaceDisk      *spaces.WorkspaceDisk `json:"workspaceDisk,omitempty"`
	WorkspaceSizeBytes *int64                `json:"workspaceSizeBytes,omitempty"`
	Top                []spaces.Process      `json:"top,omitempty"`
	BashHistoryTail    *string               `json:"bashHistoryTail,omitempty"`
}

func (s *Server) handleObservability(w http.ResponseWriter, r *http.Request) {
	o, err := s.cfg.Spaces.Observe(r.Context(), callerOf(r), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"observability": observabilityJSON{
		Stats: o.Stats, WorkspaceDisk: o.WorkspaceDisk, WorkspaceSizeBytes: o.WorkspaceSizeBytes,
		Top: o.Top, BashHistoryTail: o.BashHistoryTail,
	}})
}
