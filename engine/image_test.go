package engine_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// testImage is a tiny sandbox image from Debian's static busybox, like
// nodetest's (which these tests do not import, so that they build while the
// node does not). It is imported when missing.
const testImage = "clawdspace-test:engine-v1"

var imageMu sync.Mutex

func ensureImage(t *testing.T, c *client.Client) {
	t.Helper()
	imageMu.Lock()
	defer imageMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.ImageInspect(ctx, testImage); err == nil {
		return
	} else if !cerrdefs.IsNotFound(err) {
		t.Fatalf("inspecting %s: %v", testImage, err)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("reading /bin/busybox (apt-get install busybox-static): %v", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for _, d := range []struct {
		name string
		mode int64
		uid  int
	}{{"bin", 0o755, 0}, {"etc", 0o755, 0}, {"tmp", 0o1777, 0}, {"run", 0o755, 0}, {"proc", 0o755, 0},
		{"sys", 0o755, 0}, {"dev", 0o755, 0}, {"workspace", 0o755, 1001}} {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name + "/", Mode: d.mode, Uid: d.uid, Gid: d.uid, ModTime: now})
	}
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\nsandbox:x:1001:1001:sandbox:/workspace:/bin/sh\n")
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd)), ModTime: now})
	_, _ = tw.Write(passwd)
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb)), ModTime: now})
	_, _ = tw.Write(bb)
	for _, a := range []string{"sh", "cat", "echo", "sleep", "true"} {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: now})
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := c.ImageImport(ctx, client.ImageImportSource{Source: &buf, SourceName: "-"}, testImage,
		client.ImageImportOptions{Changes: []string{"USER 1001:1001", "WORKDIR /workspace", `CMD ["sleep","infinity"]`, "ENV PATH=/bin"}})
	if err == nil {
		_, err = io.Copy(io.Discard, res)
		res.Close()
	}
	if err != nil {
		t.Fatalf("importing %s: %v", testImage, err)
	}
}
