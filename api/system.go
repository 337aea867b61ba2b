package api

import "github.com/adam91holt/clawdspace/spaces"

// Capabilities are what a node offers: GET /api/system/capabilities, and
// part of GET /api/system and GET /api/nodes.
type Capabilities struct {
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

// CapabilitiesFrom is c as the contract shows it.
func CapabilitiesFrom(c spaces.NodeCapabilities) Capabilities {
	return Capabilities(c)
}

// Domain is the domain's form of what another node reported.
func (c Capabilities) Domain() spaces.NodeCapabilities {
	return spaces.NodeCapabilities(c)
}

// System is GET /api/system. Memory and disk sizes are human strings
// ("23.5 GB"), percentages like "4.6%".
type System struct {
	Hostname     string       `json:"hostname"`
	Platform     string       `json:"platform"`
	Arch         string       `json:"arch"`
	CPUs         int          `json:"cpus"`
	LoadAverage  [3]float64   `json:"loadAverage"`
	Memory       Memory       `json:"memory"`
	Disk         *Disk        `json:"disk"`
	Uptime       float64      `json:"uptime"`
	Docker       Docker       `json:"docker"`
	Capabilities Capabilities `json:"capabilities"`
	// WarmPool is each template's warm pool (docs/POOL.md); absent when
	// the node keeps none.
	WarmPool []WarmPool `json:"warmPool,omitempty"`
}

// WarmPool is one template's warm pool: its configured size and how many
// members are ready to be claimed.
type WarmPool struct {
	Template string `json:"template"`
	Size     int    `json:"size"`
	Ready    int    `json:"ready"`
}

// Memory is the machine's memory.
type Memory struct {
	Total      string `json:"total"`
	Free       string `json:"free"`
	Used       string `json:"used"`
	Percentage string `json:"percentage"`
}

// Disk is the file system of the node's data folder.
type Disk struct {
	Total      string `json:"total"`
	Used       string `json:"used"`
	Available  string `json:"available"`
	Percentage string `json:"percentage"`
}

// Docker summarises the engine.
type Docker struct {
	Version           string `json:"version"`
	APIVersion        string `json:"apiVersion"`
	Containers        int    `json:"containers"`
	ContainersRunning int    `json:"containersRunning"`
	ContainersPaused  int    `json:"containersPaused"`
	Images            int    `json:"images"`
}

// Node is one node of GET /api/nodes.
type Node struct {
	Name         string        `json:"name"`
	URL          string        `json:"url"`
	Status       string        `json:"status"`
	LatencyMs    int64         `json:"latencyMs"`
	Capabilities *Capabilities `json:"capabilities,omitempty"`
	Self         bool          `json:"self"`
	Version      string        `json:"version,omitempty"`
	LastSeen     string        `json:"lastSeen,omitempty"`
	CheckedAt    string        `json:"checkedAt,omitempty"`
	Problem      string        `json:"problem,omitempty"`
}

// NodeFrom is n as the contract shows it; self marks the node that
// answers.
func NodeFrom(n spaces.NodeHealth, self bool) Node {
	out := Node{
		Name: n.Name, URL: n.URL, Status: n.Status, LatencyMs: n.LatencyMs, Self: self,
		Version: n.Version, LastSeen: Time(n.LastSeen), CheckedAt: Time(n.CheckedAt), Problem: n.Problem,
	}
	if n.Capabilities != nil {
		c := CapabilitiesFrom(*n.Capabilities)
		out.Capabilities = &c
	}
	return out
}

// NodeList is GET /api/nodes. LastUpdatedAt is in Unix milliseconds.
type NodeList struct {
	Nodes         []Node `json:"nodes"`
	LastUpdatedAt int64  `json:"lastUpdatedAt"`
}
