package node_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/tailnet"
)

// benchPortBytes is what each throughput iteration carries each way
// (CLAWDSPACE_BENCH_PORT_BYTES, default 1 GiB).
func benchPortBytes(b *testing.B) int64 {
	if v := os.Getenv("CLAWDSPACE_BENCH_PORT_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("CLAWDSPACE_BENCH_PORT_BYTES=%q", v)
		}
		return n
	}
	return 1 << 30
}

// BenchmarkPortThroughput reads benchPortBytes from a server in a space
// through the API tunnel (WebSocket on the node's local listener), through
// its plain form (Upgrade: clawdspace-tcp, spliced by the node) and
// through a forward on the node's tailnet address (a tsnet device of a
// person with the ports grant), each against a direct TCP connection from
// the host to the container in the same iteration. tunnel-x-direct and
// tailnet-x-direct are the throughput ratios (medians; 1.00 = as fast as
// direct).
func BenchmarkPortThroughput(b *testing.B) {
	ctl := nodetest.StartControl(b)
	n := nodetest.Start(b, nodetest.Options{Tailnet: ctl, Hostname: "bench-ports", Namespace: "pb"})
	dev := ctl.Join(b, "bench-laptop")
	nodetest.WaitForPeers(b, n.TS, dev)
	ctl.Grant(b, dev, []*tailnet.Node{n.TS}, spaces.Grant{Role: "operator"})
	name := benchPortSpace(b, n)
	fwd := n.Do(b, "POST", "/api/spaces/"+name+"/ports", map[string]any{"port": nodetest.PortSource})
	if fwd.Status != http.StatusCreated {
		b.Fatalf("forwarding: %d %s", fwd.Status, fwd.Body)
	}
	var fa api.ForwardAnswer
	fwd.JSON(b, &fa)
	nodetest.WaitUntil(b, "the forward to be served", func() bool {
		var ps api.Ports
		n.Do(b, "GET", "/api/spaces/"+name+"/ports", nil).JSON(b, &ps)
		return len(ps.Forwards) == 1 && ps.Forwards[0].State == api.ForwardServing
	})
	direct := containerAddr(b, n, name, nodetest.PortSource)
	size := benchPortBytes(b)
	buf := make([]byte, 256<<10)
	ctx := b.Context()

	viaDirect := func() {
		c, err := net.Dial("tcp", direct)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if err := sourceRead(c, size, buf); err != nil {
			b.Fatalf("direct: %v", err)
		}
	}
	viaTunnel := func() {
		t, _, err := dialTunnel(b, n.HTTP, n.URL, name, nodetest.PortSource)
		if err != nil {
			b.Fatal(err)
		}
		defer t.Close()
		if err := sourceRead(t, size, buf); err != nil {
			b.Fatalf("tunnel: %v", err)
		}
	}
	viaPlain := func() {
		c, res := dialPlain(b, n.URL, name, nodetest.PortSource)
		if res.StatusCode != http.StatusSwitchingProtocols {
			b.Fatalf("plain tunnel: %d", res.StatusCode)
		}
		defer c.Close()
		if err := sourceRead(c, size, buf); err != nil {
			b.Fatalf("plain tunnel: %v", err)
		}
	}
	viaTailnet := func() {
		c, err := dev.Dial(ctx, "tcp", net.JoinHostPort(n.TS.Addr(), strconv.Itoa(int(fa.Forward.NodePort))))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if err := sourceRead(c, size, buf); err != nil {
			b.Fatalf("tailnet: %v", err)
		}
	}
	viaDirect()
	viaTunnel()
	viaPlain()
	viaTailnet()

	var d, tu, pl, ta []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		runs := []func(){
			func() { d = append(d, since(viaDirect)) },
			func() { tu = append(tu, since(viaTunnel)) },
			func() { pl = append(pl, since(viaPlain)) },
			func() { ta = append(ta, since(viaTailnet)) },
		}
		for k := range runs {
			runs[(i+k)%len(runs)]()
		}
	}
	b.StopTimer()
	mbps := func(ds []time.Duration) float64 { return float64(size) / 1e6 / median(ds).Seconds() }
	b.ReportMetric(mbps(d), "direct-MB/s")
	b.ReportMetric(mbps(tu), "tunnel-MB/s")
	b.ReportMetric(mbps(ta), "tailnet-MB/s")
	b.ReportMetric(mbps(tu)/mbps(d), "tunnel-x-direct")
	b.ReportMetric(mbps(pl), "plain-MB/s")
	b.ReportMetric(mbps(pl)/mbps(d), "plain-x-direct")
	b.ReportMetric(mbps(ta)/mbps(d), "tailnet-x-direct")
}

