package host

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/adam91holt/clawdspace/spaces"
)

func TestParseNvidiaSMI(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want spaces.MachineGPU
	}{
		{"none", "", spaces.MachineGPU{}},
		{"one", "NVIDIA H100 80GB HBM3, 81559 MiB\n", spaces.MachineGPU{Present: true, Name: "NVIDIA H100 80GB HBM3", Memory: "81559 MiB", Count: 1}},
		{"two", "NVIDIA A10G, 23028 MiB\nNVIDIA A10G, 23028 MiB\n", spaces.MachineGPU{Present: true, Name: "NVIDIA A10G", Memory: "23028 MiB", Count: 2}},
		{"garbage", "No devices were found\n", spaces.MachineGPU{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseNvidiaSMI([]byte(tt.in)); got != tt.want {
				t.Errorf("parseNvidiaSMI() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestDetectGPUCommand runs a stand-in nvidia-smi, as the real one is only
// on GPU machines; the GPU check on real hardware is in docs/SETUP.md.
func TestDetectGPUCommand(t *testing.T) {
	dir := t.TempDir()
	smi := filepath.Join(dir, "nvidia-smi")
	script := "#!/bin/sh\n[ \"$1\" = --query-gpu=name,memory.total ] || exit 3\necho 'NVIDIA H200, 143771 MiB'\n"
	if err := os.WriteFile(smi, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	g := New(context.Background(), Config{NvidiaSMI: smi}).GPU()
	if !g.Present || g.Name != "NVIDIA H200" || g.Memory != "143771 MiB" {
		t.Fatalf("GPU() = %+v", g)
	}
	failing := filepath.Join(dir, "failing")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\nexit 9\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if g := New(context.Background(), Config{NvidiaSMI: failing}).GPU(); g.Present {
		t.Fatalf("failing nvidia-smi gave %+v", g)
	}
}

func TestSnapshotFromProc(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("loadavg", "0.50 1.25 2.00 1/123 4567\n")
	write("meminfo", "MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\n")
	write("uptime", "12345.67 24000.00\n")
	s := New(context.Background(), Config{ProcDir: dir, DiskPath: dir, NvidiaSMI: "/nonexistent"}).Snapshot()
	if s.Load != [3]float64{0.5, 1.25, 2} {
		t.Errorf("Load = %v", s.Load)
	}
	if s.MemTotal != 24000000*1024 || s.MemFree != 20000000*1024 {
		t.Errorf("memory = %d / %d", s.MemTotal, s.MemFree)
	}
	if s.UptimeSec != 12345.67 {
		t.Errorf("uptime = %v", s.UptimeSec)
	}
	if s.Disk == nil || s.Disk.Total == 0 || s.Disk.Used > s.Disk.Total {
		t.Errorf("disk = %+v", s.Disk)
	}
}
