package nodetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/engine"
)

// buildOnce builds cmd/clawdspace once per test binary.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

// BuildNode builds cmd/clawdspace once per test binary and returns the path
// of the binary. It lies in a folder of the system's temporary folder named
// after this process; folders left by test binaries that are gone are
// removed on the way.
func BuildNode(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		root := filepath.Join(os.TempDir(), "clawdspace-nodetest")
		if err := os.MkdirAll(root, 0o755); err != nil {
			buildOnce.err = err
			return
		}
		removeStaleBuilds(root)
		dir := filepath.Join(root, strconv.Itoa(os.Getpid()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildOnce.err = err
			return
		}
		bin := filepath.Join(dir, "clawdspace")
		cmd := exec.Command("go", "build", "-o", bin, "github.com/adam91holt/clawdspace/cmd/clawdspace")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildOnce.err = fmt.Errorf("go build ./cmd/clawdspace: %v\n%s", err, out)
			return
		}
		buildOnce.path = bin
	})
	if buildOnce.err != nil {
		tb.Fatalf("building the node: %v", buildOnce.err)
	}
	return buildOnce.path
}

// removeStaleBuilds removes the build folders of test processes that ended.
func removeStaleBuilds(root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
}

// ChildConfig says how StartChildNode runs `clawdspace serve`.
type ChildConfig struct {
	// DataDir is the node's data folder (database, spool); a new temporary
	// folder when empty. Restarts keep it.
	DataDir string
	// Namespace prefixes the node's containers and volumes (--namespace);
	// a new random one when empty, since start-up recovery acts on every
	// space of the namespace and other tests share the engine.
	Namespace string
	// Args are extra `serve` flags, e.g. "--idle-timeout", "1s".
	Args []string
	// Env are extra environment entries (KEY=VALUE).
	Env []string
}

// ChildNode is a node running as a child process, so a test can kill it
// with SIGKILL and start it again on the same data folder.
type ChildNode struct {
	// URL is the node's address; it stays the same across restarts.
	URL     string
	DataDir string
	HTTP    *http.Client
	// Engine talks to the same engine and namespace as the node, for
	// assertions and clean-up.
	Engine *engine.Engine

	tb   testing.TB
	bin  string
	cfg  ChildConfig
	addr string
	log  *syncLog
	runs int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartChildNode starts `clawdspace serve` as a child process on a free
// loopback port with the test key, the test image and the given data
// folder, waits until it answers /api/health, and kills it when the test
// ends. Auto-sleep and history ingest are off unless Args turn them on.
// The node's output is shown when the test fails (always with
// CLAWDSPACE_TEST_LOG set).
func StartChildNode(tb testing.TB, cfg ChildConfig) *ChildNode {
	tb.Helper()
	if cfg.Namespace == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		cfg.Namespace = "c" + hex.EncodeToString(b)
	}
	if err := engine.ValidateNamespace(cfg.Namespace); err != nil {
		tb.Fatal(err)
	}
	bin := BuildNode(tb)
	if cfg.DataDir == "" {
		cfg.DataDir = tb.TempDir()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("finding a free port: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	n := &ChildNode{
		URL: "http://" + addr, DataDir: cfg.DataDir, HTTP: &http.Client{Timeout: 2 * time.Minute},
		Engine: newEngine(tb, engine.EgressSupported() == nil, cfg.Namespace),
		tb:     tb, bin: bin, cfg: cfg, addr: addr, log: &syncLog{},
	}
	tb.Cleanup(func() {
		n.Kill()
		if tb.Failed() || os.Getenv("CLAWDSPACE_TEST_LOG") != "" {
			tb.Logf("child node output:\n%s", n.log.String())
		}
	})
	n.start()
	return n
}

func (n *ChildNode) start() {
	n.tb.Helper()
	n.runs++
	fmt.Fprintf(n.log, "--- start %d ---\n", n.runs)
	args := append([]string{"serve",
		"--listen", n.addr, "--api-key", Key, "--data-dir", n.cfg.DataDir,
		"--image", TestImage, "--gpu-image", TestImage, "--namespace", n.cfg.Namespace,
		"--idle-timeout", "0", "--history-interval", "0", "--verbose", "--ssh-listen", "127.0.0.1:0",
	}, n.cfg.Args...)
	cmd := exec.Command(n.bin, args...)
	cmd.Env = append(childEnv(), n.cfg.Env...)
	cmd.Stdout, cmd.Stderr = n.log, n.log
	// Its own process group, so Kill also ends anything it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		n.tb.Fatalf("starting the node: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()

	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", n.URL+"/api/health", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			n.tb.Fatalf("the node ended during start-up (%v):\n%s", cmd.ProcessState, n.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			n.Kill()
			n.tb.Fatalf("the node did not answer /api/health within a minute:\n%s", n.log.String())
		}
	}
}

// childEnv is this process's environment less the settings serve reads, so
// a developer's own settings do not leak into the test node.
func childEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "CLAWDSPACE_"), strings.HasPrefix(k, "TS_"),
			k == "PORT", k == "API_KEY", k == "IDLE_TIMEOUT_MS", k == "HISTORY_INGEST_MS", k == "NODES_REFRESH_MS":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Pid returns the process ID of the running node, 0 when it is not running.
func (n *ChildNode) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Kill ends the node with SIGKILL (its process group too) and waits until
// it is gone: the crash the recovery at start-up is for. Killing a node
// that is not running does nothing.
func (n *ChildNode) Kill() { n.signal(syscall.SIGKILL) }

// Stop ends the node with SIGTERM, a graceful shutdown, and waits for it.
func (n *ChildNode) Stop() { n.signal(syscall.SIGTERM) }

func (n *ChildNode) signal(sig syscall.Signal) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	if sig == syscall.SIGKILL {
		_ = syscall.Kill(-cmd.Process.Pid, sig)
	} else {
		_ = cmd.Process.Signal(sig)
	}
	<-done
	fmt.Fprintf(n.log, "--- ended by %v ---\n", sig)
}

// Restart kills the node if it runs and starts it again on the same data
// folder and address, waiting until it answers.
func (n *ChildNode) Restart() {
	n.tb.Helper()
	n.Kill()
	n.start()
}

// Log returns everything the node wrote so far, all runs.
func (n *ChildNode) Log() string { return n.log.String() }

// Do sends a request with the test key, as Node.Do does.
func (n *ChildNode) Do(tb testing.TB, method, path string, body any, headers ...string) Response {
	tb.Helper()
	return do(tb, n.HTTP, n.URL, Key, method, path, body, headers...)
}

// DoKey is Do with another key; an empty key sends no Authorization header.
func (n *ChildNode) DoKey(tb testing.TB, key, method, path string, body any, headers ...string) Response {
	tb.Helper()
	return do(tb, n.HTTP, n.URL, key, method, path, body, headers...)
}

// syncLog collects a child's output for the test log.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
