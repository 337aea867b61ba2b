package spaces

import (
	"context"
	"time"
)

// Audit event types of the wire contract.
const (
	EventCreate         = "space.create"
	EventStart          = "space.start"
	EventPause          = "space.pause"
	EventDestroy        = "space.destroy"
	EventExec           = "space.exec"
	EventShell          = "space.shell"
	EventShellSkipped   = "space.shell.skipped"
	EventFileWrite      = "space.file.write"
	EventFileMkdir      = "space.file.mkdir"
	EventFileDelete     = "space.file.delete"
	EventTerminalOpen   = "terminal.open"
	EventTerminalClose  = "terminal.close"
	EventTemplateUpsert = "template.upsert"
	EventTemplateDelete = "template.delete"
	EventDenied         = "auth.denied"
	EventGitPush        = "space.git.push"
	// EventPortConnection is one connection to a space's port, written
	// when it closes: port, bytes each way, duration.
	EventPortConnection = "port.connection"
	EventPortForward    = "port.forward"
	EventPortUnforward  = "port.unforward"
	// EventSSHOpen and EventSSHClose bracket an SSH connection.
	EventSSHOpen  = "ssh.open"
	EventSSHClose = "ssh.close"
)

// Event sources: who vouches for an audit row.
const (
	// SourceNode is what the node did or witnessed (the default).
	SourceNode = "node"
	// SourceSpace is what a space reported about itself (its shell
	// history): code in the space wrote it, and it may be false.
	SourceSpace = "space"
)

// Event is one audit row: who did what to which space, and when.
type Event struct {
	ID    int64
	Time  time.Time
	Space string
	Type  string
	Actor string
	Meta  map[string]any
	// Source is SourceNode (when empty) or SourceSpace.
	Source string
}

// AuditQuery selects the newest Limit events, optionally of one space.
type AuditQuery struct {
	Space string
	// Type keeps events of this type only.
	Type string
	// Actor keeps events whose actor contains this text (any case).
	Actor string
	// Before keeps events older than this ID (for paging back).
	Before int64
	Limit  int
}

// Store is the node's persistent state. The SQLite adapter implements it.
type Store interface {
	AuditLog
	TemplateStore
	ActivityStore
	HistoryStore
	IntentStore
	ForwardStore
}

// AuditLog records and lists audit events.
type AuditLog interface {
	Record(ctx context.Context, e Event) error
	// Events returns the newest q.Limit matching events, oldest first.
	Events(ctx context.Context, q AuditQuery) ([]Event, error)
	// PruneAudit deletes events older than before (none when before is
	// zero) and then the oldest beyond the newest maxRows (none when
	// maxRows is 0); it returns how many it deleted.
	PruneAudit(ctx context.Context, before time.Time, maxRows int64) (int64, error)
}

// TemplateStore keeps templates.
type TemplateStore interface {
	Template(ctx context.Context, name string) (Template, error) // ErrNotFound when missing
	Templates(ctx context.Context) ([]Template, error)           // sorted by name
	PutTemplate(ctx context.Context, t Template) error
	// EnsureTemplate inserts t when no template of that name exists.
	EnsureTemplate(ctx context.Context, t Template) error
	DeleteTemplate(ctx context.Context, name string) error // ErrNotFound when missing
}

// ActivityStore keeps the last activity and start time of each space, so a
// restart of the node does not reset them.
type ActivityStore interface {
	Touch(ctx context.Context, space string, at time.Time) error
	MarkStarted(ctx context.Context, space string, at time.Time) error
	// Activity returns what is known of every space.
	Activity(ctx context.Context) (map[string]SpaceActivity, error)
	// SpaceActivity returns what is known of one space.
	SpaceActivity(ctx context.Context, space string) (SpaceActivity, error)
	Forget(ctx context.Context, space string) error
}

// SpaceActivity is the persisted activity of one space.
type SpaceActivity struct {
	LastActivity time.Time
	StartedAt    time.Time
}

// HistoryStore keeps how far each space's shell history has been recorded,
// so that a restart of the node neither loses nor repeats a command.
type HistoryStore interface {
	// HistoryCursor returns the cursor of space; the zero cursor when none
	// was saved.
	HistoryCursor(ctx context.Context, space string) (HistoryCursor, error)
	// SaveHistory records events and sets the cursor of space in one
	// transaction: after a crash either both happened or neither did.
	SaveHistory(ctx context.Context, space string, cur HistoryCursor, events []Event) error
}

// HistoryCursor is how far a space's history file has been recorded, and
// enough of the file's identity to notice when it was truncated or replaced.
type HistoryCursor struct {
	// Offset is the number of bytes of the file already recorded.
	Offset int64
	// Size and MTime are the file's when it was last read to its end, so an
	// unchanged file is skipped without reading it. Size is -1 when the
	// last read stopped early and the file must be read again.
	Size  int64
	MTime time.Time
	// HeadHash is the SHA-256 of the file's first min(Offset, 4096) bytes.
	HeadHash []byte
	// SavedAt is when the pass that saved the cursor ran (zero when never):
	// entries found later are dated no earlier.
	SavedAt time.Time
}
