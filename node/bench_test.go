package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/engine"
	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// Each benchmark times the node's API and the raw Docker SDK doing the same
// work, interleaved in one run so both see the same machine, and reports
// their ratio as "x-raw" (1.00 = no overhead).

type pair struct {
	node, raw   time.Duration
	nodes, raws []time.Duration
}

// report gives the mean times and, as x-raw, the ratio of the medians: on a
// small shared machine a few slow outliers would otherwise decide it.
func (p *pair) report(b *testing.B) {
	b.Helper()
	n := float64(b.N)
	b.ReportMetric(float64(p.node.Microseconds())/n, "node-µs/op")
	b.ReportMetric(float64(p.raw.Microseconds())/n, "raw-µs/op")
	if mr := median(p.raws); mr > 0 {
		b.ReportMetric(float64(median(p.nodes))/float64(mr), "x-raw")
	}
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func timed(d *time.Duration, f func()) time.Duration {
	start := time.Now()
	f()
	el := time.Since(start)
	*d += el
	return el
}

// warmUp runs both sides a few times untimed: the first execs into a new
// container are slower, whichever side makes them.
func warmUp(fs ...func()) {
	for range 5 {
		for _, f := range fs {
			f()
		}
	}
}

// both times one node and one raw run, alternating which goes first so
// neither profits from the other having warmed something up.
func (p *pair) both(i int, node, raw func()) {
	if i%2 == 0 {
		p.nodes = append(p.nodes, timed(&p.node, node))
		p.raws = append(p.raws, timed(&p.raw, raw))
		return
	}
	p.raws = append(p.raws, timed(&p.raw, raw))
	p.nodes = append(p.nodes, timed(&p.node, node))
}

// post sends a body-less or JSON request as the CLI does and fails on a
// non-2xx answer; it is lean so the benchmark measures the node, not the client.
func post(b *testing.B, n *nodetest.Node, method, path, body string) {
	req, _ := http.NewRequest(method, n.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+nodetest.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.HTTP.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
}

func rawExec(b *testing.B, c *client.Client, container string, cmd ...string) {
	ctx := context.Background()
	cr, err := c.ExecCreate(ctx, container, client.ExecCreateOptions{AttachStdout: true, AttachStderr: true, Cmd: cmd})
	if err != nil {
		b.Fatal(err)
	}
	att, err := c.ExecAttach(ctx, cr.ID, client.ExecAttachOptions{})
	if err != nil {
		b.Fatal(err)
	}
	_, err = stdcopy.StdCopy(io.Discard, io.Discard, att.Reader)
	att.Close()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.ExecInspect(ctx, cr.ID, client.ExecInspectOptions{}); err != nil {
		b.Fatal(err)
	}
}

func benchSpace(b *testing.B, n *nodetest.Node, base string) string {
	b.Helper()
	name := nodetest.Name(b, n.Engine, base)
	if r := n.Do(b, "POST", "/api/spaces", map[string]any{"name": name, "memory": "256m"}); r.Status != http.StatusCreated {
		b.Fatalf("create: %d %s", r.Status, r.Body)
	}
	return name
}

// BenchmarkExecTrue: POST /exec of `true` vs a raw exec create+attach+inspect.
func BenchmarkExecTrue(b *testing.B) {
	n := nodetest.Start(b, nodetest.Options{})
	name := benchSpace(b, n, "bexec")
	raw := n.Raw()
	nodeRun := func() { post(b, n, "POST", "/api/spaces/"+name+"/exec", `{"command":["true"]}`) }
	rawRun := func() { rawExec(b, raw, "clawdspace-"+name, "true") }
	warmUp(nodeRun, rawRun)
	var p pair
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.both(i, nodeRun, rawRun)
	}
	p.report(b)
}

// BenchmarkPauseResume: POST /stop + /start vs raw pause + unpause.
func BenchmarkPauseResume(b *testing.B) {
	n := nodetest.Start(b, nodetest.Options{})
	name := benchSpace(b, n, "bpause")
	raw, ctx, cname := n.Raw(), context.Background(), "clawdspace-"+name
	var p pair
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.both(i, func() {
			post(b, n, "POST", "/api/spaces/"+name+"/stop", "")
			post(b, n, "POST", "/api/spaces/"+name+"/start", "")
		}, func() {
			if _, err := raw.ContainerPause(ctx, cname, client.ContainerPauseOptions{}); err != nil {
				b.Fatal(err)
			}
			if _, err := raw.ContainerUnpause(ctx, cname, client.ContainerUnpauseOptions{}); err != nil {
				b.Fatal(err)
			}
		})
	}
	p.report(b)
}

