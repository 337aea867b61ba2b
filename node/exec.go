package node

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/adam91holt/clawdspace/api"
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

// wantsStream: Accept: application/x-ndjson, ?stream=true or "stream": true.
func wantsStream(r *http.Request, req api.ExecRequest) bool {
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

// execInput turns the request into the domain's request, and the output
// limit, which only the HTTP side knows: its buffers and streams.
func execInput(req api.ExecRequest, stream bool) (spaces.ExecRequest, int64, error) {
	in, err := req.Domain()
	if err != nil {
		return in, 0, err
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
	var req api.ExecRequest
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

func (n *ndjsonWriter) line(l api.ExecLine) {
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
	l := api.ExecLine{Stream: s.name}
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
		nw.line(api.ExecLine{Error: msg})
		return
	}
	code := res.ExitCode
	nw.line(api.ExecLine{ExitCode: &code, TimedOut: res.TimedOut, Truncated: nw.limit.truncated})
}
