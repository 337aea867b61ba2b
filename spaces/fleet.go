package spaces

import "time"

// Node health states.
const (
	NodeOnline  = "online"
	NodeOffline = "offline"
)

// NodeCapabilities are what a node offers, as it reports them.
type NodeCapabilities struct {
	GPU           bool
	GPUName       string
	GPUMemory     string
	Arch          string
	Platform      string
	CPUs          int
	Memory        uint64
	MemoryFree    uint64
	Spaces        *int
	SpacesRunning *int
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
