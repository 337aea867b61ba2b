package api

import (
	"encoding/json"
	"strconv"
)

// TerminalMessage is a control message of the terminal WebSocket
// (GET /api/spaces/NAME/terminal), sent as a text frame:
// {"type":"input","data":"..."}, {"type":"resize","cols":N,"rows":N} or
// {"type":"ping"}, which the node answers {"type":"pong"}. Data, Cols and
// Rows stay raw: the node reads each for the type that uses it, and a
// text frame that is not such a message is keystrokes.
type TerminalMessage struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data,omitempty"`
	Cols json.RawMessage `json:"cols,omitempty"`
	Rows json.RawMessage `json:"rows,omitempty"`
}

// TerminalResize is the message that sets the terminal's window size.
func TerminalResize(cols, rows int) TerminalMessage {
	return TerminalMessage{Type: "resize", Cols: json.RawMessage(strconv.Itoa(cols)), Rows: json.RawMessage(strconv.Itoa(rows))}
}
