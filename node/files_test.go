package node_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/adam91holt/clawdspace/nodetest"
)

func sh(t *testing.T, n *nodetest.Node, name, cmd string) (string, int) {
	t.Helper()
	var out struct {
		Stdout, Stderr string
		ExitCode       int
	}
	r := n.Do(t, "POST", "/api/spaces/"+name+"/exec", map[string]any{"command": cmd})
	if r.Status != http.StatusOK {
		t.Fatalf("exec %q = %d %s", cmd, r.Status, r.Body)
	}
	r.JSON(t, &out)
	return out.Stdout + out.Stderr, out.ExitCode
}

func q(p string) string { return url.QueryEscape(p) }

// rawPut uploads bytes with Content-Type application/octet-stream.
func rawPut(t *testing.T, n *nodetest.Node, name, p string, body io.Reader, length int64) nodetest.Response {
	t.Helper()
	req, err := http.NewRequest("PUT", n.URL+"/api/spaces/"+name+"/file?path="+q(p), body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	req.Header.Set("Authorization", "Bearer "+nodetest.Key)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := n.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return nodetest.Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

func TestFilesRoundTrip(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "files")

	sizes := []int{0, 1, 100 << 10, 3 << 20}
	for _, size := range sizes {
		t.Run(fmt.Sprintf("raw %d bytes", size), func(t *testing.T) {
			data := make([]byte, size)
			_, _ = rand.Read(data)
			p := fmt.Sprintf("/deep/er/raw-%d.bin", size)
			if r := rawPut(t, n, name, p, bytes.NewReader(data), int64(size)); r.Status != http.StatusOK {
				t.Fatalf("put = %d %s", r.Status, r.Body)
			}
			r := n.Do(t, "GET", "/api/spaces/"+name+"/file?raw=true&path="+q(p), nil)
			if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/octet-stream" ||
				r.Header.Get("Content-Length") != fmt.Sprint(size) {
				t.Fatalf("get = %d %v", r.Status, r.Header)
			}
			if sha256.Sum256(r.Body) != sha256.Sum256(data) {
				t.Fatalf("read back %d bytes differ from the %d written", len(r.Body), size)
			}
		})
	}
	t.Run("json form", func(t *testing.T) {
		data := []byte("\x00\xffbinary\nand text\n")
		r := n.Do(t, "PUT", "/api/spaces/"+name+"/file?path="+q("/notes/a.txt"), map[string]string{"contentBase64": base64.StdEncoding.EncodeToString(data)})
		if r.Status != http.StatusOK || r.Map(t)["message"] != "OK" {
			t.Fatalf("put = %d %s", r.Status, r.Body)
		}
		var got struct {
			Path          string
			ContentBase64 string
			Truncated     bool
		}
		n.Do(t, "GET", "/api/spaces/"+name+"/file?path="+q("/notes/a.txt"), nil).JSON(t, &got)
		if b, _ := base64.StdEncoding.DecodeString(got.ContentBase64); !bytes.Equal(b, data) || got.Truncated || got.Path != "/notes/a.txt" {
			t.Fatalf("get = %+v", got)
		}
		n.Do(t, "GET", "/api/spaces/"+name+"/file?maxBytes=3&path="+q("/notes/a.txt"), nil).JSON(t, &got)
		if b, _ := base64.StdEncoding.DecodeString(got.ContentBase64); string(b) != "\x00\xffb" || !got.Truncated {
			t.Fatalf("maxBytes=3: %+v", got)
		}
	})
	t.Run("owner and parents", func(t *testing.T) {
		out, code := sh(t, n, name, "stat -c '%u:%g %n' /workspace/deep /workspace/deep/er /workspace/deep/er/raw-1.bin /workspace/notes/a.txt")
		if code != 0 || strings.Count(out, "1001:1001") != 4 {
			t.Fatalf("ownership:\n%s", out)
		}
	})
	t.Run("list", func(t *testing.T) {
		var got struct {
			Path    string
			Entries []struct {
				Name, Path, Type string
				Size, MtimeMs    int64
			}
		}
		r := n.Do(t, "GET", "/api/spaces/"+name+"/files?path=/deep/er", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("list = %d %s", r.Status, r.Body)
		}
		r.JSON(t, &got)
		if got.Path != "/deep/er" || len(got.Entries) != len(sizes) {
			t.Fatalf("list = %+v", got)
		}
		e := got.Entries[1]
		if e.Name != "raw-1.bin" || e.Path != "/deep/er/raw-1.bin" || e.Type != "file" || e.Size != 1 || e.MtimeMs == 0 {
			t.Fatalf("entry = %+v", e)
		}
		n.Do(t, "GET", "/api/spaces/"+name+"/files", nil).JSON(t, &got)
		if got.Path != "/" || len(got.Entries) < 2 || got.Entries[0].Type != "dir" {
			t.Fatalf("root = %+v", got)
		}
	})
	t.Run("mkdir and delete", func(t *testing.T) {
		if r := n.Do(t, "POST", "/api/spaces/"+name+"/mkdir", map[string]string{"path": "/made/here"}); r.Status != http.StatusOK {
			t.Fatalf("mkdir = %d %s", r.Status, r.Body)
		}
		if r := n.Do(t, "POST", "/api/spaces/"+name+"/mkdir", map[string]string{"path": "/made/here"}); r.Status != http.StatusOK {
			t.Fatalf("mkdir again = %d %s", r.Status, r.Body)
		}
		if out, _ := sh(t, n, name, "stat -c %u:%F /workspace/made/here"); out != "1001:directory\n" {
			t.Fatalf("made folder: %q", out)
		}
		if r := n.Do(t, "DELETE", "/api/spaces/"+name+"/file?path=/made", nil); r.Status != http.StatusBadRequest {
			t.Fatalf("delete folder without recursive = %d %s", r.Status, r.Body)
		}
		if r := n.Do(t, "DELETE", "/api/spaces/"+name+"/file?recursive=true&path=/made", nil); r.Status != http.StatusOK {
			t.Fatalf("delete folder = %d %s", r.Status, r.Body)
		}
		if r := n.Do(t, "DELETE", "/api/spaces/"+name+"/file?path=/notes/a.txt", nil); r.Status != http.StatusOK {
			t.Fatalf("delete file = %d %s", r.Status, r.Body)
		}
		if r := n.Do(t, "GET", "/api/spaces/"+name+"/file?path=/notes/a.txt", nil); r.Status != http.StatusNotFound {
			t.Fatalf("get deleted = %d %s", r.Status, r.Body)
		}
	})
}

func TestFilesRefuseEscapes(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "escape")
	if out, code := sh(t, n, name, "mkdir -p /workspace/in/sub && echo ok > /workspace/in/sub/f && ln -s /etc /workspace/etc-link && ln -s /workspace/in /workspace/in-link && ln -s ../../etc/passwd /workspace/in/pw && ln -s sub/f /workspace/in/rel"); code != 0 {
		t.Fatal(out)
	}
	tests := []struct {
		name, method, path string
		want               int
	}{
		{"dotdot", "GET", "/../etc/passwd", 400},
		{"dotdot inside", "GET", "/in/../../etc/passwd", 400},
		{"dot", "GET", "/./in/sub/f", 400},
		{"double slash", "GET", "/in//sub/f", 400},
		{"nul", "GET", "/in/\x00", 400},
		{"symlink folder outside", "GET", "/etc-link/passwd", 403},
		{"symlink outside as final", "GET", "/in/pw", 403},
		{"list through symlink outside", "LIST", "/etc-link", 403},
		{"write through symlink outside", "PUT", "/etc-link/evil", 403},
		{"write onto symlink outside", "PUT", "/in/pw", 403},
		{"mkdir through symlink outside", "MKDIR", "/etc-link/x", 403},
		{"delete through symlink outside", "DELETE", "/etc-link/passwd", 403},
		{"delete a symlink that points outside removes the link", "DELETE", "/in/pw", 200},
		{"symlink inside is followed", "GET", "/in-link/sub/f", 200},
		{"relative symlink inside", "GET", "/in/rel", 200},
		{"missing", "GET", "/nope", 404},
		{"missing below a file", "GET", "/in/sub/f/x", 400},
		{"folder as file", "GET", "/in", 400},
		{"file as folder", "LIST", "/in/sub/f", 400},
		{"write over folder", "PUT", "/in", 400},
		{"delete workspace", "DELETE", "/", 400},
		{"empty path", "GET", "", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r nodetest.Response
			switch tt.method {
			case "GET":
				r = n.Do(t, "GET", "/api/spaces/"+name+"/file?path="+q(tt.path), nil)
			case "LIST":
				r = n.Do(t, "GET", "/api/spaces/"+name+"/files?path="+q(tt.path), nil)
			case "PUT":
				r = n.Do(t, "PUT", "/api/spaces/"+name+"/file?path="+q(tt.path), map[string]string{"contentBase64": "eA=="})
			case "MKDIR":
				r = n.Do(t, "POST", "/api/spaces/"+name+"/mkdir", map[string]string{"path": tt.path})
			case "DELETE":
				r = n.Do(t, "DELETE", "/api/spaces/"+name+"/file?path="+q(tt.path), nil)
			}
			if r.Status != tt.want {
				t.Fatalf("%s %q = %d %s, want %d", tt.method, tt.path, r.Status, r.Body, tt.want)
			}
			if tt.want >= 400 && r.Map(t)["error"] == "" {
				t.Fatalf("no error message: %s", r.Body)
			}
		})
	}
	if out, _ := sh(t, n, name, "ls /etc/evil /etc/x 2>&1; head -c 20 /etc/passwd"); strings.Contains(out, "evil\n") || !strings.HasPrefix(strings.TrimSpace(strings.SplitN(out, "\n", 3)[2]), "root:") {
		t.Fatalf("something was written outside /workspace or passwd changed:\n%s", out)
	}
}