// BenchmarkCreate: POST /api/spaces until running vs a raw volume create,
// container create (same configuration) and start. Removal is not timed.
func BenchmarkCreate(b *testing.B) {
	n := nodetest.Start(b, nodetest.Options{})
	raw, ctx := n.Raw(), context.Background()
	var p pair
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := nodetest.Name(b, n.Engine, fmt.Sprintf("bcreate%d", i))
		p.nodes = append(p.nodes, timed(&p.node, func() { post(b, n, "POST", "/api/spaces", `{"name":"`+name+`"}`) }))
		b.StopTimer()
		if err := n.Engine.Remove(ctx, name, true); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		spec := spaces.ContainerSpec{Name: name, Image: nodetest.TestImage, MemoryBytes: 2 << 30, CPUs: 1,
			NetworkMode: spaces.NetworkInternet, Template: "default"}
		cfg, hostCfg := engine.ContainerConfig(spec)
		p.raws = append(p.raws, timed(&p.raw, func() {
			if _, err := raw.VolumeCreate(ctx, client.VolumeCreateOptions{Name: spaces.VolumePrefix + name}); err != nil {
				b.Fatal(err)
			}
			cr, err := raw.ContainerCreate(ctx, client.ContainerCreateOptions{Name: spaces.ContainerPrefix + name, Config: cfg, HostConfig: hostCfg})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := raw.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
				b.Fatal(err)
			}
		}))
		b.StopTimer()
		if err := n.Engine.Remove(ctx, name, true); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	p.report(b)
}

// BenchmarkList20: GET /api/spaces with 20 spaces vs one raw filtered list.
func BenchmarkList20(b *testing.B) {
	n := nodetest.Start(b, nodetest.Options{})
	for i := 0; i < 20; i++ {
		benchSpace(b, n, fmt.Sprintf("blist%d", i))
	}
	raw, ctx := n.Raw(), context.Background()
	var p pair
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.both(i, func() { post(b, n, "GET", "/api/spaces", "") }, func() {
			if _, err := raw.ContainerList(ctx, client.ContainerListOptions{All: true,
				Filters: make(client.Filters).Add("label", spaces.LabelKind+"="+spaces.LabelKindSpace)}); err != nil {
				b.Fatal(err)
			}
		})
	}
	p.report(b)
}

// BenchmarkCreateFromPool: POST /api/spaces until running with a warm
// pool of the default template vs the raw volume create, container create
// and start of BenchmarkCreate. The refill is not timed: each iteration
// waits, with the timer stopped, until the pool is full again.
func BenchmarkCreateFromPool(b *testing.B) {
	n := nodetest.Start(b, nodetest.Options{Namespace: "bpool", WarmPool: map[string]int{spaces.DefaultTemplate: 1}})
	raw, ctx := n.Raw(), context.Background()
	var p pair
	poolFull := func() {
		for {
			st, err := n.Service.PoolStatus(ctx, spaces.CallerAPIKey())
			if err == nil && len(st) == 1 && st[0].Ready == st[0].Size {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		poolFull()
		name := nodetest.Name(b, n.Engine, fmt.Sprintf("bpool%d", i))
		b.StartTimer()
		p.nodes = append(p.nodes, timed(&p.node, func() { post(b, n, "POST", "/api/spaces", `{"name":"`+name+`"}`) }))
		b.StopTimer()
		if err := n.Engine.Remove(ctx, name, true); err != nil {
			b.Fatal(err)
		}
		rname := nodetest.Name(b, n.Engine, fmt.Sprintf("bpoolraw%d", i))
		spec := spaces.ContainerSpec{Name: rname, Image: nodetest.TestImage, MemoryBytes: 2 << 30, CPUs: 1,
			NetworkMode: spaces.NetworkInternet, Template: "default"}
		cfg, hostCfg := engine.ContainerConfig(spec)
		b.StartTimer()
		p.raws = append(p.raws, timed(&p.raw, func() {
			if _, err := raw.VolumeCreate(ctx, client.VolumeCreateOptions{Name: spaces.VolumePrefix + rname}); err != nil {
				b.Fatal(err)
			}
			cr, err := raw.ContainerCreate(ctx, client.ContainerCreateOptions{Name: spaces.ContainerPrefix + rname, Config: cfg, HostConfig: hostCfg})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := raw.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
				b.Fatal(err)
			}
		}))
		b.StopTimer()
		if _, err := raw.ContainerRemove(ctx, spaces.ContainerPrefix+rname, client.ContainerRemoveOptions{Force: true}); err != nil {
			b.Fatal(err)
		}
		if _, err := raw.VolumeRemove(ctx, spaces.VolumePrefix+rname, client.VolumeRemoveOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	p.report(b)
}
