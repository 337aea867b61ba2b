package engine

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReplaceWord(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"bridge", "127.0.0.1\tlocalhost\n172.17.0.5\tclawdspace-pool\n", "127.0.0.1\tlocalhost\n172.17.0.5\tmy-space\n"},
		{"aliases", "10.0.0.2 clawdspace-pool clawdspace-pool.local x\n", "10.0.0.2 my-space clawdspace-pool.local x\n"},
		{"none", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"},
		{"no final newline", "1.2.3.4 clawdspace-pool", "1.2.3.4 my-space"},
	}
	for _, tt := range tests {
		if got := string(replaceWord([]byte(tt.in), poolHostname, "my-space")); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestOpenEngineFile: the node rewrites a container's hostname and hosts
// files only as regular files that root owns, reached with no symlink.
func TestOpenEngineFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "hostname")
	if err := os.WriteFile(good, []byte("clawdspace-pool\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rewriteFile(good, func([]byte) []byte { return []byte("space\n") }); err != nil {
		t.Fatalf("root's regular file: %v", err)
	}
	if b, _ := os.ReadFile(good); string(b) != "space\n" {
		t.Errorf("rewritten file: %q", b)
	}
	// A symlink as the file, and as a folder along the path.
	if err := os.Symlink(good, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(dir, "dirlink")); err != nil {
		t.Fatal(err)
	}
	notRoot := filepath.Join(dir, "user")
	if err := os.WriteFile(notRoot, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(notRoot, 1001, 1001); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "link"), filepath.Join(dir, "dirlink", "hostname"), notRoot, fifo, dir} {
		if err := rewriteFile(p, func(b []byte) []byte { return b }); err == nil {
			t.Errorf("%s: rewritten, want refused", p)
		}
	}
	if b, _ := os.ReadFile(good); string(b) != "space\n" {
		t.Errorf("file after refused rewrites: %q", b)
	}

	// The engine's socket: root's here; another's socket means no pool.
	if why := hostnameUnsupported("/var/run/docker.sock", dir); why != "" {
		t.Errorf("root's socket: %s", why)
	}
	if why := hostnameUnsupported(notRoot, dir); why == "" {
		t.Error("a socket another user owns: pool allowed")
	}
	if why := hostnameUnsupported("/var/run/docker.sock", filepath.Join(dir, "dirlink")); why == "" {
		t.Error("an engine folder through a symlink: pool allowed")
	}
}
