package api

import "github.com/adam91holt/clawdspace/spaces"

// Stats is one sample of a space's resource usage.
type Stats struct {
	CPUPercent       float64 `json:"cpuPercent"`
	MemoryUsageBytes uint64  `json:"memoryUsageBytes"`
	MemoryLimitBytes uint64  `json:"memoryLimitBytes"`
	PIDs             uint64  `json:"pids"`
	NetworkRxBytes   uint64  `json:"networkRxBytes"`
	NetworkTxBytes   uint64  `json:"networkTxBytes"`
	BlockReadBytes   uint64  `json:"blockReadBytes"`
	BlockWriteBytes  uint64  `json:"blockWriteBytes"`
}

// StatsFrom is st as the contract shows it.
func StatsFrom(st spaces.Stats) Stats {
	return Stats{
		CPUPercent: st.CPUPercent, MemoryUsageBytes: st.MemoryUsageBytes, MemoryLimitBytes: st.MemoryLimitBytes,
		PIDs: st.PIDs, NetworkRxBytes: st.NetworkRxBytes, NetworkTxBytes: st.NetworkTxBytes,
		BlockReadBytes: st.BlockReadBytes, BlockWriteBytes: st.BlockWriteBytes,
	}
}

// StatsAnswer is GET /api/spaces/NAME/stats.
type StatsAnswer struct {
	Stats Stats `json:"stats"`
}

// WorkspaceDisk is the file system that holds /workspace.
type WorkspaceDisk struct {
	Path        string  `json:"path"`
	TotalBytes  int64   `json:"totalBytes"`
	UsedBytes   int64   `json:"usedBytes"`
	AvailBytes  int64   `json:"availBytes"`
	UsedPercent float64 `json:"usedPercent"`
}

// Process is one row of a space's process table.
type Process struct {
	PID     int     `json:"pid"`
	CPU     float64 `json:"cpu"`
	Mem     float64 `json:"mem"`
	Etime   string  `json:"etime"`
	Command string  `json:"command"`
}

// Observability is what goes on in a space; the optional parts are
// missing when the space's image lacks the tools for them, or the space
// is paused.
type Observability struct {
	Stats              Stats          `json:"stats"`
	WorkspaceDisk      *WorkspaceDisk `json:"workspaceDisk,omitempty"`
	WorkspaceSizeBytes *int64         `json:"workspaceSizeBytes,omitempty"`
	Top                []Process      `json:"top,omitempty"`
	BashHistoryTail    *string        `json:"bashHistoryTail,omitempty"`
}

// ObservabilityFrom is o as the contract shows it.
func ObservabilityFrom(o spaces.Observability) Observability {
	out := Observability{Stats: StatsFrom(o.Stats), WorkspaceSizeBytes: o.WorkspaceSizeBytes, BashHistoryTail: o.BashHistoryTail}
	if d := o.WorkspaceDisk; d != nil {
		out.WorkspaceDisk = &WorkspaceDisk{Path: d.Path, TotalBytes: d.TotalBytes, UsedBytes: d.UsedBytes, AvailBytes: d.AvailBytes, UsedPercent: d.UsedPercent}
	}
	if o.Top != nil {
		out.Top = make([]Process, 0, len(o.Top))
		for _, p := range o.Top {
			out.Top = append(out.Top, Process{PID: p.PID, CPU: p.CPU, Mem: p.Mem, Etime: p.Etime, Command: p.Command})
		}
	}
	return out
}

// ObservabilityAnswer is GET /api/spaces/NAME/observability.
type ObservabilityAnswer struct {
	Observability Observability `json:"observability"`
}
