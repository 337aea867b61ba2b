package nodetest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/adam91holt/clawdspace/agent"
)

// agentBuild builds the in-space agent once per test binary.
var agentBuild = sync.OnceValues(buildAgent)

// AgentBinary returns the path of the in-space agent (cmd/clawdspace-agent)
// built from this checkout: once per test binary, into a folder of the
// system's temp folder named by a hash of its sources, so the test
// binaries of one run share it.
func AgentBinary(tb testing.TB) string {
	tb.Helper()
	path, err := agentBuild()
	if err != nil {
		tb.Fatalf("building the in-space agent: %v", err)
	}
	return path
}

func buildAgent() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	h := sha256.New()
	for _, dir := range []string{"agent", "cmd/clawdspace-agent"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") {
				return err
			}
			b, err := os.ReadFile(p)
			fmt.Fprintf(h, "%s %d\n", p, len(b))
			h.Write(b)
			return err
		})
		if err != nil {
			return "", err
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.sum")); err == nil {
		h.Write(b)
	}
	top, err := privateDir(filepath.Join(os.TempDir(), "clawdspace-test-agent"))
	if err != nil {
		return "", err
	}
	dir := filepath.Join(top, hex.EncodeToString(h.Sum(nil))[:16])
	out := filepath.Join(dir, agent.BinName)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".build-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	cmd := exec.Command("go", "build", "-trimpath", "-o", tmp.Name(), "./cmd/clawdspace-agent")
	cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("%w: %s", err, b)
	}
	return out, os.Rename(tmp.Name(), out)
}

// agentDir is the agent's folder of a test node: outside its data folder
// (which may be a small disk of a test's own), the same for every node
// started on that data folder, removed when the test ends.
func agentDir(tb testing.TB, dataDir string) string {
	sum := sha256.Sum256([]byte(dataDir))
	top, err := privateDir(filepath.Join(os.TempDir(), "clawdspace-test-agentdir"))
	if err != nil {
		tb.Fatalf("the agent's test folder: %v", err)
	}
	dir := filepath.Join(top, hex.EncodeToString(sum[:8]))
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// privateDir makes a folder of the shared temp folder that only this user
// reaches (0700), and refuses one another user made or a symlink: the
// tests run as root, and the node runs what it finds there.
func privateDir(dir string) (string, error) {
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return "", err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return "", fmt.Errorf("%s is not a folder of this user's", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return "", err
		}
	}
	return dir, nil
}
