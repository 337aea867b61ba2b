package node

import (
	"net/http"

	"github.com/adam91holt/clawdspace/api"
)

func (s *Server) handleGitPush(w http.ResponseWriter, r *http.Request) {
	var req api.GitPush
	if err := s.readJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.cfg.Spaces.Push(r.Context(), callerOf(r), r.PathValue("name"), req.Domain())
	body := api.GitPushAnswer{Stdout: res.Stdout, Stderr: res.Stderr, ExitCode: res.ExitCode}
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, body)
	case res.ExitCode != 0:
		// git ran and failed: 400 with its message, and its output as the
		// contract's success shape carries it.
		status, msg := s.classify(err)
		body.Error = msg
		writeJSON(w, status, body)
	default:
		s.writeError(w, r, err)
	}
}
