package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/adam91holt/clawdspace/api"
)

// Client talks to one node's REST API.
type Client struct {
	// BaseURL is the node's address without /api, e.g. http://host:7777.
	BaseURL string
	// Key is the API key; empty sends no Authorization header.
	Key string
	// Name is how messages call the node (its name, else host:port).
	Name string
	// HTTP sends the requests.
	HTTP *http.Client
	// Via, when set, names the node of the fleet the requests are for:
	// BaseURL's node forwards them there (the Clawdspace-Node header),
	// for a node this machine cannot reach itself.
	Via string
}

// headerNode names the node a request is for (as ?node= does).
const headerNode = "Clawdspace-Node"

// APIError is a non-2xx answer; Message is the node's {"error": ...}.
type APIError struct {
	Status  int
	Message string
	Node    string
	// RetryAfter is the node's Retry-After in seconds (0 when none).
	RetryAfter int
}

func (e *APIError) Error() string {
	msg := oneLine(e.Message)
	if msg == "" {
		msg = fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
	}
	switch e.Status {
	case http.StatusUnauthorized:
		msg += " (set CLAWDSPACE_KEY, or see 'clawdspace config')"
	case http.StatusTooManyRequests:
		wait := "a while"
		if e.RetryAfter > 0 {
			wait = fmt.Sprintf("%d s", e.RetryAfter)
		}
		msg = fmt.Sprintf("the node refuses keys from this address for %s after too many wrong API keys (%s); "+
			"check CLAWDSPACE_KEY or 'clawdspace config', then try again", wait, msg)
	}
	if e.Node != "" {
		return e.Node + ": " + msg
	}
	return msg
}

// IsNotFound reports whether err is a 404 from a node.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// UnreachableError is a node that could not be reached at all.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	reason := e.Err.Error()
	var op *net.OpError
	switch {
	case errors.Is(e.Err, syscall.ECONNREFUSED):
		reason = "connection refused (is 'clawdspace serve' running there?)"
	case errors.As(e.Err, &op) && op.Timeout(), errors.Is(e.Err, context.DeadlineExceeded):
		reason = "timed out"
	default:
		var dnsErr *net.DNSError
		if errors.As(e.Err, &dnsErr) {
			reason = "unknown host " + dnsErr.Name
		}
	}
	return fmt.Sprintf("cannot reach %s: %s", e.URL, reason)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// oneLine folds a multi-line message (e.g. a YAML error) into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// newHTTPClient returns a client without an overall timeout (exec, files and
// the terminal run as long as they run) but quick to give up on a dead host.
func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.Proxy = nil
	return &http.Client{Transport: t}
}

func (c *Client) url(path string, q url.Values) string {
	u := strings.TrimRight(c.BaseURL, "/") + "/api" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// newRequest builds a request with the key.
func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), body)
	if err != nil {
		return nil, err
	}
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	req.Header.Set("User-Agent", "clawdspace-cli")
	if c.Via != "" {
		req.Header.Set(headerNode, c.Via)
	}
	return req, nil
}

// send sends req and turns a transport failure into an UnreachableError and
// a non-2xx answer into an APIError.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil && errors.Is(err, ctxErr) && errors.Is(ctxErr, context.Canceled) {
			return nil, ctxErr
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &UnreachableError{URL: c.BaseURL, Err: err}
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, c.readError(resp)
	}
	return resp, nil
}

func (c *Client) readError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body api.Error
	msg := ""
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		msg = body.Error
	} else if t := strings.TrimSpace(string(b)); t != "" && len(t) < 200 && !strings.Contains(t, "<") {
		msg = t
	}
	if resp.StatusCode == http.StatusNotFound && msg == "Not found" && resp.Request != nil {
		msg = "Not found: this node does not serve " + resp.Request.URL.Path + " (an older node?)"
	}
	retry, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	return &APIError{Status: resp.StatusCode, Message: msg, Node: c.Name, RetryAfter: retry}
}

// Do sends a JSON request (body nil for none) and decodes a JSON answer into
// out (nil to ignore it).
func (c *Client) Do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	_, err := c.DoHeader(ctx, method, path, q, body, out)
	return err
}

// DoHeader is Do that also returns the answer's headers.
func (c *Client) DoHeader(ctx context.Context, method, path string, q url.Values, body, out any) (http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, q, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Header, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.Header, fmt.Errorf("%s: reading the answer to %s %s: %w", c.label(), method, path, err)
	}
	return resp.Header, nil
}

// Stream sends a request with a raw body and returns the answer for the
// caller to read and close. size is the body's length, -1 when unknown.
func (c *Client) Stream(ctx context.Context, method, path string, q url.Values, contentType string, body io.Reader, size int64, accept string) (*http.Response, error) {
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return c.send(req)
}

func (c *Client) label() string {
	if c.Name != "" {
		return c.Name
	}
	return c.BaseURL
}

// rawObject is a JSON object kept whole so --json passes on fields this CLI
// does not know.
type rawObject map[string]any

// GetSpace asks the node for one space.
func (c *Client) GetSpace(ctx context.Context, name string) (rawObject, error) {
	var out struct {
		Space rawObject `json:"space"`
	}
	if err := c.Do(ctx, http.MethodGet, spacePath(name, ""), nil, nil, &out); err != nil {
		return nil, err
	}
	if out.Space == nil {
		return nil, fmt.Errorf("%s: the answer has no space", c.label())
	}
	return out.Space, nil
}

// decodeAs converts a raw JSON object into a typed value.
func decodeAs[T any](m rawObject) T {
	var v T
	b, _ := json.Marshal(m)
	_ = json.Unmarshal(b, &v)
	return v
}

func decodeJSON(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
