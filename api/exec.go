package api

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

// ExecRequest is the body of POST /api/spaces/NAME/exec.
type ExecRequest struct {
	// Command is a string (run with sh -c) or an argv array.
	Command json.RawMessage   `json:"command,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Cwd     string            `json:"cwd,omitempty"`
	// Stdin and StdinBase64 are the command's input; give at most one.
	Stdin          *string `json:"stdin,omitempty"`
	StdinBase64    *string `json:"stdinBase64,omitempty"`
	TimeoutMs      *int64  `json:"timeoutMs,omitempty"`
	MaxOutputBytes *int64  `json:"maxOutputBytes,omitempty"`
	// Stream asks for NDJSON lines (ExecLine) instead of one ExecAnswer.
	Stream bool `json:"stream,omitempty"`
}

// ShellCommand is a command line for ExecRequest.Command, run with sh -c.
func ShellCommand(line string) json.RawMessage {
	b, _ := json.Marshal(line)
	return b
}

// Domain decodes the request into the service's. It checks only what the
// wire adds (the command's two shapes, stdin's two encodings); the
// service checks the rest, once for every door.
func (e ExecRequest) Domain() (spaces.ExecRequest, error) {
	var in spaces.ExecRequest
	cmd, err := parseCommand(e.Command)
	if err != nil {
		return in, err
	}
	in.Cmd, in.Env, in.WorkDir = cmd, e.Env, e.Cwd
	switch {
	case e.Stdin != nil && e.StdinBase64 != nil:
		return in, spaces.Errorf(spaces.ErrInvalid, "give stdin or stdinBase64, not both")
	case e.Stdin != nil:
		in.Stdin = []byte(*e.Stdin)
	case e.StdinBase64 != nil:
		if in.Stdin, err = base64.StdEncoding.DecodeString(*e.StdinBase64); err != nil {
			return in, spaces.Errorf(spaces.ErrInvalid, "stdinBase64 is not valid base64")
		}
	}
	if t := e.TimeoutMs; t != nil {
		in.Timeout = msDuration(*t)
	}
	return in, nil
}

// msDuration converts a timeoutMs, which the wire can only leave out to
// mean "none": 0 and less become a negative timeout, and a value too
// large for a Duration the largest one, both of which the service
// refuses.
func msDuration(ms int64) time.Duration {
	switch {
	case ms <= 0:
		return -1
	case ms > math.MaxInt64/int64(time.Millisecond):
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
}

// parseCommand accepts a string (run with sh -c) or an argv array. A
// missing or empty command is left empty for the service to refuse.
func parseCommand(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		if str == "" {
			return nil, nil
		}
		return []string{"sh", "-c", str}, nil
	}
	var argv []string
	if err := json.Unmarshal(raw, &argv); err != nil {
		return nil, spaces.FieldErrorf(spaces.ErrInvalid, spaces.FieldCommand, "must be a string or a non-empty array of strings")
	}
	return argv, nil
}

// ExecAnswer is the answer of an exec that does not stream. The
// base64 fields hold the exact bytes of an output that is not UTF-8.
type ExecAnswer struct {
	Stdout       string `json:"stdout"`
	Stderr       string `json:"stderr"`
	ExitCode     int    `json:"exitCode"`
	TimedOut     bool   `json:"timedOut,omitempty"`
	Truncated    bool   `json:"truncated,omitempty"`
	StdoutBase64 string `json:"stdoutBase64,omitempty"`
	StderrBase64 string `json:"stderrBase64,omitempty"`
}

// ExecLine is one NDJSON line of a streamed exec: a chunk of output
// (Stream with Data, or DataBase64 when the chunk is not UTF-8), then a
// last line with ExitCode, or with Error when the exec failed after it
// started.
type ExecLine struct {
	Stream     string `json:"stream,omitempty"`
	Data       string `json:"data,omitempty"`
	DataBase64 string `json:"dataBase64,omitempty"`
	ExitCode   *int   `json:"exitCode,omitempty"`
	TimedOut   bool   `json:"timedOut,omitempty"`
	Truncated  bool   `json:"truncated,omitempty"`
	Error      string `json:"error,omitempty"`
}
