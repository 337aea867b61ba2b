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

	// ErrLeftForRecovery marks an error of an Engine after which part of
	// what the operation made may be left (a claimed pool member it could
	// not remove): the service keeps the operation's intent, so that the
	// next start's recovery undoes it. It is no status of its own: the
	// error carries its kind besides.
	ErrLeftForRecovery = errors.New("left for recovery")
)

// Field names an input of the domain that an error is about, in the
// domain's words. Doors map it to their own names: the API to its JSON
// field, the dashboard to its form field.
type Field string

// The inputs of the domain's requests.
const (
	FieldName          Field = "name"
	FieldMemory        Field = "memory"
	FieldCPUs          Field = "cpus"
	FieldGPU           Field = "gpu"
	FieldImage         Field = "image"
	FieldTemplate      Field = "template"
	FieldEnv           Field = "env"
	FieldEnvFileText   Field = "env file text"
	FieldEnvFileBase64 Field = "env file in base64"
	FieldEnvFilePath   Field = "env file path"
	FieldRepoURL       Field = "repository URL"
	FieldBranch        Field = "branch"
	FieldRepoDest      Field = "repo destination"
	FieldCommand       Field = "command"
	FieldTimeout       Field = "timeout"
	FieldWorkDir       Field = "working folder"
	FieldPath          Field = "path"
	FieldPushRepo      Field = "repository path"
	FieldPushRemote    Field = "remote"
	FieldPushToken     Field = "token"
	FieldTemplateYAML  Field = "yaml"
	FieldLimit         Field = "limit"
	FieldPort          Field = "port"
	FieldNodePort      Field = "node port"
	FieldTerm          Field = "terminal type"
)

// Error is a domain error with a message that is safe to show to clients.
type Error struct {
	Kind error
	// Field is the input the error is about, or "".
	Field Field
	// Msg is the message. When Named is set it says what is wrong with
	// Field and follows the field's name ("is required"), so that each
	// door can name the field its own way; otherwise it is whole.
	Msg   string
	Named bool
}

func (e *Error) Error() string { return e.Text(func(f Field) string { return string(f) }) }
func (e *Error) Unwrap() error { return e.Kind }

// Text is the message with the field, when the message names it, called
// name(Field).
func (e *Error) Text(name func(Field) string) string {
	if !e.Named || e.Field == "" {
		return e.Msg
	}
	return name(e.Field) + " " + e.Msg
}

// Errorf returns an *Error of the given kind with a formatted, client-safe message.
func Errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an *Error about field f whose message is f's name
// followed by the formatted text: FieldErrorf(ErrInvalid, FieldName,
// "is required").
func FieldErrorf(kind error, f Field, format string, args ...any) error {
	return &Error{Kind: kind, Field: f, Msg: fmt.Sprintf(format, args...), Named: true}
}

// AboutField returns an *Error about field f with a whole message that
// does not start with the field's name.
func AboutField(kind error, f Field, format string, args ...any) error {
	return &Error{Kind: kind, Field: f, Msg: fmt.Sprintf(format, args...)}
}

// Message returns the client-safe message of err when it carries one,
// naming fields in the domain's words.
func Message(err error) (string, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Error(), true
	}
	return "", false
}

// FieldOf returns the input err is about, or "".
func FieldOf(err error) Field {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// Common not-found errors with the exact messages of the wire contract.
var (
	errSpaceNotFound    = &Error{Kind: ErrNotFound, Msg: "Space not found"}
	errTemplateNotFound = &Error{Kind: ErrNotFound, Msg: "Template not found"}
	errSpaceExists      = &Error{Kind: ErrExists, Field: FieldName, Msg: "Space already exists"}
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
