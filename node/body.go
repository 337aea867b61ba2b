package node

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

// DefaultBodyReadTimeout is the default of Config.BodyReadTimeout.
const DefaultBodyReadTimeout = 30 * time.Second

// errBodyTimeout is a request body that stopped arriving: 408.
var errBodyTimeout = errors.New("request body not received in time")

// bodyDeadline gives every request body a read deadline that each read
// pushes on by BodyReadTimeout: a slow upload goes on as long as bytes
// come, a body that stops arriving ends its handler with 408 instead of
// holding it forever. (http.Server.ReadTimeout would bound the whole body,
// and so the size of an upload.)
func (s *Server) bodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: s.cfg.BodyReadTimeout}
		}
		next.ServeHTTP(w, r)
	})
}

type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	// Not supported (a test's recorder, a hijacked conn): no deadline.
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.ReadCloser.Read(p)
	// At the body's end the server clears the deadline itself, before it
	// reads the connection in the background to notice a client that goes
	// away (so a long exec is not ended by it). After a timeout the
	// deadline stays: whatever reads the connection next fails at once,
	// and the server closes it.
	if err != nil {
		b.done = true
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return n, fmt.Errorf("%w: %w", errBodyTimeout, err)
	}
	return n, err
}

// bodyErr turns an error of reading a request body into what the client
// did wrong: too large (413), stopped arriving (408, via errBodyTimeout),
// or shorter than its Content-Length (400).
func bodyErr(r *http.Request, err error, tooLarge func() error) error {
	var mbe *http.MaxBytesError
	var refusal error
	switch {
	case errors.As(err, &mbe):
		return tooLarge()
	case errors.Is(err, errBodyTimeout):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF) && r.ContentLength > 0:
		refusal = spaces.Errorf(spaces.ErrInvalid, "the request body ended before its Content-Length of %d bytes", r.ContentLength)
	case errors.Is(err, io.ErrUnexpectedEOF):
		refusal = spaces.Errorf(spaces.ErrInvalid, "the request body ended before its last chunk")
	default:
		refusal = spaces.Errorf(spaces.ErrInvalid, "the request body could not be read")
	}
	// The cause stays for the log; the client gets the message only.
	return fmt.Errorf("%w: %w", refusal, err)
}
