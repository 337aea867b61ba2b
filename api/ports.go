package api

import (
	"strconv"

	"github.com/adam91holt/clawdspace/spaces"
)

// Forward states, as GET /api/spaces/NAME/ports shows them.
const (
	// ForwardServing: the node listens on the forward's node port.
	ForwardServing = "serving"
	// ForwardPending: the forward was just opened and is not listened on
	// yet.
	ForwardPending = "pending"
	// ForwardFailed: the node could not listen on the node port (Error
	// says why); it tries again.
	ForwardFailed = "failed"
	// ForwardUnserved: the node is not on a tailnet, so no forward is
	// served on a port (use the API tunnel, `clawdspace forward`).
	ForwardUnserved = "unserved"
)

// Ports is GET /api/spaces/NAME/ports: what the space listens on and
// what of it is forwarded.
type Ports struct {
	// Detected is false when the space's sockets could not be read (it
	// is paused or stopped); Listening is then empty.
	Detected  bool            `json:"detected"`
	Listening []ListeningPort `json:"listening"`
	Forwards  []Forward       `json:"forwards"`
	// Served says whether this node serves forwards on its tailnet
	// address; Note says what to do when it does not.
	Served bool   `json:"served"`
	Note   string `json:"note,omitempty"`
}

// ListeningPort is a TCP port a space listens on.
type ListeningPort struct {
	Port    uint16 `json:"port"`
	Address string `json:"address"`
	// Loopback is true when only the space itself can reach the socket
	// (the node's forwards and the tunnel reach it anyway).
	Loopback bool `json:"loopback"`
	// Forwarded is the node port it is forwarded to, 0 when none.
	Forwarded uint16 `json:"forwarded,omitempty"`
}

// Forward is a space's port served on the node's tailnet address.
type Forward struct {
	Port     uint16 `json:"port"`
	NodePort uint16 `json:"nodePort"`
	HTTPS    bool   `json:"https"`
	// URL is http(s)://NODE:NODEPORT/ with the node's tailnet name;
	// empty when the node is not on a tailnet.
	URL       string `json:"url,omitempty"`
	State     string `json:"state"`
	Error     string `json:"error,omitempty"`
	CreatedBy string `json:"createdBy"`
	Created   string `json:"created"`
}

// ForwardAnswer is the answer of POST /api/spaces/NAME/ports.
type ForwardAnswer struct {
	Forward Forward `json:"forward"`
}

// OpenForward is the body of POST /api/spaces/NAME/ports. The numbers
// are read as int so an out-of-range one gets the field's own message.
type OpenForward struct {
	Port     int  `json:"port"`
	NodePort int  `json:"nodePort,omitempty"`
	HTTPS    bool `json:"https,omitempty"`
}

// Domain is the request as the Service takes it.
func (o OpenForward) Domain() (spaces.ForwardRequest, error) {
	if o.Port < 1 || o.Port > 65535 {
		return spaces.ForwardRequest{}, spaces.FieldErrorf(spaces.ErrInvalid, spaces.FieldPort, "must be between 1 and 65535")
	}
	if o.NodePort < 0 || o.NodePort > 65535 {
		return spaces.ForwardRequest{}, spaces.FieldErrorf(spaces.ErrInvalid, spaces.FieldNodePort, "must be between 1 and 65535 (or left out)")
	}
	return spaces.ForwardRequest{Port: uint16(o.Port), NodePort: uint16(o.NodePort), HTTPS: o.HTTPS}, nil
}

// ParsePort reads a port of a path ("3000"): a whole number between 1
// and 65535.
func ParsePort(s string) (uint16, error) {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil || p == 0 {
		return 0, spaces.FieldErrorf(spaces.ErrInvalid, spaces.FieldPort, "must be a whole number between 1 and 65535")
	}
	return uint16(p), nil
}

// ListeningPortFrom is p as the contract shows it.
func ListeningPortFrom(p spaces.ListeningPort) ListeningPort {
	return ListeningPort{Port: p.Port, Address: p.Address, Loopback: p.Loopback()}
}

// ForwardFrom is f as the contract shows it, without URL and state
// (the node adds them).
func ForwardFrom(f spaces.Forward) Forward {
	return Forward{Port: f.Port, NodePort: f.NodePort, HTTPS: f.HTTPS, CreatedBy: f.CreatedBy, Created: Time(f.Created)}
}
