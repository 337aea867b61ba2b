package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/adam91holt/clawdspace/nodetest"
)

// TestSSHThroughTheAPI connects the real OpenSSH client to a space through
// the entry `clawdspace ssh-config` prints: ProxyCommand `clawdspace
// ssh-proxy`, which carries SSH over the node's /api/ssh with the CLI's
// key (no SSH key at all), and the node's host key checked by its alias.
func TestSSHThroughTheAPI(t *testing.T) {
	e := newCLIEnv(t)
	name := e.space("sshproxy")

	r := e.ok(nil, "ssh-config", name)
	cfg := r.Stdout
	for _, want := range []string{"Host " + name + ".clawdspace\n", "  User " + name + "\n", "  ProxyCommand " + binPath + " ssh-proxy " + name + "\n", "  HostKeyAlias clawdspace-"} {
		if !strings.Contains(cfg, want) {
			t.Fatalf("ssh-config misses %q:\n%s", want, cfg)
		}
	}
	alias := strings.Fields(cfg[strings.Index(cfg, "HostKeyAlias"):])[1]

	// The node's host key under the alias, as a user would accept it on
	// first use.
	b, err := os.ReadFile(filepath.Join(e.node.DataDir, "ssh", "host_ed25519_key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, []byte(alias+" "+string(ssh.MarshalAuthorizedKey(signer.PublicKey()))), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "config")
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	sshRun := func(stdin []byte, args ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		a := append([]string{"-F", conf, "-o", "UserKnownHostsFile=" + known, "-o", "StrictHostKeyChecking=yes",
			"-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "IdentityFile=/dev/null", "-o", "IdentitiesOnly=yes"}, args...)
		cmd := exec.CommandContext(ctx, "ssh", a...)
		// ssh-proxy reads the CLI's configuration from the environment.
		cmd.Env = e.environ()
		var out, errOut bytes.Buffer
		cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &out, &errOut
		err := cmd.Run()
		res := result{Stdout: out.String(), Stderr: errOut.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			res.Code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := sshRun([]byte("from-stdin"), name+".clawdspace", "cat; echo; echo err >&2; id -u; exit 5")
	if res.Code != 5 || res.Stdout != "from-stdin\n1001\n" || res.Stderr != "err\n" {
		t.Errorf("a command through ssh-proxy: %s", res)
	}
	res = sshRun([]byte("echo in-a-shell\nexit 4\n"), "-tt", name+".clawdspace")
	if res.Code != 4 || !strings.Contains(res.Stdout, "in-a-shell") {
		t.Errorf("a shell through ssh-proxy: %s", res)
	}

	// The connection is the API caller's: an ssh.open row with the tunnel
	// mark.
	var audit struct {
		Events []struct {
			Type  string         `json:"type"`
			Actor string         `json:"actor"`
			Meta  map[string]any `json:"meta"`
		} `json:"events"`
	}
	e.node.Do(t, "GET", "/api/audit?space="+name, nil).JSON(t, &audit)
	found := false
	for _, ev := range audit.Events {
		if ev.Type == "ssh.open" && ev.Actor == "api-key" && ev.Meta["tunnel"] == true && ev.Meta["door"] == "ssh" {
			found = true
		}
	}
	if !found {
		t.Errorf("no ssh.open row by api-key through the tunnel: %+v", audit.Events)
	}

	// A wrong key is refused by the API before any SSH.
	e.env["CLAWDSPACE_KEY"] = "cs_wrong-key-0123456789abcdef"
	res = sshRun(nil, name+".clawdspace", "true")
	if res.Code != 255 || !strings.Contains(res.Stderr, "401") && !strings.Contains(strings.ToLower(res.Stderr), "unauthorized") {
		t.Errorf("a wrong API key: %s", res)
	}
	e.env["CLAWDSPACE_KEY"] = nodetest.Key
}

// TestSSHConfigBlocks checks the entries for a node reached on the tailnet
// (HostName, no proxy) and with --proxy, without a node.
func TestSSHConfigBlocks(t *testing.T) {
	tail := &Client{BaseURL: "http://100.64.0.7:7777", Name: "gpu-box"}
	o := &SSHConfigOptions{Port: 22, Program: "clawdspace"}
	got := sshConfigBlock(sshEntry{space: "dev", c: tail}, o)
	want := "# Clawdspace: space dev on node gpu-box (docs/SSH.md)\nHost dev.clawdspace\n  User dev\n  HostName 100.64.0.7\n  HostKeyAlias clawdspace-gpu-box\n  ServerAliveInterval 30\n"
	if got != want {
		t.Errorf("tailnet entry:\n%s\nwant:\n%s", got, want)
	}
	o.Proxy, o.Server = true, "my node"
	got = sshConfigBlock(sshEntry{space: "dev", c: tail}, o)
	if !strings.Contains(got, "  ProxyCommand clawdspace ssh-proxy --server 'my node' dev\n") {
		t.Errorf("--proxy entry:\n%s", got)
	}
	local := &Client{BaseURL: "http://127.0.0.1:7777", Name: "127.0.0.1:7777"}
	got = sshConfigBlock(sshEntry{space: "dev", c: local}, &SSHConfigOptions{Port: 22, Program: "clawdspace"})
	if !strings.Contains(got, "ProxyCommand clawdspace ssh-proxy dev") || !strings.Contains(got, "HostKeyAlias clawdspace-127.0.0.1\n") {
		t.Errorf("a node off the tailnet gets the proxy:\n%s", got)
	}
}

// fixedNodes answers every node question with one client.
type fixedNodes struct{ c *Client }

func (f fixedNodes) Target(context.Context, string) (*Client, error) { return f.c, nil }
func (f fixedNodes) OnlineClients(context.Context) ([]*Client, []string, error) {
	return []*Client{f.c}, nil, nil
}

// TestSSHConfigSkipsHostileNames: a node's list goes into ~/.ssh/config
// and a ProxyCommand; a name that is not a valid space name (a newline
// and a config line, say) is left out, and one given on the command line
// is refused.
func TestSSHConfigSkipsHostileNames(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"spaces":[{"name":"dev"},{"name":"x\n  ProxyCommand touch /tmp/owned"},{"name":"a;b"}]}`)
	}))
	defer srv.Close()
	var out strings.Builder
	o := &SSHConfigOptions{
		IO:    &IO{In: strings.NewReader(""), Out: &out, ErrOut: io.Discard},
		Nodes: fixedNodes{&Client{BaseURL: srv.URL, Name: "n1", HTTP: srv.Client()}},
		Port:  22, Program: "/opt/my tools/clawdspace",
	}
	if err := sshConfigRun(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.Contains(got, "Host dev.clawdspace\n") || strings.Contains(got, "owned") || strings.Contains(got, "a;b") {
		t.Errorf("ssh-config from a hostile list:\n%s", got)
	}
	if !strings.Contains(got, "ProxyCommand '/opt/my tools/clawdspace' ssh-proxy dev\n") {
		t.Errorf("the program path is not quoted:\n%s", got)
	}
	o.Names = []string{"x\nProxyCommand y"}
	if err := sshConfigRun(t.Context(), o); err == nil {
		t.Error("a bad name on the command line was accepted")
	}
}
