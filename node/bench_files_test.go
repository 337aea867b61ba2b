package node_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
)

// rawArchivePut copies one file into a container with the archive API,
// as a client of the raw SDK would.
func rawArchivePut(b *testing.B, c *client.Client, container, dir, name string, data []byte) {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Uid: 1001, Gid: 1001, ModTime: time.Now()})
		_, _ = tw.Write(data)
		pw.CloseWithError(tw.Close())
	}()
	if _, err := c.CopyToContainer(context.Background(), container, client.CopyToContainerOptions{DestinationPath: dir, Content: pr}); err != nil {
		b.Fatal(err)
	}
}

// rawArchiveGet reads one file out of a container with the archive API.
func rawArchiveGet(b *testing.B, c *client.Client, container, p string) int64 {
	res, err := c.CopyFromContainer(context.Background(), container, client.CopyFromContainerOptions{SourcePath: p})
	if err != nil {
		b.Fatal(err)
	}
	defer res.Content.Close()
	tr := tar.NewReader(res.Content)
	if _, err := tr.Next(); err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, tr)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func nodePut(b *testing.B, n *nodetest.Node, name, p string, data []byte) {
	req, _ := http.NewRequest("PUT", n.URL+"/api/spaces/"+name+"/file?path="+p, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+nodetest.Key)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := n.HTTP.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("put: %d", resp.StatusCode)
	}
}

func nodeGet(b *testing.B, n *nodetest.Node, name, p string) int64 {
	req, _ := http.NewRequest("GET", n.URL+"/api/spaces/"+name+"/file?raw=true&path="+p, nil)
	req.Header.Set("Authorization", "Bearer "+nodetest.Key)
	resp, err := n.HTTP.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.Copy(io.Discard, resp.Body)
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("get: %d %v", resp.StatusCode, err)
	}
	return got
}

func benchFiles(b *testing.B, size int) { benchFilesWith(b, size, nodetest.Options{}) }

func benchFilesWith(b *testing.B, size int, opt nodetest.Options) {
	n := nodetest.Start(b, opt)
	name := benchSpace(b, n, "bfiles")
	raw, cname := n.Raw(), "clawdspace-"+name
	data := make([]byte, size)
	_, _ = rand.Read(data)
	b.SetBytes(int64(size))
	b.Run("write", func(b *testing.B) {
		var p pair
		for i := 0; i < b.N; i++ {
			p.both(i, func() { nodePut(b, n, name, "/bench.bin", data) },
				func() { rawArchivePut(b, raw, cname, "/workspace", "bench-raw.bin", data) })
		}
		p.report(b)
		b.ReportMetric(float64(size)*float64(b.N)/p.node.Seconds()/1e6, "node-MB/s")
	})
	b.Run("read", func(b *testing.B) {
		var p pair
		for i := 0; i < b.N; i++ {
			p.both(i, func() { nodeGet(b, n, name, "/bench.bin") },
				func() { rawArchiveGet(b, raw, cname, "/workspace/bench-raw.bin") })
		}
		p.report(b)
		b.ReportMetric(float64(size)*float64(b.N)/p.node.Seconds()/1e6, "node-MB/s")
	})
}

// BenchmarkFiles64KiB: raw PUT/GET of 64 KiB vs one raw archive copy.
func BenchmarkFiles64KiB(b *testing.B) { benchFiles(b, 64<<10) }

// BenchmarkFiles64KiBInSpace: the same with the file operations done in
// the space as its user (--files-in-space, as on a node that cannot see
// the workspace from the host): through the in-space agent.
func BenchmarkFiles64KiBInSpace(b *testing.B) {
	benchFilesWith(b, 64<<10, nodetest.Options{FilesInSpace: true})
}

// BenchmarkFiles100MiB: the same for 100 MiB; node-MB/s is the throughput.
func BenchmarkFiles100MiB(b *testing.B) { benchFiles(b, 100<<20) }

// BenchmarkExecStreamFirstByte: time to the first output line of a
// streamed exec vs the raw SDK's first output byte of the same command.
func BenchmarkExecStreamFirstByte(b *testing.B) {
	n := nodetest.Start(b, nodetest.Options{})
	name := benchSpace(b, n, "bstream")
	raw, cname, ctx := n.Raw(), "clawdspace-"+name, context.Background()
	var p pair
	for i := 0; i < b.N; i++ {
		p.both(i, func() {
			req, _ := http.NewRequest("POST", n.URL+"/api/spaces/"+name+"/exec?stream=true", strings.NewReader(`{"command":["echo","hi"]}`))
			req.Header.Set("Authorization", "Bearer "+nodetest.Key)
			resp, err := n.HTTP.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			if err != nil || !strings.Contains(line, "hi") {
				b.Fatalf("first line %q %v", line, err)
			}
			b.StopTimer()
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			b.StartTimer()
		}, func() {
			cr, err := raw.ExecCreate(ctx, cname, client.ExecCreateOptions{AttachStdout: true, AttachStderr: true, Cmd: []string{"echo", "hi"}})
			if err != nil {
				b.Fatal(err)
			}
			att, err := raw.ExecAttach(ctx, cr.ID, client.ExecAttachOptions{})
			if err != nil {
				b.Fatal(err)
			}
			hdr := make([]byte, 9)
			if _, err := io.ReadFull(att.Reader, hdr); err != nil {
				b.Fatal(err)
			}
			att.Close()
		})
	}
	p.report(b)
}
