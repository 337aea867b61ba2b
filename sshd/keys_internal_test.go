package sshd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestHostKeyKept: the host key is generated once (ed25519, mode 0600 in
// a 0700 folder) and the same key is used by every later start.
func TestHostKeyKept(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ssh", "host_ed25519_key")
	first, err := loadHostKey(p)
	if err != nil {
		t.Fatal(err)
	}
	if first.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("host key type %s, want ed25519", first.PublicKey().Type())
	}
	for path, want := range map[string]os.FileMode{p: 0o600, filepath.Dir(p): 0o700 | os.ModeDir} {
		st, err := os.Stat(path)
		if err != nil || st.Mode() != want {
			t.Errorf("%s: mode %v, want %v (%v)", path, st.Mode(), want, err)
		}
	}
	again, err := loadHostKey(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.PublicKey().Marshal(), again.PublicKey().Marshal()) {
		t.Errorf("a second start made a new host key")
	}
	if err := os.WriteFile(p, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadHostKey(p); err == nil {
		t.Errorf("a broken host key file was accepted")
	}
}

// TestAuthorizedKeys: keys with a comment, blank lines and comments, a
// key with options (skipped: its restrictions are not enforced), and
// a changed file read again.
func TestAuthorizedKeys(t *testing.T) {
	mk := func() ssh.PublicKey {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ssh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	line := func(k ssh.PublicKey) string { return string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(k))) }
	alice, bob, carol := mk(), mk(), mk()
	p := filepath.Join(t.TempDir(), "authorized_keys")
	content := "# the team\n\n" + line(alice) + " alice@laptop\nnot a key at all\n" +
		`command="echo hi",no-pty ` + line(bob) + " bob@ci\n"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &authorizedKeys{path: p}
	if c, ok := a.lookup(alice); !ok || c != "alice@laptop" {
		t.Errorf("alice: %q %v", c, ok)
	}
	if _, ok := a.lookup(bob); ok {
		t.Errorf("a key with options was accepted")
	}
	if _, ok := a.lookup(carol); ok {
		t.Errorf("an unknown key was accepted")
	}
	if err := os.WriteFile(p, []byte(line(carol)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.lookup(carol); !ok {
		t.Errorf("a key added later was not seen")
	}
	if _, ok := a.lookup(alice); ok {
		t.Errorf("a removed key still works")
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.lookup(carol); ok {
		t.Errorf("a key of a deleted file still works")
	}
}

func TestIsSpaceHost(t *testing.T) {
	c := &connection{space: "dev"}
	for host, want := range map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true, "[::1]": true, "dev": true, "DEV": true,
		"10.0.0.1": false, "example.com": false, "other": false, "169.254.169.254": false} {
		if got := c.isSpaceHost(host); got != want {
			t.Errorf("isSpaceHost(%q) = %v, want %v", host, got, want)
		}
	}
}
