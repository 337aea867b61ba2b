package node_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
)

const (
	gitToken   = "s3cret-Token-42"
	gitSrvRoot = "/home/sandbox/srv"
)

// gitServer runs git over HTTPS in a sibling container that the test makes
// itself (the clawdspace:latest image has git and python3), and answers
// only requests carrying gitToken.
type gitServer struct {
	n    *nodetest.Node
	id   string
	host string // ip:port
}

func sandboxImage() string {
	if v := os.Getenv("CLAWDSPACE_IMAGE"); v != "" {
		return v
	}
	return "clawdspace:latest"
}

func startGitServer(t *testing.T, n *nodetest.Node) *gitServer {
	t.Helper()
	ctx, raw := context.Background(), n.Raw()
	cr, err := raw.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: "clawdspace-testgit-" + strings.TrimPrefix(nodetest.Name(t, n.Engine, "srv"), "t-"),
		Config: &container.Config{Image: sandboxImage(), User: "1001:1001", Cmd: []string{"sleep", "infinity"},
			Labels: map[string]string{"clawdspace.test": "git-server"}},
	})
	if err != nil {
		t.Fatalf("creating git server (run `make image`): %v", err)
	}
	t.Cleanup(func() {
		_, _ = raw.ContainerRemove(context.Background(), cr.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	})
	if _, err := raw.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	ins, err := raw.ContainerInspect(ctx, cr.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ip string
	for _, nw := range ins.Container.NetworkSettings.Networks {
		if nw.IPAddress.IsValid() {
			ip = nw.IPAddress.String()
		}
	}
	if ip == "" {
		t.Fatal("git server has no address")
	}
	g := &gitServer{n: n, id: cr.ID, host: ip + ":8443"}
	certPEM, keyPEM := selfSignedCert(t, ip)
	script, err := os.ReadFile("testdata/git-server.py")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "srv/", Mode: 0o755, Uid: 1001, Gid: 1001, ModTime: time.Now()})
	for _, f := range []struct {
		name string
		data []byte
	}{{"srv/cert.pem", certPEM}, {"srv/key.pem", keyPEM}, {"srv/git-server.py", script}} {
		_ = tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o600, Size: int64(len(f.data)), Uid: 1001, Gid: 1001, ModTime: time.Now()})
		_, _ = tw.Write(f.data)
	}
	_ = tw.Close()
	if _, err := raw.CopyToContainer(ctx, cr.ID, client.CopyToContainerOptions{DestinationPath: "/home/sandbox", Content: &buf}); err != nil {
		t.Fatal(err)
	}
	g.exec(t, `set -e
git init -q --bare `+gitSrvRoot+`/private.git
git -C `+gitSrvRoot+`/private.git config http.receivepack true
git -C `+gitSrvRoot+`/private.git symbolic-ref HEAD refs/heads/main
git init -q /tmp/seed && cd /tmp/seed
git -c user.email=t@example.com -c user.name=t commit -q --allow-empty -m init
echo hello > README && git add README
git -c user.email=t@example.com -c user.name=t commit -q -m readme
git push -q `+gitSrvRoot+`/private.git HEAD:refs/heads/main`)
	start, err := raw.ExecCreate(ctx, cr.ID, client.ExecCreateOptions{Cmd: []string{"python3", gitSrvRoot + "/git-server.py", gitSrvRoot, "8443", gitToken}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecStart(ctx, start.ID, client.ExecStartOptions{Detach: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "git server answers", 30*time.Second, func() bool {
		out := g.exec(t, "curl -skf -o /dev/null -w %{http_code} -u x-access-token:"+gitToken+" 'https://127.0.0.1:8443/private.git/info/refs?service=git-upload-pack' || true")
		return out == "200"
	})
	return g
}

// exec runs a shell script in the git server container.
func (g *gitServer) exec(t *testing.T, script string) string {
	t.Helper()
	ctx, raw := context.Background(), g.n.Raw()
	cr, err := raw.ExecCreate(ctx, g.id, client.ExecCreateOptions{Cmd: []string{"bash", "-c", script}, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	att, err := raw.ExecAttach(ctx, cr.ID, client.ExecAttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	out, _ := io.ReadAll(att.Reader)
	ins, err := raw.ExecInspect(ctx, cr.ID, client.ExecInspectOptions{})
	if err != nil || ins.ExitCode != 0 {
		t.Fatalf("git server script failed (%v, exit %d): %q", err, ins.ExitCode, out)
	}
	// Strip the 8-byte stream headers of the multiplexed output.
	var clean []byte
	for len(out) >= 8 {
		size := int(out[4])<<24 | int(out[5])<<16 | int(out[6])<<8 | int(out[7])
		if 8+size > len(out) {
			break
		}
		clean, out = append(clean, out[8:8+size]...), out[8+size:]
	}
	return strings.TrimSpace(string(clean))
}

func selfSignedCert(t *testing.T, ip string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test git"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// TestCreateWithRepoAndEnvFile clones a private repository with the token
// from env.GITHUB_TOKEN, writes an env file, and leaves the token nowhere.
func TestCreateWithRepoAndEnvFile(t *testing.T) {
	probe := nodetest.Start(t, nodetest.Options{})
	g := startGitServer(t, probe)
	n := nodetest.Start(t, nodetest.Options{GitTokenHosts: []string{g.host}})
	url := "https://" + g.host + "/private.git"
	env := map[string]string{"GITHUB_TOKEN": gitToken, "GIT_SSL_NO_VERIFY": "true"}

	t.Run("clone and env file", func(t *testing.T) {
		name := nodetest.Name(t, n.Engine, "clone")
		r := n.Do(t, "POST", "/api/spaces", map[string]any{"name": name, "image": sandboxImage(), "template": "lan", "env": env,
			"repoUrl": url, "repoBranch": "main", "repoDest": "src/app",
			"envFileText": "API_URL=http://example.invalid\n", "envFilePath": "/workspace/config/.env"})
		if r.Status != http.StatusCreated {
			t.Fatalf("create = %d %s", r.Status, r.Body)
		}
		if out, code := sh(t, n, name, "cat /workspace/src/app/README && stat -c '%a %u' /workspace/config/.env /workspace/src/app/README && cat /workspace/config/.env"); code != 0 ||
			out != "hello\n600 1001\n644 1001\nAPI_URL=http://example.invalid\n" {
			t.Fatalf("workspace:\n%s", out)
		}
		if out, _ := shEnv(t, n, name, map[string]string{"NEEDLE": gitToken}, "grep -r \"$NEEDLE\" /workspace /home/sandbox 2>/dev/null; cat /workspace/src/app/.git/config"); strings.Contains(out, gitToken) || strings.Contains(out, "extraHeader") {
			t.Fatalf("the token was left behind:\n%s", out)
		}
		if body := string(n.Do(t, "GET", "/api/audit?limit=1000", nil).Body); strings.Contains(body, gitToken) {
			t.Fatal("the token is in the audit log")
		}
		if log := g.exec(t, "cat "+gitSrvRoot+"/auth.log"); !strings.Contains(log, "Basic ") {
			t.Fatalf("the server never saw credentials:\n%s", log)
		}
	})
	t.Run("failed clone leaves nothing", func(t *testing.T) {
		name := nodetest.Name(t, n.Engine, "badclone")
		bad := map[string]string{"GITHUB_TOKEN": "wrong-token", "GIT_SSL_NO_VERIFY": "true"}
		r := n.Do(t, "POST", "/api/spaces", map[string]any{"name": name, "image": sandboxImage(), "template": "lan", "env": bad, "repoUrl": url})
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Map(t)["error"].(string), "cloning") || strings.Contains(string(r.Body), "wrong-token") {
			t.Fatalf("create = %d %s", r.Status, r.Body)
		}
		wantNothingLeft(t, n, name)
	})
	t.Run("refused inputs", func(t *testing.T) {
		for _, body := range []map[string]any{
			{"repoUrl": url, "template": "offline"},
			{"repoUrl": "http://" + g.host + "/private.git"},
			{"repoUrl": "-uhttps://x"},
			{"repoUrl": "file:///etc"},
			{"repoUrl": url, "repoBranch": "--upload-pack=touch /tmp/x"},
			{"repoUrl": url, "repoDest": "/etc"},
			{"repoUrl": url, "repoDest": "a/../../b"},
			{"envFileText": "A=1", "envFileBase64": "QT0x"},
			{"envFileText": "A=1", "envFilePath": "/etc/env"},
			{"envFileBase64": "***"},
		} {
			name := nodetest.Name(t, n.Engine, "refused")
			body["name"] = name
			if r := n.Do(t, "POST", "/api/spaces", body); r.Status != http.StatusBadRequest {
				t.Errorf("%v = %d %s", body, r.Status, r.Body)
			}
			wantNothingLeft(t, n, name)
		}
	})
}

// TestGitPush pushes a commit with a token and refuses hostile values:
// every field goes into argv, never a shell.
func TestGitPush(t *testing.T) {
	probe := nodetest.Start(t, nodetest.Options{})
	g := startGitServer(t, probe)
	n := nodetest.Start(t, nodetest.Options{GitTokenHosts: []string{g.host}})
	name := nodetest.Name(t, n.Engine, "push")
	r := n.Do(t, "POST", "/api/spaces", map[string]any{"name": name, "image": sandboxImage(), "template": "lan",
		"env": map[string]string{"GIT_SSL_NO_VERIFY": "true"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("create = %d %s", r.Status, r.Body)
	}
	repoURL := "https://x-access-token:$TOK@" + g.host + "/private.git"
	if out, code := shEnv(t, n, name, map[string]string{"TOK": gitToken}, "git clone -q "+repoURL+" /workspace/repo && cd /workspace/repo && git remote set-url origin https://"+g.host+"/private.git"+
		" && echo change > file && git add file && git -c user.email=a@b.c -c user.name=A commit -qm change"); code != 0 {
		t.Fatalf("setup: %s", out)
	}
	push := func(body map[string]any) nodetest.Response {
		return n.Do(t, "POST", "/api/spaces/"+name+"/git/push", body)
	}
	hostile := []map[string]any{
		{"repoPath": "/repo", "remote": "--upload-pack=touch /tmp/pwned", "branch": "main", "token": gitToken},
		{"repoPath": "/repo", "remote": "origin", "branch": "main; touch /tmp/pwned", "token": gitToken},
		{"repoPath": "/repo", "remote": "origin", "branch": "$(touch /tmp/pwned)", "token": gitToken},
		{"repoPath": "/repo", "remote": "origin", "branch": "--exec=touch /tmp/pwned", "token": gitToken},
		{"repoPath": "/repo; touch /tmp/pwned", "remote": "origin", "branch": "main", "token": gitToken},
		{"repoPath": "/../tmp", "remote": "origin", "branch": "main", "token": gitToken},
		{"repoPath": "/repo", "remote": "origin", "branch": "main", "token": "x\r\nX-Evil: 1"},
		{"repoPath": "/repo", "remote": "origin`touch /tmp/pwned`", "branch": "main", "token": gitToken},
	}
	for _, h := range hostile {
		if r := push(h); r.Status != http.StatusBadRequest {
			t.Errorf("hostile push %v = %d %s", h, r.Status, r.Body)
		}
	}
	if out, _ := sh(t, n, name, "ls /tmp/pwned /workspace/pwned 2>&1 || true"); !strings.Contains(out, "No such file") {
		t.Fatalf("a hostile value ran a command: %s", out)
	}

	r = push(map[string]any{"repoPath": "/repo", "remote": "origin", "branch": "main", "token": "wrong"})
	if m := r.Map(t); r.Status != http.StatusBadRequest || !strings.Contains(m["error"].(string), "git push failed") ||
		m["exitCode"] == float64(0) || m["stderr"] == "" {
		t.Fatalf("push with a wrong token = %d %s", r.Status, r.Body)
	}
	// A remote on a host the owner did not allow never gets the token.
	if out, code := sh(t, n, name, "git -C /workspace/repo remote add evil https://192.0.2.1/x.git"); code != 0 {
		t.Fatal(out)
	}
	if r := push(map[string]any{"repoPath": "/repo", "remote": "evil", "branch": "main", "token": gitToken}); r.Status != http.StatusForbidden {
		t.Fatalf("push to a host outside the token hosts = %d %s", r.Status, r.Body)
	}
	r = push(map[string]any{"repoPath": "/repo", "remote": "origin", "branch": "main", "token": gitToken})
	if r.Status != http.StatusOK || r.Map(t)["exitCode"] != float64(0) {
		t.Fatalf("push = %d %s", r.Status, r.Body)
	}
	if strings.Contains(string(r.Body), gitToken) {
		t.Fatal("the push answer holds the token")
	}
	if out, _ := sh(t, n, name, "ls /workspace/hook-env 2>&1 || true"); !strings.Contains(out, "No such file") {
		t.Fatalf("the repository's pre-push hook ran with the token: %s", out)
	}
	if log := g.exec(t, "git -C "+gitSrvRoot+"/private.git log --format=%s main"); !strings.HasPrefix(log, "change") {
		t.Fatalf("server log after push: %q", log)
	}
	if out, _ := shEnv(t, n, name, map[string]string{"NEEDLE": gitToken}, "cat /workspace/repo/.git/config; grep -r \"$NEEDLE\" /workspace/repo/.git 2>/dev/null"); strings.Contains(out, gitToken) {
		t.Fatalf("token written to disk:\n%s", out)
	}
	if body := string(n.Do(t, "GET", "/api/audit?limit=1000&space="+name, nil).Body); strings.Contains(body, gitToken) || !strings.Contains(body, "space.git.push") {
		t.Fatalf("audit: %s", body)
	}

	// Code in the space took over the agent's socket and records every
	// exec it is asked for: the push's token never reaches it (a command
	// carrying credentials goes through the Engine API).
	hijack(t, n, name, "recorder")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(asRoot(t, n, name, "cat /tmp/spy 2>/dev/null || true"), `"true"`) {
		if time.Now().After(deadline) {
			t.Fatal("the recorder never connected")
		}
		execIn(t, n, name, "true")
		time.Sleep(50 * time.Millisecond)
	}
	if r := push(map[string]any{"repoPath": "/repo", "remote": "origin", "branch": "main", "token": gitToken}); r.Status != http.StatusOK {
		t.Fatalf("push with a hijacked agent = %d %s", r.Status, r.Body)
	}
	cred := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + gitToken))
	if spied := asRoot(t, n, name, "cat /tmp/spy"); !strings.Contains(spied, "get-url") || strings.Contains(spied, gitToken) || strings.Contains(spied, cred) || strings.Contains(spied, "extraHeader") {
		t.Fatalf("what the recorder saw: %.500q", spied)
	}
}

// shEnv runs a shell command with extra environment variables, which the
// audit log never records (only the command).
func shEnv(t *testing.T, n *nodetest.Node, name string, env map[string]string, cmd string) (string, int) {
	t.Helper()
	var out struct {
		Stdout, Stderr string
		ExitCode       int
	}
	r := n.Do(t, "POST", "/api/spaces/"+name+"/exec", map[string]any{"command": cmd, "env": env})
	if r.Status != http.StatusOK {
		t.Fatalf("exec %q = %d %s", cmd, r.Status, r.Body)
	}
	r.JSON(t, &out)
	return out.Stdout + out.Stderr, out.ExitCode
}
