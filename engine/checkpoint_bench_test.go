package engine_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/engine"
	"github.com/adam91holt/clawdspace/spaces"
)

// benchWorkspaceBytes is the workspace the checkpoint benchmarks fill
// (CLAWDSPACE_BENCH_CKPT_MB, default 1024): half in 16 large files, half
// in 64 KiB files.
func benchWorkspaceBytes() int64 {
	if mb, err := strconv.Atoi(os.Getenv("CLAWDSPACE_BENCH_CKPT_MB")); err == nil && mb > 0 {
		return int64(mb) << 20
	}
	return 1 << 30
}

// ckptBench is a running space whose workspace holds benchWorkspaceBytes,
// written on the host into its volume.
type ckptBench struct {
	e    *engine.Engine
	name string
	dir  string // the workspace volume's folder on this host
}

func newCkptBench(b *testing.B) *ckptBench {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Fatal("needs root, as the node on the engine's host has")
	}
	ctx := context.Background()
	e, err := engine.New(ctx, engine.Config{Namespace: "ckbench"})
	if err != nil {
		b.Fatalf("no Docker engine: %v", err)
	}
	cb := &ckptBench{e: e, name: uniqueName("bench-ckpt")}
	b.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_ = e.Remove(cctx, cb.name, true)
		e.Close()
	})
	if _, err := e.Create(ctx, spaces.ContainerSpec{Name: cb.name, Image: sandboxImage(), MemoryBytes: 256 << 20, CPUs: 1,
		NetworkMode: spaces.NetworkNone, Template: "bench"}); err != nil {
		b.Fatalf("creating %s (run `make image`): %v", cb.name, err)
	}
	vol, err := e.Client().VolumeInspect(ctx, e.VolumeName(cb.name), client.VolumeInspectOptions{})
	if err != nil {
		b.Fatal(err)
	}
	cb.dir = vol.Volume.Mountpoint
	total := benchWorkspaceBytes()
	block := make([]byte, 64<<10)
	for i := range block {
		block[i] = byte(i*7 + i/251)
	}
	write := func(path string, size int64) {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		for n := int64(0); n < size; n += int64(len(block)) {
			block[0]++ // no two blocks alike
			if _, err := f.Write(block); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 16 {
		write(filepath.Join(cb.dir, fmt.Sprintf("big-%02d.bin", i)), total/2/16)
	}
	small := filepath.Join(cb.dir, "src")
	if err := os.Mkdir(small, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range int(total / 2 / int64(len(block))) {
		write(filepath.Join(small, fmt.Sprintf("f-%05d", i)), int64(len(block)))
	}
	if out, err := exec.Command("sync").CombinedOutput(); err != nil {
		b.Fatalf("sync: %v %s", err, out)
	}
	// A checkpoint copies again, while the space is frozen, what changed
	// in the second before its first copy (the filesystem's clock is
	// coarse): the data written just now would be copied twice.
	time.Sleep(1100 * time.Millisecond)
	return cb
}

// tarSeconds times `tar -c` of the workspace into a file on the same
// filesystem (not /dev/null, which GNU tar does not even read for).
func (cb *ckptBench) tarSeconds(b *testing.B) float64 {
	b.Helper()
	out := filepath.Join(filepath.Dir(filepath.Dir(cb.dir)), "bench.tar")
	defer os.Remove(out)
	start := time.Now()
	if msg, err := exec.Command("tar", "-cf", out, "-C", cb.dir, ".").CombinedOutput(); err != nil {
		b.Fatalf("tar: %v %s", err, msg)
	}
	if msg, err := exec.Command("sync", "-f", out).CombinedOutput(); err != nil {
		b.Fatalf("sync: %v %s", err, msg)
	}
	return time.Since(start).Seconds()
}

// BenchmarkCheckpoint1GiB takes a checkpoint of a running space with a
// 1 GiB workspace, against tar of the same data, and reports the time the
// space was frozen.
func BenchmarkCheckpoint1GiB(b *testing.B) {
	cb := newCkptBench(b)
	ctx := context.Background()
	var ckpt, tar, frozen float64
	for i := 0; b.Loop(); i++ {
		name := "b" + strconv.Itoa(i)
		start := time.Now()
		taken, err := cb.e.Checkpoint(ctx, cb.name, name)
		if err != nil {
			b.Fatal(err)
		}
		if msg, err := exec.Command("sync").CombinedOutput(); err != nil {
			b.Fatalf("sync: %v %s", err, msg)
		}
		ckpt += time.Since(start).Seconds()
		frozen += taken.Frozen.Seconds()
		b.StopTimer()
		if err := cb.e.DeleteCheckpoint(ctx, cb.name, name); err != nil {
			b.Fatal(err)
		}
		tar += cb.tarSeconds(b)
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(ckpt/n, "ckpt-s")
	b.ReportMetric(tar/n, "tar-s")
	b.ReportMetric(ckpt/tar, "x-tar")
	b.ReportMetric(frozen/n*1000, "frozen-ms")
}

// BenchmarkFork1GiB forks a space with a 1 GiB workspace from a
// checkpoint, against a cold create plus a copy of the same data into the
// new space's volume (cp -a on the host).
func BenchmarkFork1GiB(b *testing.B) {
	cb := newCkptBench(b)
	ctx := context.Background()
	if _, err := cb.e.Checkpoint(ctx, cb.name, "base"); err != nil {
		b.Fatal(err)
	}
	var fork, cold float64
	for i := 0; b.Loop(); i++ {
		dst, other := uniqueName("bench-fork"), uniqueName("bench-cold")
		start := time.Now()
		if _, err := cb.e.Fork(ctx, cb.name, "base", dst, nil); err != nil {
			b.Fatal(err)
		}
		fork += time.Since(start).Seconds()
		b.StopTimer()
		start = time.Now()
		if _, err := cb.e.Create(ctx, spaces.ContainerSpec{Name: other, Image: sandboxImage(), MemoryBytes: 256 << 20, CPUs: 1,
			NetworkMode: spaces.NetworkNone, Template: "bench"}); err != nil {
			b.Fatal(err)
		}
		vol, err := cb.e.Client().VolumeInspect(ctx, cb.e.VolumeName(other), client.VolumeInspectOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if msg, err := exec.Command("cp", "-a", cb.dir+"/.", vol.Volume.Mountpoint).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v %s", err, msg)
		}
		cold += time.Since(start).Seconds()
		for _, n := range []string{dst, other} {
			if err := cb.e.Remove(ctx, n, true); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(fork/n, "fork-s")
	b.ReportMetric(cold/n, "cold-s")
	b.ReportMetric(fork/cold, "x-cold")
}

// BenchmarkRestore1GiB restores a running space with a 1 GiB workspace to
// a checkpoint, against tar of the same data.
func BenchmarkRestore1GiB(b *testing.B) {
	cb := newCkptBench(b)
	ctx := context.Background()
	if _, err := cb.e.Checkpoint(ctx, cb.name, "base"); err != nil {
		b.Fatal(err)
	}
	var restore float64
	for b.Loop() {
		start := time.Now()
		if err := cb.e.Restore(ctx, cb.name, "base", spaces.StatusRunning); err != nil {
			b.Fatal(err)
		}
		restore += time.Since(start).Seconds()
	}
	b.StopTimer()
	vol, err := cb.e.Client().VolumeInspect(ctx, cb.e.VolumeName(cb.name), client.VolumeInspectOptions{})
	if err != nil {
		b.Fatal(err)
	}
	cb.dir = vol.Volume.Mountpoint
	tar := cb.tarSeconds(b)
	n := float64(b.N)
	b.ReportMetric(restore/n, "restore-s")
	b.ReportMetric(tar, "tar-s")
	b.ReportMetric(restore/n/tar, "x-tar")
}
