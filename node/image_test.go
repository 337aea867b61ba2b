package node_test

import (
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/adam91holt/clawdspace/nodetest"
)

// TestSandboxImage checks the real sandbox image (make image builds it;
// make test builds it first): the sandbox user, a writable workspace on a
// fresh volume, the tools people expect (sftp-server too), and bash history written to
// /workspace/.bash_history with a #<epoch> line before each command.
func TestSandboxImage(t *testing.T) {
	image := os.Getenv("CLAWDSPACE_IMAGE")
	if image == "" {
		image = "clawdspace:latest"
	}
	n := nodetest.Start(t, nodetest.Options{})
	name := nodetest.Name(t, n.Engine, "image")
	r := n.Do(t, "POST", "/api/spaces", map[string]any{"name": name, "image": image})
	if r.Status != http.StatusCreated {
		t.Fatalf("create from %s = %d %s (run `make image` to build it)", image, r.Status, r.Body)
	}
	exec := func(cmd string) (string, int) {
		t.Helper()
		var out struct {
			Stdout, Stderr string
			ExitCode       int
		}
		r := n.Do(t, "POST", "/api/spaces/"+name+"/exec", map[string]any{"command": []string{"bash", "-c", cmd}})
		if r.Status != http.StatusOK {
			t.Fatalf("exec %q = %d %s", cmd, r.Status, r.Body)
		}
		r.JSON(t, &out)
		if out.ExitCode != 0 {
			t.Fatalf("exec %q exited %d: %s%s", cmd, out.ExitCode, out.Stdout, out.Stderr)
		}
		return out.Stdout, out.ExitCode
	}

	if out, _ := exec("id -un; id -u; pwd; touch /workspace/probe && stat -c %u /workspace/probe"); out != "sandbox\n1001\n/workspace\n1001\n" {
		t.Errorf("user and workspace = %q", out)
	}
	exec("set -e; for t in git curl jq tmux gcc make ps less ssh unzip nano vi python3 pip3; do command -v $t >/dev/null || { echo missing $t; exit 1; }; done")
	// The SSH door runs the image's sftp-server in the space for SFTP and scp.
	exec("test -x /usr/lib/openssh/sftp-server || { echo missing /usr/lib/openssh/sftp-server; exit 1; }")
	exec("set -e; python3 -m venv /tmp/venv && /tmp/venv/bin/pip --version >/dev/null")

	exec(`printf 'echo first-cmd\necho second-cmd\n' | bash -i >/dev/null 2>&1`)
	hist, _ := exec("cat /workspace/.bash_history")
	want := regexp.MustCompile(`(?m)^#\d{10}\necho first-cmd\n#\d{10}\necho second-cmd\n`)
	if !want.MatchString(hist) {
		t.Errorf("bash history lacks timestamped commands:\n%s", hist)
	}
	if strings.Count(hist, "first-cmd") != 1 {
		t.Errorf("history recorded the command %d times", strings.Count(hist, "first-cmd"))
	}
}
