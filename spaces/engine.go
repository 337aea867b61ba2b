package spaces

import (
	"context"
	"io"
	"net"
	"strings"
	"time"
)

// Engine runs spaces. The Docker adapter implements it; tests may use a fake
// beside the real one. Errors use this package's kinds: ErrNotFound for a
// missing space, ErrExists for a taken name, ErrNotRunning when an exec finds
// the space paused or stopped, ErrInvalid for a request the engine refuses.
type Engine interface {
	// List returns every space on the engine, from one filtered call.
	List(ctx context.Context) ([]Space, error)
	// Get returns one space by name.
	Get(ctx context.Context, name string) (Space, error)
	// Create makes the volume (unless it exists) and the container, starts it
	// and returns the space. On any failure it leaves nothing it made behind.
	Create(ctx context.Context, spec ContainerSpec) (Space, error)
	// Remove deletes the container, and the volume when removeVolume is set.
	Remove(ctx context.Context, name string, removeVolume bool) error
	// Pause freezes a running space; pausing a paused space is not an error.
	Pause(ctx context.Context, name string) error
	// Resume unpauses a paused space or starts a stopped one.
	Resume(ctx context.Context, name string) error
	// Exec runs a process in the space and returns its exit code.
	Exec(ctx context.Context, name string, spec ExecSpec) (int, error)
	// Stats samples resource usage.
	Stats(ctx context.Context, name string) (Stats, error)
	// Info describes the engine.
	Info(ctx context.Context) (EngineInfo, error)

	// Top lists the processes of a space.
	Top(ctx context.Context, name string) ([]Process, error)

	// File operations take absolute paths under /workspace (as
	// WorkspacePathOf makes them) and never act outside it: a symlink is
	// followed only while it stays inside /workspace (ErrForbidden where it
	// leads out), and no check is separate from the action it guards, so a
	// space that changes its files meanwhile reaches nothing it could not
	// reach itself. What they create belongs to the sandbox user. A missing
	// path is ErrNotFound with a message naming it; a folder where a file is
	// needed and the other way round are ErrInvalid.

	// StatPath describes path; a last symlink is followed when follow is
	// set. LinkTarget of a symlink is its target as stored.
	StatPath(ctx context.Context, name, path string, follow bool) (FileInfo, error)
	// OpenFile opens a regular file, following symlinks, at offset.
	OpenFile(ctx context.Context, name, path string, offset int64) (FileInfo, io.ReadCloser, error)
	// WriteFile writes a whole file, following a last symlink, creating
	// missing folders: into a hidden file beside it (UploadSuffix) that is
	// renamed over the name once complete, so a crash never leaves part of
	// it under its name. A file keeps its mode unless f.Mode is set.
	WriteFile(ctx context.Context, name, path string, f FileContent) error
	// MakeDir creates a folder and its parents; an existing folder is fine.
	MakeDir(ctx context.Context, name, path string) error
	// ListDir lists the entries of a folder, following symlinks to it.
	ListDir(ctx context.Context, name, path string) ([]FileInfo, error)
	// RemovePath deletes a file or symlink (never following a last
	// symlink), or a folder with its contents when recursive is set.
	RemovePath(ctx context.Context, name, path string, recursive bool) error
	// SweepUploads removes the hidden files (UploadSuffix) of writes that
	// never finished, older than before, and returns their paths. It is
	// bounded per space (a depth and a count of entries).
	SweepUploads(ctx context.Context, name string, before time.Time) ([]string, error)

	// KillStrays kills the processes in this node's spaces that an earlier
	// run of the node started (their NodeRunEnv names a run whose process
	// is gone) and returns them.
	KillStrays(ctx context.Context) ([]Stray, error)
	// SettleCreate waits until no create of name with image that the
	// engine may still be running for a node that died can complete
	// later, so that what start-up recovery finds stays as found.
	SettleCreate(ctx context.Context, name, image string) error
	// OrphanVolumes returns the names of the spaces whose workspace volume
	// exists without a container, sorted.
	OrphanVolumes(ctx context.Context) ([]string, error)

	// Terminal starts an interactive process with a TTY. ctx bounds only the
	// start; the process runs until it exits or the TerminalProcess is closed.
	Terminal(ctx context.Context, name string, spec TerminalSpec) (TerminalProcess, error)

	// DialPort connects to TCP port of a running space as seen from
	// inside it: 127.0.0.1:port in the space's own network namespace, so
	// a server that listens only on the space's loopback is reached, in
	// every network mode. ctx bounds only the dial; the connection lives
	// until closed. ErrNotRunning when the space is paused or stopped,
	// ErrNotFound when it does not exist, ErrConflict (with a message
	// naming the port) when nothing listens there, ErrUnavailable when
	// this node cannot reach spaces' ports (it does not run on the
	// engine's host).
	DialPort(ctx context.Context, name string, port uint16) (net.Conn, error)
	// ListeningPorts returns the TCP ports a running space listens on,
	// read from its sockets (IPv4 and IPv6), sorted by port, at most
	// MaxListeningPorts of them. ErrNotRunning when the space is paused
	// or stopped.
	ListeningPorts(ctx context.Context, name string) ([]ListeningPort, error)

	// CheckpointEngine takes, lists, restores and forks checkpoints
	// (checkpoint.go).
	CheckpointEngine
	// ArchiveEngine exports and imports spaces as archives (archive.go).
	ArchiveEngine
}

