package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/engine"
	"github.com/adam91holt/clawdspace/nodetest"
)

// BenchmarkIdleRSS50Spaces reports the memory a node costs with 50 idle
// spaces: the node's own resident memory, and what the spaces hold (their
// cgroups' memory less page cache, from the engine's stats), running and
// then paused. It builds every program of cmd/ (the node and what it
// mounts into spaces) and measures once per run.
func BenchmarkIdleRSS50Spaces(b *testing.B) {
	const spacesN = 50
	dir := b.TempDir()
	if out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/adam91holt/clawdspace/cmd/...").CombinedOutput(); err != nil {
		b.Fatalf("building: %v\n%s", err, out)
	}
	eng, err := engine.New(context.Background(), engine.Config{Namespace: "rss50"})
	if err != nil {
		b.Fatal(err)
	}
	raw := eng.Client()
	nodetest.EnsureImages(b, raw)

	cmd := exec.Command(filepath.Join(dir, "clawdspace"), "serve", "--namespace", "rss50")
	cmd.Env = append(os.Environ(), "CLAWDSPACE_DATA_DIR="+b.TempDir(), "PORT=0", "CLAWDSPACE_SSH_LISTEN=127.0.0.1:0", "API_KEY="+nodetest.Key)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	started := regexp.MustCompile(`Clawdspace node on (http://127\.0\.0\.1:\d+)`)
	sc := bufio.NewScanner(stderr)
	base := ""
	for base == "" && sc.Scan() {
		if m := started.FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		b.Fatal("the node never said where it listens")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+nodetest.Key)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		var out strings.Builder
		_, _ = bufio.NewReader(res.Body).WriteTo(&out)
		return res.StatusCode, out.String()
	}
	names := make([]string, spacesN)
	for i := range names {
		names[i] = fmt.Sprintf("idle%02d", i)
	}
	defer func() {
		for _, n := range names {
			call(http.MethodDelete, "/api/spaces/"+n+"?removeVolume=true", "")
		}
	}()
	// Two at a time: this is a measure of memory, not of create speed.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if code, body := call(http.MethodPost, "/api/spaces", `{"name":"`+n+`"}`); code != http.StatusOK && code != http.StatusCreated {
				b.Errorf("create %s: %d %s", n, code, body)
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	// One exec each, so whatever a space starts on first use is there.
	for _, n := range names {
		if code, body := call(http.MethodPost, "/api/spaces/"+n+"/exec", `{"command":"true"}`); code != http.StatusOK {
			b.Fatalf("exec in %s: %d %s", n, code, body)
		}
	}
	time.Sleep(10 * time.Second) // idle, on purpose
	b.ReportMetric(procKB(b, cmd.Process.Pid, "VmRSS")/1024, "MB-node-rss")
	b.ReportMetric(spacesMemory(b, raw, eng, names)/spacesN, "MB-per-running-space")
	for _, n := range names {
		if code, body := call(http.MethodPost, "/api/spaces/"+n+"/stop", ""); code != http.StatusOK {
			b.Fatalf("pause %s: %d %s", n, code, body)
		}
	}
	time.Sleep(5 * time.Second)
	b.ReportMetric(procKB(b, cmd.Process.Pid, "VmRSS")/1024, "MB-node-rss-paused")
}

// spacesMemory sums the memory the engine reports for the spaces (usage
// less inactive page cache, as docker stats shows it), in MB.
func spacesMemory(b *testing.B, raw *client.Client, eng *engine.Engine, names []string) float64 {
	total := 0.0
	for _, n := range names {
		res, err := raw.ContainerStats(context.Background(), eng.ContainerName(n), client.ContainerStatsOptions{})
		if err != nil {
			b.Fatalf("stats of %s: %v", n, err)
		}
		var s container.StatsResponse
		err = json.NewDecoder(res.Body).Decode(&s)
		res.Body.Close()
		if err != nil {
			b.Fatalf("stats of %s: %v", n, err)
		}
		used := float64(s.MemoryStats.Usage)
		if c, ok := s.MemoryStats.Stats["total_inactive_file"]; ok && float64(c) < used {
			used -= float64(c)
		} else if c, ok := s.MemoryStats.Stats["inactive_file"]; ok && float64(c) < used {
			used -= float64(c)
		}
		total += used
	}
	return total / (1 << 20)
}
