// Package spaces is the Clawdspace domain: spaces, templates, audit events,
// the rules that govern them and the service that applies those rules. It
// imports nothing else of this module; adapters (the Docker engine, the SQLite
// store) implement the interfaces it defines.
package spaces

import (
	"time"
)

// Status of a space as clients see it.
type Status string

const (
	StatusRunning Status = "running"
	StatusPaused  Status = "paused"
	StatusStopped Status = "stopped"
)

// Docker conventions of the wire contract, shared with spaces made by the
// older TypeScript node so that those are adopted unchanged.
const (
	ContainerPrefix = "clawdspace-"
	VolumePrefix    = "clawdspace-vol-"
	WorkspacePath   = "/workspace"
	SandboxUID      = 1001

	LabelKind        = "clawdspace.kind"
	LabelKindSpace   = "space"
	LabelSpace       = "clawdspace.space"
	LabelVolume      = "clawdspace.volume"
	LabelTemplate    = "clawdspace.template"
	LabelNetworkMode = "clawdspace.network.mode"
	// Labels added by this node so a list needs no inspect per space.
	LabelMemory = "clawdspace.memory"
	LabelCPUs   = "clawdspace.cpus"
	LabelGPU    = "clawdspace.gpu"
	// LabelNetworkBlock holds the template's egress block list (CIDRs,
	// comma-separated), enforced whenever the container starts.
	LabelNetworkBlock = "clawdspace.network.block"
	// LabelHostPorts holds the host ports a space with a block list may
	// still reach on the node's host addresses (comma-separated).
	LabelHostPorts = "clawdspace.network.hostports"
	// LabelWorkspaceMax holds the template's workspace size limit in bytes.
	LabelWorkspaceMax = "clawdspace.workspace.maxbytes"
	// LabelNamespace names the engine namespace of a space's container and
	// volume when nodes share one engine; empty (or absent, on containers
	// and volumes of older nodes) in the default namespace.
	LabelNamespace = "clawdspace.namespace"
)

// Space is one sandbox: a container plus its workspace volume.
type Space struct {
	Name         string
	ID           string // 12 hex characters
	Status       Status
	Created      time.Time
	Started      time.Time
	Image        string
	Memory       int64   // bytes
	CPUs         float64 // cores
	GPU          bool
	Template     string
	NetworkMode  string
	LastActivity time.Time
	Volume       string
	// Agent says whether the node reaches the space through its in-space
	// agent: "connected", "starting", "not started", "off: REASON" or
	// "fallback: REASON" (calls take the Engine API path meanwhile).
	Agent string
	// VolumeCreated is set by Engine.Create when it made a new volume.
	VolumeCreated bool
}
