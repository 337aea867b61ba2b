package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/nodetest"
)

// startServe starts `clawdspace serve` through the command tree and waits
// until it prints want, or until it ends (then ended is its error).
func startServe(t *testing.T, env map[string]string, args []string, want *regexp.Regexp) (m []string, out *syncBuffer, stop func(), ended error) {
	t.Helper()
	out = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := newRootCmd(func(k string) string { return env[k] }, io.Discard, out)
	cmd.SetArgs(append([]string{"serve"}, args...))
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if m = want.FindStringSubmatch(out.String()); m != nil {
			return m, out, func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serve returned %v", err)
				}
			}, nil
		}
		select {
		case err := <-done:
			cancel()
			return nil, out, func() {}, err
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	<-done
	t.Fatalf("serve printed no %s:\n%s", want, out.String())
	return nil, nil, nil, nil
}

// TestServeTailnetMode joins a real tsnet device to an in-process tailnet
// through `serve`, as a user would: the first start logs in with an auth
// key, a restart reuses the saved login, and people on the tailnet are
// identified (no grant: refused).
func TestServeTailnetMode(t *testing.T) {
	ctl := nodetest.StartControl(t)
	env := map[string]string{
		"CLAWDSPACE_DATA_DIR": t.TempDir(), "PORT": "0", "CLAWDSPACE_SSH_LISTEN": "127.0.0.1:0", "TS_CONTROL_URL": ctl.URL,
		"CLAWDSPACE_NAMESPACE": "cmd", "API_KEY": nodetest.Key,
	}
	onTailnet := regexp.MustCompile(`On the tailnet as cmd-node: (http://100\.[0-9.]+:7777)`)

	bad := map[string]string{"TS_AUTHKEY": "tskey-wrong"}
	for k, v := range env {
		bad[k] = v
	}
	_, out, _, err := startServe(t, bad, []string{"--hostname", "cmd-node"}, onTailnet)
	if err == nil || !strings.Contains(err.Error(), "auth key was refused") {
		t.Fatalf("a bad auth key gave %v, want a clear refusal\n%s", err, out.String())
	}

	// A control server that, like Tailscale's, lets a device with a saved
	// login back in without a key.
	ctl = nodetest.StartControlAnyKey(t)
	env["TS_CONTROL_URL"] = ctl.URL
	env["TS_AUTHKEY"] = ctl.AuthKey
	m, _, stop, err := startServe(t, env, []string{"--hostname", "cmd-node"}, onTailnet)
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	dev := ctl.Join(t, "dave-laptop")
	call := func(url, path string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", url+path, nil)
		res, err := dev.HTTPClient().Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	code, body := call(m[1], "/api/health")
	var h struct{ Status, Node string }
	if json.Unmarshal([]byte(body), &h); code != 200 || h.Node != "cmd-node" {
		t.Fatalf("health over the tailnet: %d %s", code, body)
	}
	if code, body := call(m[1], "/api/spaces"); code != 403 {
		t.Fatalf("spaces without a grant: %d %s", code, body)
	}
	stop()

	// The login is kept: --tailnet without a key comes back up.
	delete(env, "TS_AUTHKEY")
	m, _, stop, err = startServe(t, env, []string{"--hostname", "cmd-node", "--tailnet"}, onTailnet)
	if err != nil {
		t.Fatalf("restart with the saved login: %v", err)
	}
	if code, body := call(m[1], "/api/health"); code != 200 {
		t.Fatalf("health after restart: %d %s", code, body)
	}
	stop()
}

func TestParseNodes(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"", 0, false},
		{"a=http://h:7777, b=https://h2:7777", 2, false},
		{"a", 0, true},
		{"=http://h:7777", 0, true},
		{"a=ftp://h", 0, true},
	}
	for _, tt := range tests {
		got, err := parseNodes(tt.in)
		if (err != nil) != tt.wantErr || len(got) != tt.want {
			t.Errorf("parseNodes(%q) = %v, %v", tt.in, got, err)
		}
	}
}
