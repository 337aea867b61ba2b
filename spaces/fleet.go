package spaces

import "time"

// Node health states.
const (
	NodeOnline  = "online"
	NodeOffline = "offline"
)

// NodeCapabilities are what a node offers, as it reports them.
type NodeCapabilities struct {
	GPU           bool   `json:"gpu"`
	GPUName       string `json:"gpuName,omitempty"`
	GPUMemory     string `json:"gpuMemory,omitempty"`
	Arch          string `json:"arch"`
	Platform      string `json:"platform"`
	CPUs          int    `json:"cpus,omitempty"`
	Memory        uint64 `json:"memory,omitempty"`
	MemoryFree    uint64 `json:"memoryFree,omitempty"`
	Spaces        *int   `json:"spaces,omitempty"`
	SpacesRunning *int   `json:"spacesRunning,omitempty"`
}

// NodeHealth is the last known state of another node of the fleet.
type NodeHealth struct {
	Name string
	// URL is where the node's API answers (http://<tailnet IP>:7777).
	URL string
	// Status is NodeOnline or NodeOffline.
	Status    string
	LatencyMs int64
	Version   string
	// Capabilities are nil until the node has answered once.
	Capabilities *NodeCapabilities
	// LastSeen is when the node last answered; CheckedAt when it was last
	// probed.
	LastSeen  time.Time
	CheckedAt time.Time
	// Problem says why the last probe failed, or why capabilities are
	// missing.
	Problem string
}
