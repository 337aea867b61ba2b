package node

import (
	"net/http"

	"github.com/adam91holt/clawdspace/api"
)

func (s *Server) handleObservability(w http.ResponseWriter, r *http.Request) {
	o, err := s.cfg.Spaces.Observe(r.Context(), callerOf(r), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.ObservabilityAnswer{Observability: api.ObservabilityFrom(o)})
}
