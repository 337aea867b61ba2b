package node_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// fileModes are the two ways a node reaches a workspace: from the engine's
// host, confined by openat2, and inside the space as its user.
var fileModes = []struct {
	name    string
	inSpace bool
}{{"host", false}, {"in space", true}}

// TestFilesHostilePaths: paths a hostile space or caller builds give 4xx
// with a clear message, in both modes, and never reach outside /workspace.
func TestFilesHostilePaths(t *testing.T) {
	for _, mode := range fileModes {
		t.Run(mode.name, func(t *testing.T) {
			n := nodetest.Start(t, nodetest.Options{FilesInSpace: mode.inSpace})
			name := newSpace(t, n, "hostile")
			setup := "mkdir -p /workspace/notes /workspace/deep && echo hi > /workspace/notes/f" +
				" && ln -s loop1 /workspace/loop2 && ln -s loop2 /workspace/loop1" +
				" && ln -s /etc /workspace/etc-link && ln -s ../etc /workspace/up" +
				" && ln -s /workspace/notes /workspace/abs && ln -s .. /workspace/notes/parent" +
				" && mkfifo /workspace/fifo" +
				" && mkdir -p /workspace/deep2" + strings.Repeat("/b", 40) +
				" && ln -s " + strings.Repeat("../", 41) + "notes/f /workspace/deep2" + strings.Repeat("/b", 40) + "/up"
			if out, code := sh(t, n, name, setup); code != 0 {
				t.Fatal(out)
			}
			long := strings.Repeat("x", 256)
			many := strings.Repeat("/a", 2047)
			deep := strings.Repeat("/a", 2000)
			b40 := strings.Repeat("/b", 40)
			tests := []struct {
				name, method, path string
				want               int
				msg                string
			}{
				{"symlink loop read", "GET", "/loop1", 400, "too many levels of symlinks"},
				{"symlink loop list", "LIST", "/loop1", 400, "too many levels of symlinks"},
				{"symlink loop write", "PUT", "/loop1/x", 400, "too many levels of symlinks"},
				{"part over 255 bytes read", "GET", "/" + long, 400, "longer than 255 bytes"},
				{"part over 255 bytes write", "PUT", "/notes/" + long, 400, "longer than 255 bytes"},
				{"part over 255 bytes mkdir", "MKDIR", "/notes/" + long, 400, "longer than 255 bytes"},
				{"part over 255 bytes delete", "DELETE", "/" + long, 400, "longer than 255 bytes"},
				{"2047 parts", "GET", many, 404, "No such file or folder"},
				{"mkdir 2000 parts", "MKDIR", "/deep" + deep, 200, ""},
				{"list 2000 parts", "LIST", "/deep" + deep, 200, ""},
				{"write 2000 parts", "PUT", "/deep" + deep + "/f", 200, ""},
				{"a link up 41 folders", "GET", "/deep2" + b40 + "/up", 200, ""},
				{"absolute link outside", "GET", "/etc-link/passwd", 403, "outside /workspace"},
				{"relative link outside", "GET", "/up/passwd", 403, "outside /workspace"},
				{"write through link outside", "PUT", "/etc-link/pwned", 403, "outside /workspace"},
				{"mkdir through link outside", "MKDIR", "/up/pwned", 403, "outside /workspace"},
				{"absolute link inside", "GET", "/abs/f", 200, ""},
				{"dotdot link inside", "GET", "/notes/parent/notes/f", 200, ""},
				{"fifo", "GET", "/fifo", 400, "not a regular file"},
				{"mkdir many levels", "MKDIR", "/deep/a/b/c/d/e", 200, ""},
				{"write in made folder", "PUT", "/deep/a/b/c/d/e/f", 200, ""},
				{"delete a loop link", "DELETE", "/loop1", 200, ""},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					r := fileOp(t, n, name, tt.method, tt.path)
					if r.Status != tt.want {
						t.Fatalf("%s %.60q = %d %s, want %d", tt.method, tt.path, r.Status, r.Body, tt.want)
					}
					if tt.msg != "" && !strings.Contains(fmt.Sprint(r.Map(t)["error"]), tt.msg) {
						t.Fatalf("%s %.60q: error %s, want it to say %q", tt.method, tt.path, r.Body, tt.msg)
					}
				})
			}
			out, _ := sh(t, n, name, "stat -c %u:%g /workspace/deep/a /workspace/deep/a/b/c/d/e/f; ls /etc")
			if strings.Contains(out, "pwned") || strings.Count(out, "1001:1001") != 2 {
				t.Fatalf("wrong owner, or something was written outside /workspace:\n%s", out)
			}
		})
	}
}

