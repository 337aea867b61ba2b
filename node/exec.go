package node

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/adam91holt/clawdspace/spaces"
)

const (
	// defaultMaxOutput bounds what an exec keeps of its output.
	defaultMaxOutput = 10 << 20
	// maxBufferedOutput bounds maxOutputBytes for a JSON answer, which is
	// held in memory; streaming answers may ask for more.
	maxBufferedOutput = 256 << 20
	maxStreamedOutput = 1 << 40
)

type execRequest struct {
	Command        json.RawMessage   `json:"command"`
	Env            map[string]string `json:"env"`
	Cwd            string            `json:"cwd"`
	Stdin          *string           `json:"stdin"`
	StdinBase64    *string           `json:"stdinBase64"`
	TimeoutMs      *int64            `json:"timeoutMs"`
	MaxOutputBytes *int64            `json:"maxOutputBytes"`
	Stream         bool              `json:"stream"`
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

// wantsStream: Accept: application/x-ndjson, ?stream=true or "stream": true.
func wantsStream(r *http.Request, req execRequest) bool {
	if req.Stream || r.URL.Query().Get("stream") == "true" {
		return true
	}
	for _, a := range strings.Split(r.Header.Get("Accept"), ",") {
		if strings.HasPrefix(strings.TrimSpace(a), "application/x-ndjson") {
			return true
		}
	}
	return false
}

// execInput turns the request into the domain's request.
func execInput(req execRequest, stream bool) (spaces.ExecRequest, int64, error) {
	var in spaces.ExecRequest
	cmd, err := parseCommand(req.Command)
	if err != nil {
		return in, 0, err
	}
	in.Cmd, in.Env, in.WorkDir = cmd, req.Env, req.Cwd
	switch {
	case req.Stdin != nil && req.StdinBase64 != nil:
		return in, 0, spaces.Errorf(spaces.ErrInvalid, "give stdin or stdinBase64, not both")
	case req.Stdin != nil:
		in.Stdin = []byte(*req.Stdin)
	case req.StdinBase64 != nil:
		if in.Stdin, err = base64.StdEncoding.DecodeString(*req.StdinBase64); err != nil {
			return in, 0, spaces.Errorf(spaces.ErrInvalid, "stdinBase64 is not valid base64")
		}
	}
	if t := req.TimeoutMs; t != nil {
		if *t <= 0 || *t > spaces.MaxExecTimeout.Milliseconds() {
			return in, 0, spaces.Errorf(spaces.ErrInvalid, "timeoutMs must be between 1 and %d", spaces.MaxExecTimeout.Milliseconds())
		}
		in.Timeout = time.Duration(*t) * time.Millisecond
	}
	limit := int64(defaultMaxOutput)
	if m := req.MaxOutputBytes; m != nil {
		max := int64(maxBufferedOutput)
		if stream {
			max = maxStreamedOutput
		}
		if *m < 0 || *m > max {
			return in, 0, spaces.Errorf(spaces.ErrInvalid, "maxOutputBytes must be between 0 and %d", max)
		}
		limit = *m
	}
	return in, limit, nil
}

func (s *Server) handleExec(w http.ResponseWriter, r *http.Request) {
	var req execRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	stream := wantsStream(r, req)
	in, limit, err := execInput(req, stream)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if stream {
		s.streamExec(w, r, in, limit)
		return
	}
	out, err := newExecOutput(&s.outPool, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer out.release()
	in.Stdout, in.Stderr = &out.stdout, &out.stderr
	res, err := s.cfg.Spaces.Exec(r.Context(), callerOf(r), r.PathValue("name"), in)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out.finish()
	if out.starved {
		s.log.Warn("exec output cut: the node holds as much exec output as it may", "space", r.PathValue("name"), "maxExecOutput", s.outPool.max)
	}
	if err := writeExecAnswer(w, out, res); err != nil {
		s.log.Debug("exec answer not delivered", "space", r.PathValue("name"), "err", err)
	}
}

// outputLimit is the byte budget stdout and stderr share in a stream.
type outputLimit struct {
	left      int64
	truncated bool
}

// take returns how much of n bytes still fit.
func (l *outputLimit) take(n int) int {
	if int64(n) > l.left {
		n = int(l.left)
		l.truncated = true
	}
	l.left -= int64(n)
	return n
}

// streamLine is one NDJSON line of a streamed exec.
type streamLine struct {
	Stream     string `json:"stream,omitempty"`
	Data       string `json:"data,omitempty"`
	DataBase64 string `json:"dataBase64,omitempty"`
	ExitCode   *int   `json:"exitCode,omitempty"`
	TimedOut   bool   `json:"timedOut,omitempty"`
	Truncated  bool   `json:"truncated,omitempty"`
	Error      string `json:"error,omitempty"`
}

// ndjsonWriter sends each chunk of output as one JSON line, as it comes.
type ndjsonWriter struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	rc      *http.ResponseController
	enc     *json.Encoder
	limit   *outputLimit
	started bool
}

func (n *ndjsonWriter) start() {
	if n.started {
		return
	}
	n.started = true
	h := n.w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("X-Accel-Buffering", "no")
	n.w.WriteHeader(http.StatusOK)
}

func (n *ndjsonWriter) line(l streamLine) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.start()
	_ = n.enc.Encode(l)
	_ = n.rc.Flush()
}

type streamSink struct {
	n    *ndjsonWriter
	name string
}

func (s streamSink) Write(p []byte) (int, error) {
	n := len(p)
	s.n.mu.Lock()
	keep := s.n.limit.take(n)
	s.n.mu.Unlock()
	if keep == 0 {
		return n, nil
	}
	chunk := p[:keep]
	l := streamLine{Stream: s.name}
	if utf8.Valid(chunk) {
		l.Data = string(chunk)
	} else {
		l.DataBase64 = base64.StdEncoding.EncodeToString(chunk)
	}
	s.n.line(l)
	return n, nil
}

// streamExec answers with NDJSON: output lines as they happen, then a last
// line with the exit code. If the client goes away, the request's context
// ends and the command is killed.
func (s *Server) streamExec(w http.ResponseWriter, r *http.Request, in spaces.ExecRequest, limit int64) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	nw := &ndjsonWriter{w: w, rc: http.NewResponseController(w), enc: enc, limit: &outputLimit{left: limit}}
	in.Stdout, in.Stderr = streamSink{nw, "stdout"}, streamSink{nw, "stderr"}
	in.Started = func() {
		nw.mu.Lock()
		defer nw.mu.Unlock()
		nw.start()
		_ = nw.rc.Flush()
	}
	res, err := s.cfg.Spaces.Exec(r.Context(), callerOf(r), r.PathValue("name"), in)
	nw.mu.Lock()
	started := nw.started
	nw.mu.Unlock()
	if err != nil {
		if !started {
			s.writeError(w, r, err)
			return
		}
		_, msg := s.classify(err)
		nw.line(streamLine{Error: msg})
		return
	}
	code := res.ExitCode
	nw.line(streamLine{ExitCode: &code, TimedOut: res.TimedOut, Truncated: nw.limit.truncated})
}
