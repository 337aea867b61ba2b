package engine_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/engine"
	"github.com/adam91holt/clawdspace/spaces"
)

// benchSpace starts a space with the discarding server on port 8001 of
// all addresses, and returns the engine, the space and that server's
// address on the space's network.
func benchSpace(b *testing.B) (*engine.Engine, string, string) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Fatal("needs root, as the node on the engine's host has")
	}
	ctx := context.Background()
	e, err := engine.New(ctx, engine.Config{Egress: engine.EgressSupported() == nil, AllowUnenforcedEgress: true})
	if err != nil {
		b.Fatalf("no Docker engine: %v", err)
	}
	name := uniqueName("bench-ports")
	b.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = e.Client().ContainerRemove(cctx, e.ContainerName(name), client.ContainerRemoveOptions{Force: true})
		_, _ = e.Client().VolumeRemove(cctx, e.VolumeName(name), client.VolumeRemoveOptions{Force: true})
		e.Close()
	})
	if _, err := e.Create(ctx, spaces.ContainerSpec{Name: name, Image: sandboxImage(), MemoryBytes: 256 << 20, CPUs: 1,
		NetworkMode: spaces.NetworkInternet, Template: "bench"}); err != nil {
		b.Fatalf("creating %s (run `make image`): %v", name, err)
	}
	sctx, stop := context.WithCancel(ctx)
	ready := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pr, pw := io.Pipe()
		go func() {
			buf := make([]byte, 6)
			_, _ = io.ReadFull(pr, buf)
			ready <- string(buf)
			_, _ = io.Copy(io.Discard, pr)
		}()
		_, err := e.Exec(sctx, name, spaces.ExecSpec{Cmd: []string{"python3", "-c", serverPy, "0.0.0.0", "8001", "discard"}, Stdout: pw})
		pw.CloseWithError(fmt.Errorf("server ended: %v", err))
	}()
	b.Cleanup(func() { stop(); <-done })
	if got := <-ready; got != "ready\n" {
		b.Fatalf("server: %q", got)
	}
	res, err := e.Client().ContainerInspect(ctx, e.ContainerName(name), client.ContainerInspectOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var addr netip.Addr
	for _, nw := range res.Container.NetworkSettings.Networks {
		addr = nw.IPAddress
	}
	return e, name, netip.AddrPortFrom(addr, 8001).String()
}

// sendCounted sends size bytes on c (in chunks of up to 1 MiB),
// half-closes, and checks the server's count.
func sendCounted(b *testing.B, c net.Conn, err error, size int) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	chunk := make([]byte, min(size, 1<<20))
	for sent := 0; sent < size; sent += len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	_ = c.(interface{ CloseWrite() error }).CloseWrite()
	got, err := io.ReadAll(c)
	if n, _ := strconv.Atoi(strings.TrimSpace(string(got))); n != size || err != nil {
		b.Fatalf("server counted %q, %v", got, err)
	}
}

// compare times port and direct, interleaved (alternating which goes
// first), and reports the means and, as x-direct, the ratio of the
// medians (1.00 = DialPort costs nothing over a direct connection).
func compare(b *testing.B, port, direct func()) (tp, td time.Duration) {
	b.Helper()
	port()
	direct()
	var tps, tds []time.Duration
	timed := func(total *time.Duration, all *[]time.Duration, f func()) {
		start := time.Now()
		f()
		d := time.Since(start)
		*total += d
		*all = append(*all, d)
	}
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			timed(&tp, &tps, port)
			timed(&td, &tds, direct)
		} else {
			timed(&td, &tds, direct)
			timed(&tp, &tps, port)
		}
	}
	n := time.Duration(len(tps))
	tp, td = tp/n, td/n
	b.ReportMetric(float64(tp.Microseconds()), "dialport-µs/op")
	b.ReportMetric(float64(td.Microseconds()), "direct-µs/op")
	slices.Sort(tps)
	slices.Sort(tds)
	if m := tds[len(tds)/2]; m > 0 {
		b.ReportMetric(float64(tps[len(tps)/2])/float64(m), "x-direct")
	}
	return tp, td
}

// BenchmarkDialPort64MiB sends 64 MiB to a server in a space that counts
// them, through DialPort (a dial from inside the space's namespace, over
// its loopback) and through a plain dial of the space's address from the
// host (over its network), and reports each side's MiB/s too.
func BenchmarkDialPort64MiB(b *testing.B) {
	e, name, direct := benchSpace(b)
	const size = 64 << 20
	tp, td := compare(b,
		func() { c, err := e.DialPort(context.Background(), name, 8001); sendCounted(b, c, err, size) },
		func() { c, err := net.Dial("tcp", direct); sendCounted(b, c, err, size) })
	b.ReportMetric(size/(1<<20)/tp.Seconds(), "dialport-MiB/s")
	b.ReportMetric(size/(1<<20)/td.Seconds(), "direct-MiB/s")
}

// BenchmarkDialPortConnect is the hot path of a forwarded port: one
// connection per request, here a dial and one byte there and back.
func BenchmarkDialPortConnect(b *testing.B) {
	e, name, direct := benchSpace(b)
	compare(b,
		func() { c, err := e.DialPort(context.Background(), name, 8001); sendCounted(b, c, err, 1) },
		func() { c, err := net.Dial("tcp", direct); sendCounted(b, c, err, 1) })
}
