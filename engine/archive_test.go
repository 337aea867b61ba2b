package engine_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/engine"
	"github.com/adam91holt/clawdspace/nodetest/testimage"
	"github.com/adam91holt/clawdspace/spaces"
)

const secretEnv = "GITHUB_TOKEN=ghp-secret-0d1e2f3a4b5c"

// exported creates a space with a secret in its Env, checkpoints it and
// returns its archive.
func exported(t *testing.T, e *engine.Engine) []byte {
	t.Helper()
	name := uniqueName("hx")
	cleanup(t, name, e)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = e.Remove(ctx, name, true) // with its checkpoints and base tag
	})
	if _, err := e.Create(t.Context(), spaces.ContainerSpec{Name: name, Image: testimage.TestImage, MemoryBytes: 64 << 20, CPUs: 0.5,
		NetworkMode: spaces.NetworkNone, Template: "offline", Env: []string{secretEnv}}); err != nil {
		t.Fatal(err)
	}
	run(t, e, name, "echo hi > /workspace/a.txt")
	if _, err := e.Checkpoint(t.Context(), name, "x"); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := e.Export(t.Context(), name, "x", &b); err != nil {
		t.Fatalf("export: %v", err)
	}
	return b.Bytes()
}

// rewrite copies an archive, passing each entry through f, which may
// change its header and body, or drop it (nil header); add entries go at
// the end.
func rewrite(t *testing.T, archive []byte, f func(h *tar.Header, body []byte) (*tar.Header, []byte), add ...[2]string) []byte {
	t.Helper()
	var out bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(archive)), tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		h, body = f(h, body)
		if h == nil {
			continue
		}
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(body)
	}
	for _, a := range add {
		_ = tw.WriteHeader(&tar.Header{Name: a[0], Mode: 0o644, Size: int64(len(a[1])), Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte(a[1]))
	}
	_ = tw.Close()
	return out.Bytes()
}

// withImageConfig rewrites the image config of an archive through f (the
// "config" object of the image's config), renaming it by its new digest.
func withImageConfig(t *testing.T, archive []byte, f func(cfg map[string]any)) []byte {
	t.Helper()
	var oldName, newName string
	var newCfg []byte
	// The export writes image/manifest.json, then the config.
	first := true
	out := rewrite(t, archive, func(h *tar.Header, body []byte) (*tar.Header, []byte) {
		if h.Name == "image/manifest.json" {
			var m []map[string]any
			_ = json.Unmarshal(body, &m)
			oldName = m[0]["Config"].(string)
			return h, body
		}
		if first && oldName != "" && h.Name == "image/"+oldName {
			first = false
			var c map[string]any
			if err := json.Unmarshal(body, &c); err != nil {
				t.Fatal(err)
			}
			f(c["config"].(map[string]any))
			newCfg, _ = json.Marshal(c)
			sum := sha256.Sum256(newCfg)
			newName = hex.EncodeToString(sum[:]) + ".json"
			h.Name = "image/" + newName
			return h, newCfg
		}
		return h, body
	})
	if newName == "" {
		t.Fatalf("no config %q after the manifest in the archive", oldName)
	}
	return rewrite(t, out, func(h *tar.Header, body []byte) (*tar.Header, []byte) {
		if h.Name == "image/manifest.json" {
			return h, bytes.Replace(body, []byte(oldName), []byte(newName), 1)
		}
		return h, body
	})
}

func importAs(t *testing.T, e *engine.Engine, archive []byte, maxBytes int64, edit func(*spaces.ContainerSpec)) (string, spaces.Space, error) {
	t.Helper()
	name := uniqueName("hi")
	cleanup(t, name, e)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = e.Remove(ctx, name, true) // with its checkpoints and base tag
	})
	sp, err := e.Import(t.Context(), bytes.NewReader(archive), maxBytes, func(m spaces.ArchiveManifest) (spaces.ContainerSpec, error) {
		s := spaces.ContainerSpec{Name: name, Image: m.Image, MemoryBytes: m.Memory, CPUs: m.CPUs, NetworkMode: m.NetworkMode, Template: m.Template}
		if edit != nil {
			edit(&s)
		}
		return s, nil
	})
	return name, sp, err
}

// refused asserts an import failed with want, saying what, and left no
// space and no base tag.
func refused(t *testing.T, e *engine.Engine, name string, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) || !strings.Contains(err.Error(), what) {
		t.Fatalf("import: %v, want %v saying %q", err, want, what)
	}
	if _, gerr := e.Get(t.Context(), name); !errors.Is(gerr, spaces.ErrNotFound) {
		t.Errorf("a refused import left a space: %v", gerr)
	}
	if _, ierr := e.Client().ImageInspect(t.Context(), "clawdspace-checkpoint-"+e.Namespace()+":"+name); ierr == nil {
		t.Errorf("a refused import left its image tagged")
	}
}

