package spaces

import (
	"errors"
	"fmt"
)

// Domain error kinds. The HTTP layer maps each to one status code; nothing
// else in the code base decides a status.
var (
	ErrInvalid      = errors.New("invalid input")
	ErrNotFound     = errors.New("not found")
	ErrExists       = errors.New("already exists")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrTooLarge     = errors.New("too large")
	ErrConflict     = errors.New("conflict")
	ErrUnavailable  = errors.New("unavailable")
	// ErrDiskFull is the node's own disk (its database, its upload spool)
	// out of space: 507, whatever the request.
	ErrDiskFull = errors.New("the node's disk is full")

	// ErrNotRunning is returned by an Engine when an operation needs a running
	// container and the space is paused or stopped. The service resumes the
	// space and retries; callers never see it.
	ErrNotRunning = errors.New("space is not running")
)

// Error is a domain error with a message that is safe to show to clients.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

// Errorf returns an *Error of the given kind with a formatted, client-safe message.
func Errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Message returns the client-safe message of err when it carries one.
func Message(err error) (string, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Msg, true
	}
	return "", false
}

// Common not-found errors with the exact messages of the wire contract.
var (
	errSpaceNotFound    = &Error{Kind: ErrNotFound, Msg: "Space not found"}
	errTemplateNotFound = &Error{Kind: ErrNotFound, Msg: "Template not found"}
	errSpaceExists      = &Error{Kind: ErrExists, Msg: "Space already exists"}
)

// SpaceNotFound is the error for a missing space.
func SpaceNotFound() error { return errSpaceNotFound }

// PathNotFound is the error for a missing file or folder (abs is its
// absolute path in the space).
func PathNotFound(abs string) error {
	return Errorf(ErrNotFound, "No such file or folder: %s", DisplayPath(abs))
}

// TemplateNotFound is the error for a missing template.
func TemplateNotFound() error { return errTemplateNotFound }

// SpaceExists is the error for a name already taken.
func SpaceExists() error { return errSpaceExists }
