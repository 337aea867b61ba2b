package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
)

// writeJSON writes v as the response body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"error":"Internal error"}`, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorBody is the contract's error body; routes.go, whose mux is called
// api, names it so.
type errorBody = api.Error

// writeError is the one place that maps errors to HTTP statuses. Client
// errors carry their domain message; server errors are logged and answered
// with a message that leaks nothing.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := s.classifyAndLog(r, err)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="clawdspace"`)
	}
	if status == http.StatusRequestTimeout {
		// The rest of the body may still come: the connection cannot be
		// reused.
		w.Header().Set("Connection", "close")
	}
	setRetryAfter(w, err)
	writeJSON(w, status, api.Error{Error: msg})
}

// classifyAndLog classifies err and logs it: server errors at error level,
// refusals at debug level.
func (s *Server) classifyAndLog(r *http.Request, err error) (int, string) {
	status, msg := s.classify(err)
	if r.Context().Err() != nil {
		// The client went away (or the node is stopping, which is logged
		// on its own): whatever failed is not an error of the node.
		s.log.Debug("request ended: the client went away", "method", r.Method, "path", r.URL.Path, "err", err)
		return status, msg
	}
	if status >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	return status, msg
}

func (s *Server) classify(err error) (int, string) { return classifyError(err) }

// classifyError is the mapping of errors to HTTP statuses and client-safe
// messages, for the HTTP handlers and the doors that speak HTTP without a
// request (a refused connection to a forwarded port).
func classifyError(err error) (int, string) {
	msg, hasMsg := api.ErrorMessage(err)
	var mbe *http.MaxBytesError
	var retry *RetryLater
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "Request body too large"
	case errors.Is(err, errBodyTimeout):
		return http.StatusRequestTimeout, "Request body not received in time"
	case errors.As(err, &retry):
		return http.StatusTooManyRequests, retry.Msg
	case errors.Is(err, spaces.ErrInvalid):
		return http.StatusBadRequest, pick(hasMsg, msg, "Invalid request")
	case errors.Is(err, spaces.ErrUnauthorized):
		return http.StatusUnauthorized, pick(hasMsg, msg, "Unauthorized")
	case errors.Is(err, spaces.ErrForbidden):
		return http.StatusForbidden, pick(hasMsg, msg, "Forbidden")
	case errors.Is(err, spaces.ErrNotFound):
		return http.StatusNotFound, pick(hasMsg, msg, "Not found")
	case errors.Is(err, spaces.ErrExists):
		return http.StatusConflict, pick(hasMsg, msg, "Already exists")
	case errors.Is(err, spaces.ErrConflict):
		return http.StatusConflict, pick(hasMsg, msg, "Conflict")
	case errors.Is(err, spaces.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, pick(hasMsg, msg, "Too large")
	case errors.Is(err, spaces.ErrNotRunning):
		return http.StatusConflict, "Space was paused or stopped meanwhile; try again"
	case errors.Is(err, spaces.ErrDiskFull):
		return http.StatusInsufficientStorage, "The node's disk is full"
	case errors.Is(err, spaces.ErrUnavailable):
		return http.StatusServiceUnavailable, pick(hasMsg, msg, "Unavailable")
	}
	return http.StatusInternalServerError, "Internal error"
}

// setRetryAfter sets Retry-After for an error that says when to come back.
func setRetryAfter(w http.ResponseWriter, err error) {
	var retry *RetryLater
	if errors.As(err, &retry) {
		w.Header().Set("Retry-After", retry.retrySeconds())
	}
}

func pick(ok bool, a, b string) string {
	if ok {
		return a
	}
	return b
}

// readJSON decodes an optional JSON body into v. An empty body leaves v
// as it is: the agent plugin posts empty bodies with a JSON content type.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	return decodeJSON(data, v)
}

// readBody reads a request body of at most MaxBodyBytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		return nil, bodyErr(r, err, func() error { return err })
	}
	return data, nil
}

// decodeJSON decodes an optional JSON body (empty leaves v as it is).
func decodeJSON(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return spaces.Errorf(spaces.ErrInvalid, "invalid JSON body: %s", jsonProblem(err))
	}
	return nil
}

func jsonProblem(err error) string {
	if m, ok := api.ErrorMessage(err); ok {
		return m
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return "the body must be a JSON object"
		}
		return te.Field + " must be " + article(te.Type.String())
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func article(t string) string {
	switch t {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "float64", "int", "int64":
		return "a number"
	case "map[string]string":
		return "an object of strings"
	case "[]string":
		return "an array of strings"
	}
	return "of type " + t
}
