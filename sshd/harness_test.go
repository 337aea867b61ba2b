package sshd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/nodetest"
)

// sandboxImage has bash, stty, python3 and sftp-server (the busybox test
// image has none of them).
func sandboxImage() string {
	if v := os.Getenv("CLAWDSPACE_IMAGE"); v != "" {
		return v
	}
	return "clawdspace:latest"
}

// sshEnv is a real node in local mode with one authorized key, and the
// files the OpenSSH client needs to reach it.
type sshEnv struct {
	t         *testing.T
	n         *nodetest.Node
	dir       string
	key       string // private key file
	knownHost string // known_hosts file with the node's host key
	host      string
	port      string
}

// newSSHEnv starts a node with opt and authorizes a fresh ed25519 key.
func newSSHEnv(t *testing.T, opt nodetest.Options) *sshEnv {
	t.Helper()
	n := nodetest.Start(t, opt)
	e := &sshEnv{t: t, n: n, dir: t.TempDir()}
	e.host, e.port, _ = net.SplitHostPort(n.SSHAddr)
	e.key = e.newKey("me@test")
	pub, err := os.ReadFile(e.key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.SSHDir, "authorized_keys"), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	e.knownHost = filepath.Join(e.dir, "known_hosts")
	hostPub := hostKey(t, n)
	line := fmt.Sprintf("[%s]:%s %s", e.host, e.port, ssh.MarshalAuthorizedKey(hostPub))
	if err := os.WriteFile(e.knownHost, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// hostKey reads the node's host key from its data folder.
func hostKey(t *testing.T, n *nodetest.Node) ssh.PublicKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.SSHDir, "host_ed25519_key"))
	if err != nil {
		t.Fatalf("reading the host key: %v", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return signer.PublicKey()
}

// newKey makes a key pair with ssh-keygen and returns the private key's
// path.
func (e *sshEnv) newKey(comment string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, fmt.Sprintf("id_%d", time.Now().UnixNano()))
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", p).CombinedOutput(); err != nil {
		e.t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return p
}

// opts are the client options every run uses: no user config, this
// node's host key only, the test's key only, never a prompt.
func (e *sshEnv) opts(key string) []string {
	return []string{"-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + e.knownHost,
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=30"}
}

// ssh builds an ssh command for space: client options, then after "--"
// the remote command.
func (e *sshEnv) ssh(ctx context.Context, space string, args ...string) *exec.Cmd {
	var command []string
	for i, a := range args {
		if a == "--" {
			args, command = args[:i], args[i+1:]
			break
		}
	}
	a := append(e.opts(e.key), "-p", e.port)
	a = append(a, args...)
	a = append(a, space+"@"+e.host)
	a = append(a, command...)
	return exec.CommandContext(ctx, "ssh", a...)
}

// result is what one client run did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %q\nstderr: %q", r.code, trim(r.stdout), trim(r.stderr))
}

func trim(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}

// run runs cmd with stdin and waits (at most 3 minutes).
func run(t *testing.T, cmd *exec.Cmd, stdin io.Reader) result {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errOut
	if cmd.Cancel == nil {
		t.Fatal("run needs a command with a context")
	}
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %v: %v", cmd.Args, err)
	}
	return r
}

// newSpace makes a space from image through the API.
func newSpace(t *testing.T, n *nodetest.Node, base, image string) string {
	t.Helper()
	name := nodetest.Name(t, n.Engine, base)
	body := map[string]any{"name": name, "memory": "512m"}
	if image != "" {
		body["image"] = image
	}
	if r := n.Do(t, "POST", "/api/spaces", body); r.Status != 201 {
		t.Fatalf("creating %s: %d %s", name, r.Status, r.Body)
	}
	return name
}

// events reads the audit rows of space (oldest first).
func events(t *testing.T, n *nodetest.Node, query string) []api.Event {
	t.Helper()
	r := n.Do(t, "GET", "/api/audit?limit=500&"+query, nil)
	if r.Status != 200 {
		t.Fatalf("audit: %d %s", r.Status, r.Body)
	}
	var out struct {
		Events []api.Event `json:"events"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatal(err)
	}
	return out.Events
}

// findEvent returns the newest event of type typ that match accepts.
func findEvent(evs []api.Event, typ string, match func(api.Event) bool) (api.Event, bool) {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Type == typ && (match == nil || match(evs[i])) {
			return evs[i], true
		}
	}
	return api.Event{}, false
}

// waitFor polls cond until it holds or a minute passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	nodetest.WaitUntil(t, what, cond)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