// MaxListeningPorts bounds what ListeningPorts returns: a space may open
// any number of sockets.
const MaxListeningPorts = 256

// ListeningPort is one TCP socket a space listens on.
type ListeningPort struct {
	Port uint16
	// Address is the local address it is bound to: "0.0.0.0", "::",
	// "127.0.0.1", "::1", or another address of the space.
	Address string
}

// Loopback reports whether only the space itself can reach the socket
// (it is bound to a loopback address); the node reaches it anyway.
func (p ListeningPort) Loopback() bool {
	return p.Address == "127.0.0.1" || p.Address == "::1" || strings.HasPrefix(p.Address, "127.")
}

// TerminalSpec describes an interactive process with a TTY of Cols x Rows.
type TerminalSpec struct {
	Cmd     []string
	Env     []string
	WorkDir string
	User    string // empty: the space's user
	Cols    int
	Rows    int
}

// TerminalProcess is a running process with a TTY. Read returns its output
// (one raw stream) and an error once the output has ended; Write sends
// keystrokes. Read and Write may be called concurrently with each other and
// with the other methods.
type TerminalProcess interface {
	io.ReadWriter
	// Resize changes the size of the TTY.
	Resize(ctx context.Context, cols, rows int) error
	// Wait returns the exit code once the output has ended (a Read returned
	// an error) and the process has exited.
	Wait(ctx context.Context) (exitCode int, err error)
	// Close kills the process and everything it started, and ends Read.
	// It may be called more than once.
	Close() error
}

// FileType is the kind of a file-system entry, as the contract names it.
type FileType string

const (
	TypeFile    FileType = "file"
	TypeDir     FileType = "dir"
	TypeSymlink FileType = "symlink"
	TypeOther   FileType = "other"
)

// FileInfo describes one entry in a space's file system.
type FileInfo struct {
	Name       string
	Path       string // absolute, in the space
	Type       FileType
	Size       int64
	Mode       uint32 // permission bits
	MTime      time.Time
	LinkTarget string
}

// FileContent is a file to write: Size bytes from Content.
type FileContent struct {
	Mode    uint32
	Size    int64
	Content io.Reader
}

// Process is one row of a space's process table.
type Process struct {
	PID     int
	CPU     float64
	Mem     float64
	Etime   string
	Command string
}

// ContainerSpec is everything the engine needs to make a space.
type ContainerSpec struct {
	Name        string
	Image       string
	MemoryBytes int64
	CPUs        float64
	GPU         bool
	Env         []string // KEY=VALUE
	NetworkMode string   // template network mode: none, internet, lan
	BlockCIDRs  []string // egress the space may not reach (internet mode)
	// HostPorts are the ports of the node's host the space may reach when
	// it has a block list (which blocks the host's own addresses too).
	HostPorts      []uint16
	ReadOnlyRootfs bool
	// WorkspaceMaxBytes limits the workspace volume; 0 is no limit.
	WorkspaceMaxBytes int64
	Template          string
	// BeforeCreate, when set, is called once the engine knows whether the
	// workspace volume exists and before it makes anything; an error stops
	// the create. The service records its create intent here.
	BeforeCreate func(volumeExisted bool) error
	// BeforeClaim, when set, is called before a claim of a warm pool
	// member (pool.go) changes anything, with the member's container ID;
	// an error stops the claim. The service records its create intent here.
	BeforeClaim func(containerID string) error
}

// ExecSpec describes one process to run in a space. When ctx ends before
// the process does, the engine kills the process and everything it started.
type ExecSpec struct {
	Cmd     []string
	Env     []string
	WorkDir string
	User    string // empty: the space's user
	// Started, when set, is called once the process runs.
	Started func()
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	// MaxOutput, when above zero, bounds what stdout and stderr receive
	// together: beyond it the engine kills the process and the exec fails
	// with ErrTooLarge. Every exec the node makes for itself sets it, so a
	// space that floods (or a fake agent) costs bounded node memory.
	MaxOutput int64
	// Credentials says the command carries a secret (a push or clone
	// token): it runs through the Engine API, never through the in-space
	// agent, whose socket any process of the space may have taken over.
	Credentials bool
}

// Stats is one sample of a space's resource usage.
type Stats struct {
	CPUPercent       float64
	MemoryUsageBytes uint64
	MemoryLimitBytes uint64
	PIDs             uint64
	NetworkRxBytes   uint64
	NetworkTxBytes   uint64
	BlockReadBytes   uint64
	BlockWriteBytes  uint64
}

// EngineInfo summarises the engine for the system endpoint.
type EngineInfo struct {
	Version           string
	APIVersion        string
	Containers        int
	ContainersRunning int
	ContainersPaused  int
	Images            int
}

// Clock tells the time; tests inject a fake one.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now() }
