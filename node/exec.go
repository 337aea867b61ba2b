package node

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"unicode/utf8"

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
	// The exact bytes, only when the output is not valid UTF-8 (a JSON
	// string cannot carry it; stdout/stderr then hold U+FFFD in its place).
	StdoutBase64 string `json:"stdoutBase64,omitempty"`
	StderrBase64 string `json:"stderrBase64,omitempty"`
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
	if limit.truncated {
		stdout.buf, stderr.buf = trimPartialRune(stdout.buf), trimPartialRune(stderr.buf)
	}
	writeJSON(w, http.StatusOK, execResponse{
		Stdout:       string(stdout.buf),
		Stderr:       string(stderr.buf),
		ExitCode:     code,
		Truncated:    limit.truncated,
		StdoutBase64: base64IfBinary(stdout.buf),
		StderrBase64: base64IfBinary(stderr.buf),
	})
}

func base64IfBinary(b []byte) string {
	if utf8.Valid(b) {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

// trimPartialRune drops a UTF-8 sequence cut short by the output limit.
func trimPartialRune(b []byte) []byte {
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if r, _ := utf8.DecodeRune(b[len(b)-i:]); r == utf8.RuneError && !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			return b
		}
	}
	return b
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