func TestFilesOnPausedSpaceAndLimits(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{MaxFileBytes: 1 << 20})
	name := newSpace(t, n, "pausedfiles")
	if r := n.Do(t, "POST", "/api/spaces/"+name+"/stop", nil); r.Status != 200 {
		t.Fatal(r.Status)
	}
	if r := n.Do(t, "PUT", "/api/spaces/"+name+"/file?path=/p.txt", map[string]string{"contentBase64": "aGk="}); r.Status != http.StatusOK {
		t.Fatalf("write on paused = %d %s", r.Status, r.Body)
	}
	if st := n.Do(t, "GET", "/api/spaces/"+name, nil).Map(t)["space"].(map[string]any)["status"]; st != "running" {
		t.Fatalf("status after file write = %v, want running", st)
	}
	big := bytes.Repeat([]byte("x"), 2<<20)
	if r := rawPut(t, n, name, "/big", bytes.NewReader(big), int64(len(big))); r.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the limit with length = %d %s", r.Status, r.Body)
	}
	// Unknown length: the limit applies while the body streams in.
	if r := rawPut(t, n, name, "/big", io.MultiReader(bytes.NewReader(big)), -1); r.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the limit, chunked = %d %s", r.Status, r.Body)
	}
	if r := n.Do(t, "GET", "/api/spaces/"+name+"/file?path=/big", nil); r.Status != http.StatusNotFound {
		t.Fatalf("a refused upload left a file: %d", r.Status)
	}
	if r := n.Do(t, "GET", "/api/spaces/nope-"+name+"/file?path=/p.txt", nil); r.Status != http.StatusNotFound || r.Map(t)["error"] != "Space not found" {
		t.Fatalf("missing space = %d %s", r.Status, r.Body)
	}
	if r := n.Do(t, "GET", "/api/spaces/"+name+"/file?maxBytes=x&path=/p.txt", nil); r.Status != http.StatusBadRequest {
		t.Fatalf("bad maxBytes = %d", r.Status)
	}
	if r := n.Do(t, "PUT", "/api/spaces/"+name+"/file?path=/q", map[string]string{"contentBase64": "***"}); r.Status != http.StatusBadRequest {
		t.Fatalf("bad base64 = %d", r.Status)
	}
}

