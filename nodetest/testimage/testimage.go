// Package testimage imports tiny sandbox images for tests, built from
// Debian's static busybox with no registry. It imports nothing of this
// module, so the engine's tests can use it too.
package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// TestImage is a tiny sandbox image built from Debian's static busybox: a
// shell, the usual tools, the sandbox user (1001) and /workspace owned by it.
// It builds in about a second with no registry, so tests do not wait for
// the full clawdspace:latest image.
const TestImage = "clawdspace-test:busybox-v3"

// BrokenImage has no sleep binary, so a space made from it fails to start.
const BrokenImage = "clawdspace-test:broken"

// BareImage has nothing but sleep: no shell, no find, stat, rm, df or du,
// like a distroless image. Files must still work in it.
const BareImage = "clawdspace-test:bare"

// busyboxPath is where Debian's busybox-static package puts the binary.
const busyboxPath = "/bin/busybox"

var applets = []string{"sh", "ash", "cat", "echo", "ls", "sleep", "id", "printf", "true", "false", "head", "tail",
	"wc", "grep", "sed", "tr", "env", "pwd", "mkdir", "rm", "touch", "stat", "dd", "sha256sum", "base64", "ps", "kill",
	"whoami", "hostname", "mount", "df", "du", "find", "xargs", "cut", "sort", "uniq", "test", "[", "yes", "seq", "timeout", "nproc",
	"nc", "httpd", "mv", "ln", "chmod"}

var imageOnce sync.Map // image name -> *sync.Once

// Ensure imports the test images once per process when missing.
func Ensure(tb testing.TB, c *client.Client) {
	tb.Helper()
	ensure(tb, c, TestImage, func() ([]byte, error) { return rootfs(applets) })
	ensure(tb, c, BrokenImage, func() ([]byte, error) { return rootfs(nil) })
	ensure(tb, c, BareImage, func() ([]byte, error) { return rootfs([]string{"sleep"}) })
}

func ensure(tb testing.TB, c *client.Client, ref string, build func() ([]byte, error)) {
	tb.Helper()
	o, _ := imageOnce.LoadOrStore(ref, new(sync.Once))
	var err error
	o.(*sync.Once).Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, ierr := c.ImageInspect(ctx, ref); ierr == nil {
			return
		} else if !cerrdefs.IsNotFound(ierr) {
			err = ierr
			return
		}
		var tarball []byte
		if tarball, err = build(); err != nil {
			return
		}
		var res client.ImageImportResult
		res, err = c.ImageImport(ctx, client.ImageImportSource{Source: bytes.NewReader(tarball), SourceName: "-"}, ref,
			client.ImageImportOptions{Changes: []string{"USER 1001:1001", "WORKDIR /workspace", `CMD ["sleep","infinity"]`, "ENV PATH=/bin"}})
		if err == nil {
			_, err = io.Copy(io.Discard, res)
			res.Close()
		}
	})
	if err != nil {
		imageOnce.Delete(ref)
		tb.Fatalf("building test image %s: %v", ref, err)
	}
}

// rootfs builds the image's file system as a tar stream.
func rootfs(links []string) ([]byte, error) {
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("reading %s (apt-get install busybox-static): %w", busyboxPath, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dir := func(name string, mode int64, uid int) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: now})
	}
	file := func(name string, mode int64, data []byte) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: now})
		_, _ = tw.Write(data)
	}
	for _, d := range []string{"bin", "etc", "tmp", "run", "proc", "sys", "dev", "home", "root"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		dir(d, mode, 0)
	}
	dir("home/sandbox", 0o755, 1001)
	dir("workspace", 0o755, 1001)
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nsandbox:x:1001:1001:sandbox:/home/sandbox:/bin/sh\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nsandbox:x:1001:\n"))
	file("bin/busybox", 0o755, bb)
	for _, a := range links {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: now})
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
