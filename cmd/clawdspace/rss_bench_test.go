package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/nodetest"
)

// BenchmarkIdleRSS reports the resident memory of a built node, idle for
// ten seconds after start, in local mode and with tsnet up. It measures
// once per run: memory does not depend on b.N.
func BenchmarkIdleRSS(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "clawdspace")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("building: %v\n%s", err, out)
	}
	run := func(b *testing.B, env []string, ready string) {
		cmd := exec.Command(bin, "serve", "--hostname", "rss-node", "--namespace", "rss")
		cmd.Env = append(os.Environ(), append(env, "CLAWDSPACE_DATA_DIR="+b.TempDir(), "PORT=0", "CLAWDSPACE_SSH_LISTEN=127.0.0.1:0", "API_KEY="+nodetest.Key)...)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
		sc := bufio.NewScanner(stderr)
		up := false
		for !up && sc.Scan() {
			up = strings.Contains(sc.Text(), ready)
		}
		if !up {
			b.Fatalf("node never printed %q", ready)
		}
		go func() {
			for sc.Scan() {
			}
		}()
		time.Sleep(10 * time.Second) // idle, on purpose
		b.ReportMetric(procKB(b, cmd.Process.Pid, "VmRSS")/1024, "MB-rss")
		b.ReportMetric(procKB(b, cmd.Process.Pid, "VmHWM")/1024, "MB-peak")
	}
	b.Run("local", func(b *testing.B) { run(b, nil, "Clawdspace node on") })
	b.Run("tailnet", func(b *testing.B) {
		ctl := nodetest.StartControlAnyKey(b)
		run(b, []string{"TS_AUTHKEY=" + ctl.AuthKey, "TS_CONTROL_URL=" + ctl.URL}, "On the tailnet as")
	})
}

// procKB reads a memory line of /proc/PID/status, in KiB.
func procKB(b *testing.B, pid int, field string) float64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.Fields(v)[0], 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
