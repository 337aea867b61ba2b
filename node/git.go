package node

import (
	"net/http"

	"github.com/adam91holt/clawdspace/spaces"
)

func (s *Server) handleGitPush(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RepoPath string `json:"repoPath"`
		Remote   string `json:"remote"`
		Branch   string `json:"branch"`
		Token    string `json:"token"`
	}
	if err := s.readJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.cfg.Spaces.Push(r.Context(), callerOf(r), r.PathValue("name"), spaces.PushRequest{
		RepoPath: req.RepoPath, Remote: req.Remote, Branch: req.Branch, Token: req.Token,
	})
	if err != nil && res.ExitCode != 0 {
		// git ran and failed: 400 with its message, and its output as the
		// contract's success shape carries it.
		status, msg := s.classify(err)
		writeJSON(w, status, map[string]any{"error": msg, "stdout": res.Stdout, "stderr": res.Stderr, "exitCode": res.ExitCode})
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"stdout": res.Stdout, "stderr": res.Stderr, "exitCode": res.ExitCode})
}