func fileOp(t *testing.T, n *nodetest.Node, name, method, p string) nodetest.Response {
	t.Helper()
	switch method {
	case "LIST":
		return n.Do(t, "GET", "/api/spaces/"+name+"/files?path="+q(p), nil)
	case "PUT":
		return n.Do(t, "PUT", "/api/spaces/"+name+"/file?path="+q(p), map[string]string{"contentBase64": "eA=="})
	case "MKDIR":
		return n.Do(t, "POST", "/api/spaces/"+name+"/mkdir", map[string]string{"path": p})
	}
	return n.Do(t, method, "/api/spaces/"+name+"/file?path="+q(p), nil)
}

// TestFilesSymlinkSwapRace: the space swaps a folder for a symlink to /etc
// in a loop while the API writes and reads through it hundreds of times
// (issue 11, High 1). Nothing may land in /etc, and no file of /etc may
// come back, in either mode.
func TestFilesSymlinkSwapRace(t *testing.T) {
	for _, mode := range fileModes {
		t.Run(mode.name, func(t *testing.T) {
			n := nodetest.Start(t, nodetest.Options{FilesInSpace: mode.inSpace})
			name := newSpace(t, n, "swap")
			// A file only root can read, for the reads to aim at.
			var out bytes.Buffer
			code, err := n.Engine.Exec(t.Context(), name, spaces.ExecSpec{User: "root",
				Cmd:    []string{"sh", "-c", "echo SECRET-SHADOW > /etc/shadow && chmod 600 /etc/shadow"},
				Stdout: &out, Stderr: &out})
			if err != nil || code != 0 {
				t.Fatalf("preparing /etc/shadow: %v %d %s", err, code, out.String())
			}
			if out, code := sh(t, n, name, "mkdir /workspace/race"); code != 0 {
				t.Fatal(out)
			}
			ctx, stop := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				// As the sandbox user; ends when ctx does.
				n.Engine.Exec(ctx, name, spaces.ExecSpec{Cmd: []string{"sh", "-c",
					"cd /workspace/race && while :; do rm -rf d; mkdir d; rm -rf d; ln -s /etc d; done"}})
			}()
			defer func() { stop(); wg.Wait() }()
			rounds := 300
			if mode.inSpace {
				rounds = 100 // every operation is an exec
			}
			statuses, sample := map[int]int{}, map[int]string{}
			for i := range rounds {
				r := n.Do(t, "PUT", fmt.Sprintf("/api/spaces/%s/file?path=/race/d/pwned-%d", name, i), map[string]string{"contentBase64": "cHduZWQK"})
				statuses[r.Status]++
				sample[r.Status] = strings.TrimSpace(string(r.Body))
				if r.Status >= 500 {
					t.Fatalf("write %d = %d %s", i, r.Status, r.Body)
				}
				r = n.Do(t, "GET", "/api/spaces/"+name+"/file?path=/race/d/shadow", nil)
				if r.Status == http.StatusOK || bytes.Contains(r.Body, []byte("U0VDUkVULVNIQURPV")) {
					t.Fatalf("read %d returned /etc/shadow: %d %s", i, r.Status, r.Body)
				}
				if r.Status >= 500 {
					t.Fatalf("read %d = %d %s", i, r.Status, r.Body)
				}
				r = n.Do(t, "GET", "/api/spaces/"+name+"/file?path=/race/d/passwd", nil)
				if r.Status == http.StatusOK {
					t.Fatalf("read %d returned /etc/passwd: %s", i, r.Body)
				}
			}
			stop()
			wg.Wait()
			out.Reset()
			if _, err := n.Engine.Exec(t.Context(), name, spaces.ExecSpec{User: "root", Cmd: []string{"ls", "-a", "/etc"}, Stdout: &out}); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out.String(), "pwned") {
				t.Fatalf("a write landed in /etc:\n%s", out.String())
			}
			t.Logf("write statuses over %d rounds: %v; last answer of each: %v", rounds, statuses, sample)
			// On the host a write between two swaps succeeds (inside d, a
			// folder then); in the space most lose the race to mkdir -p.
			if !mode.inSpace && statuses[http.StatusOK] == 0 {
				t.Fatalf("no write succeeded while d was a folder: %v", statuses)
			}
		})
	}
}
