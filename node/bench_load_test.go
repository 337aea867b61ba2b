package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
)

// BenchmarkExecLoad200: 200 execs of `true` at once over 5 spaces, through
// the node and through the raw SDK (create, attach, inspect), one wave
// after the other in each iteration (alternating which goes first). It
// reports each side's p50 and p95 latency and their ratios: the node must
// not serialise more than the engine does.
func BenchmarkExecLoad200(b *testing.B) {
	const execs, spacesN = 200, 5
	// A namespace of its own: other tests' auto-sleep pauses idle spaces
	// of the default namespace.
	n := nodetest.Start(b, nodetest.Options{Namespace: "bload"})
	names := make([]string, spacesN)
	for i := range names {
		names[i] = benchSpace(b, n, fmt.Sprintf("bload%d", i))
	}
	raw := n.Raw()
	hc := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: execs}}
	nodeRun := func(i int) error {
		req, _ := http.NewRequest(http.MethodPost, n.URL+"/api/spaces/"+names[i%spacesN]+"/exec", strings.NewReader(`{"command":["true"]}`))
		req.Header.Set("Authorization", "Bearer "+nodetest.Key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("node exec: status %d", resp.StatusCode)
		}
		return nil
	}
	rawRun := func(i int) error {
		return rawExecErr(raw, n.Engine.ContainerName(names[i%spacesN]), "true")
	}
	warmUp(func() { _ = nodeRun(0) }, func() { _ = rawRun(0) })

	var nodeLat, rawLat []time.Duration
	var nodeWall, rawWall time.Duration
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		waves := []func(){
			func() { l, w := loadWave(b, execs, nodeRun); nodeLat, nodeWall = append(nodeLat, l...), nodeWall+w },
			func() { l, w := loadWave(b, execs, rawRun); rawLat, rawWall = append(rawLat, l...), rawWall+w },
		}
		if it%2 == 1 {
			waves[0], waves[1] = waves[1], waves[0]
		}
		for _, w := range waves {
			w()
		}
	}
	b.StopTimer()
	np50, np95 := percentile(nodeLat, 50), percentile(nodeLat, 95)
	rp50, rp95 := percentile(rawLat, 50), percentile(rawLat, 95)
	b.ReportMetric(float64(np50.Milliseconds()), "node-p50-ms")
	b.ReportMetric(float64(np95.Milliseconds()), "node-p95-ms")
	b.ReportMetric(float64(rp50.Milliseconds()), "raw-p50-ms")
	b.ReportMetric(float64(rp95.Milliseconds()), "raw-p95-ms")
	if rp50 > 0 && rp95 > 0 && rawWall > 0 {
		b.ReportMetric(float64(np50)/float64(rp50), "x-raw-p50")
		b.ReportMetric(float64(np95)/float64(rp95), "x-raw-p95")
		b.ReportMetric(float64(nodeWall)/float64(rawWall), "x-raw-wall")
	}
}

// loadWave starts n runs at once and returns each one's latency and the
// wave's wall time; a failed run fails the benchmark.
func loadWave(b *testing.B, n int, run func(i int) error) ([]time.Duration, time.Duration) {
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			errs[i] = run(i)
			lat[i] = time.Since(t0)
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	wall := time.Since(t0)
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return lat, wall
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}

// rawExecErr is rawExec that returns its error, for use off the
// benchmark's goroutine.
func rawExecErr(c *client.Client, container string, cmd ...string) error {
	ctx := context.Background()
	cr, err := c.ExecCreate(ctx, container, client.ExecCreateOptions{AttachStdout: true, AttachStderr: true, Cmd: cmd})
	if err != nil {
		return err
	}
	att, err := c.ExecAttach(ctx, cr.ID, client.ExecAttachOptions{})
	if err != nil {
		return err
	}
	_, err = stdcopy.StdCopy(io.Discard, io.Discard, att.Reader)
	att.Close()
	if err != nil {
		return err
	}
	_, err = c.ExecInspect(ctx, cr.ID, client.ExecInspectOptions{})
	return err
}
