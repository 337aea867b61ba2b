package sshd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// maxKeyFile bounds the host key and authorized_keys files read.
const maxKeyFile = 1 << 20

// loadHostKey reads the host key at path, generating an ed25519 key there
// (mode 0600, its folder 0700) when there is none yet.
func loadHostKey(path string) (ssh.Signer, error) {
	b, err := readBounded(path)
	if errors.Is(err, fs.ErrNotExist) {
		return generateHostKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the SSH host key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("reading the SSH host key %s: %w (delete it to generate a new one)", path, err)
	}
	return signer, nil
}

func generateHostKey(path string) (ssh.Signer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the SSH folder: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the SSH host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "clawdspace host key")
	if err != nil {
		return nil, fmt.Errorf("encoding the SSH host key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another start made it meanwhile: use that one.
		return loadHostKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("storing the SSH host key: %w", err)
	}
	if _, err := f.Write(pem.EncodeToMemory(block)); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("storing the SSH host key: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("storing the SSH host key: %w", err)
	}
	return ssh.NewSignerFromKey(priv)
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxKeyFile)
	}
	return b, nil
}

// authorizedKeys is the authorized_keys file, read again whenever its
// size or modification time changes.
type authorizedKeys struct {
	path string

	mu    sync.Mutex
	size  int64
	mtime time.Time
	keys  map[string]string // wire form -> comment
}

// lookup reports whether key is authorized, and its comment.
func (a *authorizedKeys) lookup(key ssh.PublicKey) (comment string, ok bool) {
	if a.path == "" {
		return "", false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st, err := os.Stat(a.path)
	if err != nil {
		a.keys, a.size, a.mtime = nil, 0, time.Time{}
		return "", false
	}
	if a.keys == nil || st.Size() != a.size || !st.ModTime().Equal(a.mtime) {
		b, err := readBounded(a.path)
		if err != nil {
			return "", false
		}
		a.keys, a.size, a.mtime = parseAuthorizedKeys(b), st.Size(), st.ModTime()
	}
	comment, ok = a.keys[string(key.Marshal())]
	return comment, ok
}

// parseAuthorizedKeys reads every key of an authorized_keys file; lines
// that are not keys are skipped. Options (from=, command=...) are not
// supported: a key with options is skipped rather than trusted more
// widely than its line says.
func parseAuthorizedKeys(b []byte) map[string]string {
	out := make(map[string]string)
	for len(bytes.TrimSpace(b)) > 0 {
		key, comment, options, rest, err := ssh.ParseAuthorizedKey(b)
		if err != nil {
			break
		}
		if len(options) == 0 {
			out[string(key.Marshal())] = comment
		}
		b = rest
	}
	return out
}
