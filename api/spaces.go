package api

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/adam91holt/clawdspace/spaces"
)

// Space is the Space object of the contract.
type Space struct {
	Name         string  `json:"name"`
	ID           string  `json:"id"`
	Status       string  `json:"status"`
	Created      string  `json:"created"`
	Started      string  `json:"started"`
	Image        string  `json:"image"`
	Memory       int64   `json:"memory"`
	CPUs         float64 `json:"cpus"`
	GPU          bool    `json:"gpu"`
	Template     string  `json:"template,omitempty"`
	NetworkMode  string  `json:"networkMode,omitempty"`
	LastActivity string  `json:"lastActivity"`
	Volume       Volume  `json:"volume"`
	// Agent is how the node reaches the space (extra, see spaces.Space).
	Agent string `json:"agent,omitempty"`
}

// Volume is a space's workspace volume.
type Volume struct {
	Name       string `json:"name"`
	Mountpoint string `json:"mountpoint"`
}

// SpaceFrom is sp as the contract shows it.
func SpaceFrom(sp spaces.Space) Space {
	return Space{
		Name:         sp.Name,
		ID:           sp.ID,
		Status:       string(sp.Status),
		Created:      Time(sp.Created),
		Started:      Time(sp.Started),
		Image:        sp.Image,
		Memory:       sp.Memory,
		CPUs:         sp.CPUs,
		GPU:          sp.GPU,
		Template:     sp.Template,
		NetworkMode:  sp.NetworkMode,
		LastActivity: Time(sp.LastActivity),
		Volume:       Volume{Name: sp.Volume, Mountpoint: spaces.WorkspacePath},
		Agent:        sp.Agent,
	}
}

// SpaceList is GET /api/spaces.
type SpaceList struct {
	Spaces []Space `json:"spaces"`
}

// SpaceAnswer is GET /api/spaces/NAME and the answer of a create.
type SpaceAnswer struct {
	Space Space `json:"space"`
}

// FleetSpace is a Space with the node that holds it.
type FleetSpace struct {
	Space
	Node string `json:"node"`
}

// NodeError is a node that could not be asked.
type NodeError struct {
	Node  string `json:"node"`
	Error string `json:"error"`
}

// FleetSpaceList is GET /api/spaces?all=true: the spaces of every online
// node, and the nodes that did not answer.
type FleetSpaceList struct {
	Spaces []FleetSpace `json:"spaces"`
	Errors []NodeError  `json:"errors"`
}

// CreateSpace is the body of POST /api/spaces. Memory and cpus accept a
// number or a string, as scripts send both.
type CreateSpace struct {
	Name     string            `json:"name"`
	Memory   FlexString        `json:"memory,omitempty"`
	CPUs     OptNumber         `json:"cpus,omitzero"`
	GPU      *bool             `json:"gpu,omitempty"`
	Image    string            `json:"image,omitempty"`
	Template string            `json:"template,omitempty"`
	Env      map[string]string `json:"env,omitempty"`

	EnvFileText   *string `json:"envFileText,omitempty"`
	EnvFileBase64 *string `json:"envFileBase64,omitempty"`
	EnvFilePath   string  `json:"envFilePath,omitempty"`
	RepoURL       string  `json:"repoUrl,omitempty"`
	RepoBranch    string  `json:"repoBranch,omitempty"`
	RepoDest      string  `json:"repoDest,omitempty"`
	// Node places the space on a node of the fleet: its name, or "auto".
	Node string `json:"node,omitempty"`
	// From forks the new space from a space ("NAME") or one of its
	// checkpoints ("NAME@CHECKPOINT") on the node that has it; the other
	// fields but name must then be empty.
	From string `json:"from,omitempty"`
}

// Domain is the service's request.
func (c CreateSpace) Domain() spaces.CreateRequest {
	return spaces.CreateRequest{
		Name:     c.Name,
		Memory:   string(c.Memory),
		CPUs:     c.CPUs.Ptr(),
		GPU:      c.GPU,
		Image:    c.Image,
		Template: c.Template,
		Env:      c.Env,

		EnvFileText:   c.EnvFileText,
		EnvFileBase64: c.EnvFileBase64,
		EnvFilePath:   c.EnvFilePath,
		RepoURL:       c.RepoURL,
		RepoBranch:    c.RepoBranch,
		RepoDest:      c.RepoDest,
	}
}

// CreateSpaceFrom is req as the body of POST /api/spaces, to send it to
// another node.
func CreateSpaceFrom(req spaces.CreateRequest) CreateSpace {
	c := CreateSpace{
		Name: req.Name, Memory: FlexString(req.Memory), GPU: req.GPU, Image: req.Image, Template: req.Template, Env: req.Env,
		EnvFileText: req.EnvFileText, EnvFileBase64: req.EnvFileBase64, EnvFilePath: req.EnvFilePath,
		RepoURL: req.RepoURL, RepoBranch: req.RepoBranch, RepoDest: req.RepoDest,
	}
	if req.CPUs != nil {
		c.CPUs = Number(*req.CPUs)
	}
	return c
}

// FlexString is a JSON string or number, kept as text.
type FlexString string

func (f *FlexString) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = FlexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return spaces.FieldErrorf(spaces.ErrInvalid, spaces.FieldMemory, "must be a string such as \"2g\"")
	}
	*f = FlexString(n.String())
	return nil
}

// OptNumber is an optional JSON number or numeric string; null and ""
// mean "not given", so a template's value applies. Its zero value is not
// given.
type OptNumber struct {
	set bool
	v   float64
}

// Number is the given number v.
func Number(v float64) OptNumber { return OptNumber{set: true, v: v} }

// IsZero reports whether the number was not given (for omitzero).
func (f OptNumber) IsZero() bool { return !f.set }

// Ptr is the number, nil when not given.
func (f OptNumber) Ptr() *float64 {
	if !f.set {
		return nil
	}
	return &f.v
}

func (f OptNumber) MarshalJSON() ([]byte, error) {
	if !f.set {
		return []byte("null"), nil
	}
	return json.Marshal(f.v)
}

func (f *OptNumber) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var n float64
	if err := json.Unmarshal(b, &n); err == nil {
		*f = Number(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if strings.TrimSpace(s) == "" {
			return nil
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
			*f = Number(v)
			return nil
		}
	}
	return spaces.FieldErrorf(spaces.ErrInvalid, spaces.FieldCPUs, "must be a number")
}
