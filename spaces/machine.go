package spaces

// MachineGPU describes the node's GPUs as the machine reports them.
type MachineGPU struct {
	Present bool
	Name    string // e.g. "NVIDIA H100 80GB HBM3"
	Memory  string // e.g. "81559 MiB"
	Count   int
}

// MachineSnapshot is one reading of the node machine's state.
type MachineSnapshot struct {
	Hostname  string
	Platform  string
	Arch      string
	CPUs      int
	Load      [3]float64
	MemTotal  uint64
	MemFree   uint64 // available to new work, as MemAvailable
	Disk      *MachineDisk
	UptimeSec float64
}

// MachineDisk is the usage of one filesystem.
type MachineDisk struct {
	Total, Used, Available uint64
}
