// Package host reads facts about the machine a node runs on: CPUs, load,
// memory, disk, uptime and GPUs. It reads /proc and statfs directly and asks
// nvidia-smi, when present, about GPUs.
package host

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

// Config configures a Host.
type Config struct {
	// DiskPath is the folder whose filesystem the disk figures describe.
	DiskPath string
	// ProcDir is /proc unless a test points it elsewhere.
	ProcDir string
	// NvidiaSMI is the nvidia-smi command; empty looks it up on PATH.
	NvidiaSMI string
}

// Host answers questions about the machine.
type Host struct {
	cfg Config
	gpu spaces.MachineGPU
}

// New probes the GPUs once; everything else is read on each Snapshot.
func New(ctx context.Context, cfg Config) *Host {
	if cfg.ProcDir == "" {
		cfg.ProcDir = "/proc"
	}
	h := &Host{cfg: cfg}
	h.gpu = detectGPU(ctx, cfg.NvidiaSMI)
	return h
}

// GPU returns what was detected at start-up.
func (h *Host) GPU() spaces.MachineGPU { return h.gpu }

// Snapshot reads the machine's state now.
func (h *Host) Snapshot() spaces.MachineSnapshot {
	s := spaces.MachineSnapshot{Platform: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU()}
	s.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile(h.cfg.ProcDir + "/loadavg"); err == nil {
		s.Load = parseLoadavg(b)
	}
	if b, err := os.ReadFile(h.cfg.ProcDir + "/meminfo"); err == nil {
		s.MemTotal, s.MemFree = parseMeminfo(b)
	}
	if b, err := os.ReadFile(h.cfg.ProcDir + "/uptime"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			s.UptimeSec, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	if h.cfg.DiskPath != "" {
		var st syscall.Statfs_t
		if err := syscall.Statfs(h.cfg.DiskPath, &st); err == nil {
			bs := uint64(st.Bsize)
			total, free, avail := st.Blocks*bs, st.Bfree*bs, st.Bavail*bs
			s.Disk = &spaces.MachineDisk{Total: total, Used: total - free, Available: avail}
		}
	}
	return s
}

func parseLoadavg(b []byte) [3]float64 {
	var out [3]float64
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		out[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return out
}

// parseMeminfo returns MemTotal and MemAvailable in bytes.
func parseMeminfo(b []byte) (total, avail uint64) {
	var free uint64
	haveAvail := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		v *= 1024 // kB
		switch f[0] {
		case "MemTotal:":
			total = v
		case "MemAvailable:":
			avail, haveAvail = v, true
		case "MemFree:":
			free = v
		}
	}
	if !haveAvail {
		avail = free
	}
	return total, avail
}

// detectGPU asks nvidia-smi for the GPUs. No nvidia-smi, or one that fails,
// means no GPU.
func detectGPU(ctx context.Context, smi string) spaces.MachineGPU {
	if smi == "" {
		p, err := exec.LookPath("nvidia-smi")
		if err != nil {
			return spaces.MachineGPU{}
		}
		smi = p
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, smi, "--query-gpu=name,memory.total", "--format=csv,noheader").Output()
	if err != nil {
		return spaces.MachineGPU{}
	}
	return parseNvidiaSMI(out)
}

func parseNvidiaSMI(out []byte) spaces.MachineGPU {
	var g spaces.MachineGPU
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.Split(line, ",")
		if len(parts) < 2 || strings.TrimSpace(parts[0]) == "" {
			continue
		}
		g.Count++
		if !g.Present {
			g.Present = true
			g.Name = strings.TrimSpace(parts[0])
			g.Memory = strings.TrimSpace(parts[1])
		}
	}
	return g
}