// TestFilesInBareImage: an image with nothing but sleep (no shell, no
// python, no find) still has working files; what needs tools says so.
func TestFilesInBareImage(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := nodetest.Name(t, n.Engine, "bare")
	if r := n.Do(t, "POST", "/api/spaces", map[string]any{"name": name, "image": nodetest.BareImage}); r.Status != http.StatusCreated {
		t.Fatalf("create = %d %s", r.Status, r.Body)
	}
	data := bytes.Repeat([]byte("bare\x00"), 30000)
	if r := rawPut(t, n, name, "/d/e/f.bin", bytes.NewReader(data), int64(len(data))); r.Status != http.StatusOK {
		t.Fatalf("put = %d %s", r.Status, r.Body)
	}
	if r := n.Do(t, "GET", "/api/spaces/"+name+"/file?raw=true&path=/d/e/f.bin", nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, data) {
		t.Fatalf("get = %d, %d bytes", r.Status, len(r.Body))
	}
	var list struct {
		Entries []struct{ Name, Type string }
	}
	r := n.Do(t, "GET", "/api/spaces/"+name+"/files?path=/d/e", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("list = %d %s", r.Status, r.Body)
	}
	r.JSON(t, &list)
	if len(list.Entries) != 1 || list.Entries[0].Name != "f.bin" || list.Entries[0].Type != "file" {
		t.Fatalf("list = %+v", list)
	}
	// The node acts on the workspace from the engine's host: no rm needed.
	if r := n.Do(t, "DELETE", "/api/spaces/"+name+"/file?path=/d/e/f.bin", nil); r.Status != http.StatusOK {
		t.Fatalf("delete = %d %s", r.Status, r.Body)
	}
	if r := n.Do(t, "GET", "/api/spaces/"+name+"/file?path=/d/e/f.bin", nil); r.Status != http.StatusNotFound {
		t.Fatalf("get after delete = %d %s", r.Status, r.Body)
	}
	r = n.Do(t, "GET", "/api/spaces/"+name+"/observability", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("observability = %d %s", r.Status, r.Body)
	}
	if o := r.Map(t)["observability"].(map[string]any); o["workspaceDisk"] != nil || o["stats"] == nil {
		t.Fatalf("observability in a bare image = %v", o)
	}
}

