package node

import (
	"encoding/json"
	"net/http"

	"github.com/adam91holt/clawdspace/spaces"
)

// defaultMaxOutput bounds what an exec buffers for its JSON answer.
const defaultMaxOutput = 10 << 20

type execRequest struct {
	Command json.RawMessage `json:"command"`
}

type execResponse struct {
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	ExitCode  int    `json:"exitCode"`
	Truncated bool   `json:"truncated,omitempty"`
}

// parseCommand accepts a string (run with sh -c) or an argv array.
func parseCommand(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, spaces.Errorf(spaces.ErrInvalid, "command is required")
	}
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		if str == "" {
			return nil, spaces.Errorf(spaces.ErrInvalid, "command is required")
		}
		return []string{"sh", "-c", str}, nil
	}
	var argv []string
	if err := json.Unmarshal(raw, &argv); err != nil || len(argv) == 0 || argv[0] == "" {
		return nil, spaces.Errorf(spaces.ErrInvalid, "command must be a string or a non-empty array of strings")
	}
	return argv, nil
}

func (s *Server) handleExec(w http.ResponseWriter, r *http.Request) {
	var req execRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	cmd, err := parseCommand(req.Command)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit := &outputLimit{left: defaultMaxOutput}
	stdout, stderr := &cappedBuffer{limit: limit}, &cappedBuffer{limit: limit}
	code, err := s.cfg.Spaces.Exec(r.Context(), callerOf(r), r.PathValue("name"), spaces.ExecRequest{
		Cmd: cmd, Stdout: stdout, Stderr: stderr,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, execResponse{
		Stdout:    string(stdout.buf),
		Stderr:    string(stderr.buf),
		ExitCode:  code,
		Truncated: limit.truncated,
	})
}

// outputLimit is the byte budget stdout and stderr share.
type outputLimit struct {
	left      int
	truncated bool
}

// cappedBuffer keeps what fits in its limit and drops the rest, so a noisy
// command cannot exhaust the node's memory. It never fails a write: the
// process keeps running and its exit code is still reported.
type cappedBuffer struct {
	buf   []byte
	limit *outputLimit
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if n > c.limit.left {
		p = p[:c.limit.left]
		c.limit.truncated = true
	}
	c.buf = append(c.buf, p...)
	c.limit.left -= len(p)
	return n, nil
}