// TestExportLeavesOutEnv: an env value set at create is nowhere in the
// archive's bytes, and the imported space still runs (PATH of the image).
func TestExportLeavesOutEnv(t *testing.T) {
	e := newEngine(t, "harden")
	archive := exported(t, e)
	if bytes.Contains(archive, []byte("ghp-secret-0d1e2f3a4b5c")) {
		t.Fatal("the archive holds the space's env value")
	}
	name, _, err := importAs(t, e, archive, 0, nil)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if got := run(t, e, name, "cat /workspace/a.txt; echo \"[$GITHUB_TOKEN]\""); got != "hi\n[]" {
		t.Errorf("imported space: %q", got)
	}
}

// TestImportRefusesHostileArchives: what a hostile archive's image or
// entries could make the engine do is refused or overridden.
func TestImportRefusesHostileArchives(t *testing.T) {
	e := newEngine(t, "harden")
	ctx := t.Context()
	archive := exported(t, e)

	t.Run("image labels are overridden", func(t *testing.T) {
		a := withImageConfig(t, archive, func(c map[string]any) {
			c["Labels"] = map[string]any{spaces.LabelHostPorts: "22", spaces.LabelNetworkBlock: "10.0.0.0/8",
				spaces.LabelWorkspaceMax: "1", engine.LabelImage: "evil:latest", "clawdspace.checkpoint": "evil"}
		})
		name, sp, err := importAs(t, e, a, 0, nil)
		if err != nil {
			t.Fatalf("import: %v", err)
		}
		res, err := e.Client().ContainerInspect(ctx, e.ContainerName(name), client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l := res.Container.Config.Labels
		for _, k := range []string{spaces.LabelHostPorts, spaces.LabelNetworkBlock, spaces.LabelWorkspaceMax, "clawdspace.checkpoint"} {
			if l[k] != "" {
				t.Errorf("label %s = %q from the archive's image, want empty", k, l[k])
			}
		}
		if l[spaces.LabelNamespace] != "harden" || sp.Image != testimage.TestImage {
			t.Errorf("namespace label %q, image %q", l[spaces.LabelNamespace], sp.Image)
		}
	})
	t.Run("image volumes", func(t *testing.T) {
		a := withImageConfig(t, archive, func(c map[string]any) { c["Volumes"] = map[string]any{"/data": map[string]any{}} })
		name, _, err := importAs(t, e, a, 0, nil)
		refused(t, e, name, err, spaces.ErrInvalid, "declares volumes")
	})
	t.Run("sparse entry", func(t *testing.T) {
		// archive/tar ends a tar with two zero blocks: the entry goes
		// before them.
		a := rewrite(t, archive, func(h *tar.Header, b []byte) (*tar.Header, []byte) { return h, b })
		a = append(a[:len(a)-1024:len(a)-1024], sparseEntry(t)...)
		name, _, err := importAs(t, e, a, 0, nil)
		refused(t, e, name, err, spaces.ErrInvalid, "sparse")
	})
	t.Run("entries over the limit", func(t *testing.T) {
		var total int64
		rewrite(t, archive, func(h *tar.Header, b []byte) (*tar.Header, []byte) { total += h.Size; return h, b })
		name, _, err := importAs(t, e, archive, total-1, nil)
		refused(t, e, name, err, spaces.ErrTooLarge, "limit")
	})
	t.Run("size limit without quota", func(t *testing.T) {
		name, _, err := importAs(t, e, archive, 0, func(s *spaces.ContainerSpec) { s.WorkspaceMaxBytes = 1 << 30 })
		refused(t, e, name, err, spaces.ErrInvalid, "workspace.maxSize")
	})
}

// sparseEntry returns an old-GNU sparse header (type 'S', no data, a real
// size of 1 GiB) and the tar's end: archive/tar would read 1 GiB of zeros.
func sparseEntry(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: "workspace/zeros", Mode: 0o644, Typeflag: tar.TypeReg, Format: tar.FormatGNU}); err != nil {
		t.Fatal(err)
	}
	_ = tw.Close()
	h := b.Bytes()[:512]
	h[156] = tar.TypeGNUSparse
	copy(h[483:495], "10000000000\x00") // realsize, octal: 1 GiB
	copy(h[148:156], "        ")
	var sum int
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], []byte(strings.Repeat("0", 6-len(octal(sum)))+octal(sum)+"\x00 "))
	return b.Bytes()
}

func octal(n int) string {
	s := ""
	for ; n > 0; n /= 8 {
		s = string(rune('0'+n%8)) + s
	}
	return s
}