// TestFileReplaceIsAtomic: a large upload that fails midway leaves the file
// it would have replaced as it was.
func TestFileReplaceIsAtomic(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "atomic")
	old := bytes.Repeat([]byte("old!"), 1000)
	if r := rawPut(t, n, name, "/f.bin", bytes.NewReader(old), int64(len(old))); r.Status != http.StatusOK {
		t.Fatalf("put = %d %s", r.Status, r.Body)
	}
	// The client promises 3 MiB and sends 2 MiB, then hangs up.
	body := io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("n"), 2<<20)), failingReader{})
	req, _ := http.NewRequest("PUT", n.URL+"/api/spaces/"+name+"/file?path=/f.bin", body)
	req.ContentLength = 3 << 20
	req.Header.Set("Authorization", "Bearer "+nodetest.Key)
	req.Header.Set("Content-Type", "application/octet-stream")
	if resp, err := n.HTTP.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("a broken upload was accepted")
		}
	}
	if r := n.Do(t, "GET", "/api/spaces/"+name+"/file?raw=true&path=/f.bin", nil); !bytes.Equal(r.Body, old) {
		t.Fatalf("the old file changed: %d bytes", len(r.Body))
	}
	// A complete large replacement lands whole, with no temporary file left.
	fresh := bytes.Repeat([]byte("new"), 1<<20)
	if r := rawPut(t, n, name, "/f.bin", bytes.NewReader(fresh), int64(len(fresh))); r.Status != http.StatusOK {
		t.Fatalf("put = %d %s", r.Status, r.Body)
	}
	if r := n.Do(t, "GET", "/api/spaces/"+name+"/file?raw=true&path=/f.bin", nil); !bytes.Equal(r.Body, fresh) {
		t.Fatalf("replacement read back %d bytes", len(r.Body))
	}
	if out, _ := sh(t, n, name, "ls -A /workspace"); strings.Contains(out, "clawdspace-upload") {
		t.Fatalf("temporary file left: %s", out)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
