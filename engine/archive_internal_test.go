package engine

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/adam91holt/clawdspace/spaces"
)

// TestImportPassesOnlyTheLegacyImageFormat: index.json, oci-layout,
// repositories, files the manifest does not name and odd names never
// reach the engine's image load; the manifest names only base.
func TestImportPassesOnlyTheLegacyImageFormat(t *testing.T) {
	hex := func(c string) string { return strings.Repeat(c, 64) }
	cfg, layer, unnamed := hex("a")+".json", hex("b")+"/layer.tar", "blobs/sha256/"+hex("c")
	manifest, _ := json.Marshal([]map[string]any{{"Config": cfg, "RepoTags": []string{"victim:latest"}, "Layers": []string{layer},
		"LayerSources": map[string]any{"x": map[string]any{"urls": []string{"http://evil"}}}}})
	entries := []struct{ name, body string }{
		{"image/" + hex("d") + ".json", "{}"}, // before the manifest: of the right shape, passes
		{"image/index.json", `{"manifests":[{"annotations":{"io.containerd.image.name":"victim:latest"}}]}`},
		{"image/oci-layout", `{"imageLayoutVersion":"1.0.0"}`},
		{"image/manifest.json", string(manifest)},
		{"image/" + cfg, "{}"},
		{"image/" + hex("b") + "/", ""},
		{"image/" + layer, "layer"},
		{"image/" + hex("b") + "/json", "{}"},
		{"image/" + unnamed, "unnamed"},
		{"image/repositories", `{"victim":{"latest":"x"}}`},
		{"image/../../etc/passwd", "x"},
		{"workspace/a", "a"},
	}
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(e.body))
	}
	_ = tw.Close()

	var out bytes.Buffer
	var tags []string
	next, err := copyImageEntries(tar.NewReader(&in), &out, &entryCheck{}, "base:tag", func(t []string) { tags = t })
	if err != nil {
		t.Fatal(err)
	}
	if next == nil || next.Name != "workspace/a" {
		t.Errorf("next entry %+v, want workspace/a", next)
	}
	if !slices.Equal(tags, []string{"victim:latest"}) {
		t.Errorf("tags the archive named = %q", tags)
	}
	var got []string
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Name)
		if h.Name == "manifest.json" {
			b, _ := io.ReadAll(tr)
			var m []map[string]any
			if err := json.Unmarshal(b, &m); err != nil || len(m) != 1 {
				t.Fatalf("manifest %s: %v", b, err)
			}
			if _, ok := m[0]["LayerSources"]; ok || len(m[0]) != 3 {
				t.Errorf("manifest passed on = %s, want only Config, RepoTags, Layers", b)
			}
			if tags := m[0]["RepoTags"].([]any); len(tags) != 1 || tags[0] != "base:tag" {
				t.Errorf("manifest tags = %v, want base:tag", tags)
			}
		}
	}
	want := []string{hex("d") + ".json", "manifest.json", cfg, hex("b") + "/", layer}
	if !slices.Equal(got, want) {
		t.Errorf("entries passed to the load:\n%q\nwant\n%q", got, want)
	}
}

// TestImportRefusesOddManifestFiles: a manifest naming a file outside the
// shapes of a saved image is refused.
func TestImportRefusesOddManifestFiles(t *testing.T) {
	for _, m := range []string{
		`[{"Config":"../../x.json","Layers":[]}]`,
		`[{"Config":"` + strings.Repeat("a", 64) + `.json","Layers":["/etc/passwd"]}]`,
		`[{"Config":"","Layers":[]}]`,
		`[{},{}]`,
	} {
		if _, _, _, err := renameImage(strings.NewReader(m), "base:tag"); !errors.Is(err, spaces.ErrInvalid) {
			t.Errorf("renameImage(%s) = %v, want ErrInvalid", m, err)
		}
	}
}
