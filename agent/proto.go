// Package agent is the channel between a node and the agent that runs in
// each of its spaces (cmd/clawdspace-agent): the agent dials the node's
// Unix socket that is mounted into the space and serves HTTP/2 on the
// connection it dialed, so the node is the client of every stream and
// never follows a path the space controls. This file is the wire format
// both sides share; serve.go is the agent's side. The node's side lives in
// the engine package, which treats everything the agent says as untrusted
// (docs/ARCHITECTURE.md, "The in-space agent").
package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the protocol version. The node refuses an agent that answers
// another: the binary mounted into a space may be older than the node.
const Version = "clawdspace-agent/1"

// Paths inside a space: the node mounts its per-space run folder and the
// folder of the agent's binary there, both read-only.
const (
	RunDir     = "/.clawdspace/run"
	BinDir     = "/.clawdspace/bin"
	SocketPath = RunDir + "/agent.sock"
	BinPath    = BinDir + "/clawdspace-agent"
	// BinName is the binary's file name, beside the node's.
	BinName    = "clawdspace-agent"
	SocketName = "agent.sock"
)

// ExecMarkerEnv names the variable every process started for one exec
// carries (a random value per exec), so the node can find and kill them
// from the host whatever the agent says.
const ExecMarkerEnv = "CLAWDSPACE_EXEC"

// Hello is the agent's answer to GET /hello.
type Hello struct {
	Version string `json:"version"`
}

// ExecRequest starts a POST /exec body: a 4-byte big-endian length and
// this as JSON; the stdin bytes follow when Stdin is set.
type ExecRequest struct {
	Cmd   []string `json:"cmd"`
	Env   []string `json:"env"`
	Dir   string   `json:"dir,omitempty"`
	Stdin bool     `json:"stdin,omitempty"`
}

// TerminalRequest starts a POST /terminal body, framed as ExecRequest's;
// what follows are FrameInput and FrameResize frames. Its answer is
// FrameStdout frames (the TTY's one stream), then FrameExit.
type TerminalRequest struct {
	Cmd  []string `json:"cmd"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir,omitempty"`
	Cols uint16   `json:"cols"`
	Rows uint16   `json:"rows"`
}

// MaxRequest bounds an ExecRequest (the agent's own bound; the node's
// requests are smaller than the engine's exec create would take).
const MaxRequest = 1 << 20

// StatusNotStarted is the status of an exec answer whose process could not
// be started (the body says why): the node runs it through the Engine API
// instead, which gives the error users always got.
const StatusNotStarted = 422

// Frames of an exec answer: a kind byte, a 3-byte big-endian length and
// that many bytes. Output comes as FrameStdout and FrameStderr frames, in
// the order written; FrameExit (4 bytes, the exit code) ends it.
const (
	FrameStdout byte = 'o'
	FrameStderr byte = 'e'
	FrameExit   byte = 'x'
	// FrameInput (keystrokes) and FrameResize (2-byte columns, 2-byte
	// rows) go from the node to a terminal.
	FrameInput  byte = 'i'
	FrameResize byte = 'r'
	// MaxFrame bounds a frame's payload.
	MaxFrame = 32 << 10
)

// WriteFrame writes one frame; p must not be longer than MaxFrame.
func WriteFrame(w io.Writer, kind byte, p []byte) error {
	var h [4]byte
	h[0] = kind
	h[1], h[2], h[3] = byte(len(p)>>16), byte(len(p)>>8), byte(len(p))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

// ErrBadFrame is a frame that breaks the format.
var ErrBadFrame = errors.New("malformed frame")

// ReadFrame reads one frame into buf (at least MaxFrame long) and returns
// its kind and payload. A frame longer than MaxFrame or of an unknown
// kind is ErrBadFrame: the reader never allocates on the writer's word.
func ReadFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	switch {
	case n > MaxFrame || n > len(buf):
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrBadFrame, n)
	case h[0] != FrameStdout && h[0] != FrameStderr && h[0] != FrameExit && h[0] != FrameInput && h[0] != FrameResize:
		return 0, nil, fmt.Errorf("%w: kind %q", ErrBadFrame, h[0])
	case (h[0] == FrameExit || h[0] == FrameResize) && n != 4:
		return 0, nil, fmt.Errorf("%w: %q frame of %d bytes", ErrBadFrame, h[0], n)
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrBadFrame, io.ErrUnexpectedEOF)
	}
	return h[0], buf[:n], nil
}

// ExitFrame is the payload of a FrameExit.
func ExitFrame(code int) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(int32(code)))
}

// ExitCode reads a FrameExit's payload.
func ExitCode(p []byte) int { return int(int32(binary.BigEndian.Uint32(p))) }
