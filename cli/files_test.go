package cli

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFiles(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	name := e.space("files")
	data := make([]byte, 5<<20+123)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}

	t.Run("put stdin, get stdout", func(t *testing.T) {
		r := e.ok(bytes.NewReader(data), "files", "put", name, "-", "/data/big.bin")
		if !strings.Contains(r.Stdout, "Uploaded 5.0 MiB") {
			t.Errorf("put said %s", r)
		}
		r = e.ok(nil, "files", "get", name, "/data/big.bin", "-")
		if !bytes.Equal([]byte(r.Stdout), data) {
			t.Fatalf("got %d bytes back, want the %d put", len(r.Stdout), len(data))
		}
	})
	t.Run("put and get local files", func(t *testing.T) {
		local := filepath.Join(e.home, "report.bin")
		if err := os.WriteFile(local, data[:300000], 0o600); err != nil {
			t.Fatal(err)
		}
		e.ok(nil, "files", "put", name, local, "/out/")
		e.ok(nil, "files", "put", name, local) // to /report.bin
		dl := filepath.Join(e.home, "dl")
		if err := os.Mkdir(dl, 0o700); err != nil {
			t.Fatal(err)
		}
		e.ok(nil, "files", "get", name, "/out/report.bin", dl)
		e.ok(nil, "files", "get", name, "/report.bin", filepath.Join(dl, "second.bin"))
		for _, f := range []string{"report.bin", "second.bin"} {
			got, err := os.ReadFile(filepath.Join(dl, f))
			if err != nil || !bytes.Equal(got, data[:300000]) {
				t.Errorf("%s: %d bytes, %v", f, len(got), err)
			}
		}
		// Without LOCAL the file lands in the working folder under its name.
		e.ok(nil, "files", "get", name, "/out/report.bin")
		if _, err := os.Stat(filepath.Join(e.home, "report.bin")); err != nil {
			t.Error(err)
		}
	})
	t.Run("ls", func(t *testing.T) {
		var entries []struct {
			Name string `json:"name"`
			Path string `json:"path"`
			Type string `json:"type"`
			Size int64  `json:"size"`
		}
		e.jsonOf(&entries, "files", "ls", name, "/data", "--json")
		if len(entries) != 1 || entries[0].Name != "big.bin" || entries[0].Path != "/data/big.bin" || entries[0].Type != "file" || entries[0].Size != int64(len(data)) {
			t.Errorf("ls --json = %+v", entries)
		}
		r := e.ok(nil, "files", "ls", name)
		for _, want := range []string{"NAME", "data/", "out/", "report.bin"} {
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("ls lacks %q:\n%s", want, r.Stdout)
			}
		}
	})
	t.Run("mkdir and rm", func(t *testing.T) {
		e.ok(nil, "files", "mkdir", name, "/empty/deep")
		oneLineError(t, e.run(nil, "files", "rm", name, "/empty"), 1, "is a folder")
		e.ok(nil, "files", "rm", "-r", name, "/empty")
		e.ok(nil, "files", "rm", name, "/report.bin")
		oneLineError(t, e.run(nil, "files", "get", name, "/report.bin", "-"), 1, "No such file or folder: /report.bin")
		oneLineError(t, e.run(nil, "files", "rm", name, "/report.bin"), 1, "No such file or folder")
	})
	t.Run("errors", func(t *testing.T) {
		oneLineError(t, e.run(nil, "files", "ls", "t-nope"), 1, `space "t-nope" not found`)
		oneLineError(t, e.run(nil, "files", "get", name, "/../etc/passwd", "-"), 1, `may not contain ".."`)
		oneLineError(t, e.run(strings.NewReader("x"), "files", "put", name, "-"), 2, "give REMOTE")
		// A failed download leaves no file behind.
		e.run(nil, "files", "get", name, "/missing.txt", filepath.Join(e.home, "missing.txt"))
		if m, _ := filepath.Glob(filepath.Join(e.home, "*missing*")); len(m) != 0 {
			t.Errorf("a failed download left %v", m)
		}
	})
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	name := "cli-t-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	t.Cleanup(func() { e.node.Do(t, "DELETE", "/api/templates/"+name, nil) })

	yaml := "name: " + name + "\ndescription: from the CLI test\nresources:\n  memory: 512m\n  cpus: 0.5\nnetwork:\n  mode: none\n"
	r := e.ok(strings.NewReader(yaml), "templates", "put", "-")
	if !strings.Contains(r.Stdout, "Saved template "+name) {
		t.Errorf("put said %s", r)
	}
	file := filepath.Join(e.home, "t.yaml")
	if err := os.WriteFile(file, []byte(strings.Replace(yaml, "512m", "640m", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	var saved map[string]any
	e.jsonOf(&saved, "templates", "put", file, "--json")
	if saved["name"] != name || saved["resources"].(map[string]any)["memory"] != "640m" {
		t.Errorf("put --json = %v", saved)
	}

	var list []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	e.jsonOf(&list, "templates", "ls", "--json")
	found := false
	for _, tpl := range list {
		found = found || (tpl.Name == name && tpl.Description == "from the CLI test")
	}
	if !found || len(list) < 5 {
		t.Errorf("ls --json = %+v", list)
	}
	if r := e.ok(nil, "templates", "ls"); !strings.Contains(r.Stdout, "DESCRIPTION") || !strings.Contains(r.Stdout, name) {
		t.Errorf("ls:\n%s", r.Stdout)
	}
	if r := e.ok(nil, "templates", "get", name); !strings.Contains(r.Stdout, "memory: 640m") || !strings.Contains(r.Stdout, "mode: none") {
		t.Errorf("get:\n%s", r.Stdout)
	}
	var got struct{ Name, YAML string }
	e.jsonOf(&got, "templates", "get", name, "--json")
	if got.Name != name || !strings.Contains(got.YAML, "640m") {
		t.Errorf("get --json = %+v", got)
	}

	oneLineError(t, e.run(strings.NewReader("name: x\nbogus: 1\n"), "templates", "put", "-"), 1, "field bogus not found")
	e.ok(nil, "templates", "rm", name)
	oneLineError(t, e.run(nil, "templates", "get", name), 1, `template "`+name+`" not found`)
	oneLineError(t, e.run(nil, "templates", "rm", name), 1, "not found")
}