// since times f.
func since(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// benchPortSpace makes a space running the port test servers.
func benchPortSpace(b *testing.B, n *nodetest.Node) string {
	b.Helper()
	name := nodetest.Name(b, n.Engine, "bports")
	r := n.Do(b, "POST", "/api/spaces", map[string]any{"name": name, "memory": "512m", "image": sandboxImage()})
	if r.Status != http.StatusCreated {
		b.Fatalf("creating %s: %d %s", name, r.Status, r.Body)
	}
	nodetest.ServePorts(b, n, name)
	return name
}

// BenchmarkPortLatency times a small request and its answer (64 bytes to
// an echo server and back) through the API tunnel and directly, on an
// open connection (round-µs) and on a new one (connect-µs: the tunnel's
// WebSocket handshake, identity, the Service's check and the dial into
// the space), and reports the medians and what the tunnel adds.
func BenchmarkPortLatency(b *testing.B) {
	n := nodetest.Start(b, nodetest.Options{})
	name := benchPortSpace(b, n)
	direct := containerAddr(b, n, name, nodetest.PortEcho)
	msg := []byte(strings.Repeat("x", 64))
	got := make([]byte, len(msg))
	round := func(c io.ReadWriter) {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			b.Fatal(err)
		}
	}
	dc, err := net.Dial("tcp", direct)
	if err != nil {
		b.Fatal(err)
	}
	defer dc.Close()
	tc, _, err := dialTunnel(b, n.HTTP, n.URL, name, nodetest.PortEcho)
	if err != nil {
		b.Fatal(err)
	}
	defer tc.Close()
	warmUp(func() { round(dc) }, func() { round(tc) })

	var open, fresh pair
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		open.both(i, func() { round(tc) }, func() { round(dc) })
		fresh.both(i, func() {
			t, _, err := dialTunnel(b, n.HTTP, n.URL, name, nodetest.PortEcho)
			if err != nil {
				b.Fatal(err)
			}
			round(t)
			t.Close()
		}, func() {
			c, err := net.Dial("tcp", direct)
			if err != nil {
				b.Fatal(err)
			}
			round(c)
			c.Close()
		})
	}
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	b.ReportMetric(us(median(open.raws)), "direct-round-µs")
	b.ReportMetric(us(median(open.nodes)), "tunnel-round-µs")
	b.ReportMetric(us(median(open.nodes)-median(open.raws)), "added-round-µs")
	b.ReportMetric(us(median(fresh.raws)), "direct-connect-µs")
	b.ReportMetric(us(median(fresh.nodes)), "tunnel-connect-µs")
	b.ReportMetric(us(median(fresh.nodes)-median(fresh.raws)), "added-connect-µs")
}

// BenchmarkPortTunnelMemory measures a node running as its own process
// (the real binary) with 20 open tunnels, each with a live connection to
// an echo server in a space that has carried 1 MiB each way: its resident
// memory (VmRSS) before and with them, and per tunnel.
func BenchmarkPortTunnelMemory(b *testing.B) {
	const tunnels = 20
	n := nodetest.StartChildNode(b, nodetest.ChildConfig{})
	name := nodetest.Name(b, n.Engine, "bmem")
	if r := n.Do(b, "POST", "/api/spaces", map[string]any{"name": name, "memory": "256m", "image": sandboxImage()}); r.Status != http.StatusCreated {
		b.Fatalf("creating %s: %d %s", name, r.Status, r.Body)
	}
	nodetest.ServePorts(b, n, name)
	// Each tunnel carries 1 MiB each way first, so the buffers a
	// connection uses are in the figure, not only its bookkeeping.
	msg := make([]byte, 1<<20)
	// Idle is read once, before any tunnel: the Go runtime keeps what it
	// took for later tunnels rather than giving it back at once.
	idle, open := rssMB(b, n.Pid()), 0.0
	for b.Loop() {
		var ts []*api.Tunnel
		for range tunnels {
			t, _, err := dialTunnel(b, n.HTTP, n.URL, name, nodetest.PortEcho)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := t.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(t, make([]byte, len(msg))); err != nil {
				b.Fatal(err)
			}
			ts = append(ts, t)
		}
		open = max(open, rssMB(b, n.Pid()))
		for _, t := range ts {
			t.Close()
		}
	}
	b.ReportMetric(idle, "rss-MB-idle")
	b.ReportMetric(open, "rss-MB-20-tunnels")
	b.ReportMetric((open-idle)*1024/tunnels, "rss-KB/tunnel")
}

// rssMB reads a process's resident memory.
func rssMB(b *testing.B, pid int) float64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("no VmRSS for %d", pid)
	return 0
}
