package main

import (
	"context"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/adam91holt/clawdspace/nodetest"
)

func TestResolveAPIKey(t *testing.T) {
	dir := t.TempDir()
	k1, gen, err := resolveAPIKey(serveOptions{DataDir: dir})
	if err != nil || !gen || len(k1) < 40 {
		t.Fatalf("first start: %q, %v, %v", k1, gen, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "api-key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	k2, gen, err := resolveAPIKey(serveOptions{DataDir: dir})
	if err != nil || gen || k2 != k1 {
		t.Fatalf("second start: %q, %v, %v (want the stored key)", k2, gen, err)
	}
	if _, _, err := resolveAPIKey(serveOptions{DataDir: dir, APIKey: "short"}); err == nil {
		t.Fatal("a 5-character key was accepted")
	}
	if k, gen, err := resolveAPIKey(serveOptions{DataDir: dir, APIKey: "a-long-enough-key-123"}); err != nil || gen || k != "a-long-enough-key-123" {
		t.Fatalf("explicit key: %q, %v, %v", k, gen, err)
	}
	// Issue 11 item 8: weak keys and keys with whitespace around them.
	tests := []struct {
		name  string
		key   string
		allow bool
		want  string // "" when accepted
	}{
		{name: "one letter repeated", key: "aaaaaaaaaaaaaaaa", want: "too weak"},
		{name: "a word repeated", key: "passwordpassword", want: "too weak"},
		{name: "two letters", key: "abababababababababababab", want: "too weak"},
		{name: "weak, allowed", key: "aaaaaaaaaaaaaaaa", allow: true},
		{name: "trailing space", key: "a-long-enough-key-123 ", want: "whitespace"},
		{name: "leading tab", key: "\ta-long-enough-key-123", want: "whitespace"},
		{name: "trailing space, allowed weak", key: "aaaaaaaaaaaaaaaa ", allow: true, want: "whitespace"},
		{name: "random hex", key: "9f86d081884c7d659a2feaa0c55ad015", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := resolveAPIKey(serveOptions{DataDir: dir, APIKey: tt.key, AllowWeakKey: tt.allow})
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error = %v, want one saying %q", err, tt.want)
			}
		})
	}
	weakFile := t.TempDir()
	if err := os.WriteFile(filepath.Join(weakFile, "api-key"), []byte("aaaaaaaaaaaaaaaa\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := resolveAPIKey(serveOptions{DataDir: weakFile}); err == nil || !strings.Contains(err.Error(), "allow-weak-key") {
		t.Errorf("weak stored key: %v, want a refusal naming --allow-weak-key", err)
	}
}

func TestDefaultDataDir(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"explicit", map[string]string{"CLAWDSPACE_DATA_DIR": "/d", "HOME": "/h"}, "/d"},
		{"xdg", map[string]string{"XDG_DATA_HOME": "/x", "HOME": "/h"}, "/x/clawdspace"},
		{"home", map[string]string{"HOME": "/h"}, "/h/.local/share/clawdspace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaultDataDir(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Fatalf("defaultDataDir() = %q, want %q", got, tt.want)
			}
		})
	}
}

// syncBuffer is a goroutine-safe writer for the server's output.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeLocalMode starts `clawdspace serve` as a user would (through the
// command tree, on the real engine) and checks the first-start experience:
// loopback address, a generated key printed once with a dashboard link, and
// the key enforced.
func TestServeLocalMode(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"CLAWDSPACE_DATA_DIR": dir, "PORT": "0", "CLAWDSPACE_SSH_LISTEN": "127.0.0.1:0"}
	start := func() (url string, out *syncBuffer, stop func()) {
		out = &syncBuffer{}
		ctx, cancel := context.WithCancel(context.Background())
		cmd := newRootCmd(func(k string) string { return env[k] }, io.Discard, out)
		cmd.SetArgs([]string{"serve"})
		done := make(chan error, 1)
		go func() { done <- cmd.ExecuteContext(ctx) }()
		re := regexp.MustCompile(`Clawdspace node on (http://127\.0\.0\.1:\d+)`)
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if m := re.FindStringSubmatch(out.String()); m != nil {
				url = m[1]
				break
			}
			select {
			case err := <-done:
				t.Fatalf("serve ended early: %v\n%s", err, out.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
		if url == "" {
			t.Fatalf("serve printed no address:\n%s", out.String())
		}
		return url, out, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve returned %v", err)
			}
		}
	}

	url, out, stop := start()
	key, err := os.ReadFile(filepath.Join(dir, "api-key"))
	if err != nil {
		t.Fatal(err)
	}
	k := strings.TrimSpace(string(key))
	if !strings.Contains(out.String(), url+"/?key="+k) {
		t.Errorf("first start did not print the dashboard link with the key:\n%s", out.String())
	}
	get := func(path, key string) int {
		req, _ := http.NewRequest("GET", url+path, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("/api/health", ""); got != 200 {
		t.Errorf("health = %d", got)
	}
	if got := get("/api/spaces", ""); got != 401 {
		t.Errorf("spaces without key = %d", got)
	}
	if got := get("/api/spaces", k); got != 200 {
		t.Errorf("spaces with key = %d", got)
	}
	// SSH in local mode: on loopback, with a host key made once.
	if !regexp.MustCompile(`SSH on 127\.0\.0\.1:\d+ \(keys of `).MatchString(out.String()) {
		t.Errorf("serve did not say where SSH listens:\n%s", out.String())
	}
	hostKey, err := os.ReadFile(filepath.Join(dir, "ssh", "host_ed25519_key"))
	if err != nil {
		t.Fatalf("no SSH host key: %v", err)
	}
	stop()

	// A restart keeps the key and does not print it again; the SSH host
	// key is kept too.
	_, out, stop = start()
	if strings.Contains(out.String(), k) {
		t.Errorf("restart printed the key again:\n%s", out.String())
	}
	if again, err := os.ReadFile(filepath.Join(dir, "ssh", "host_ed25519_key")); err != nil || string(again) != string(hostKey) {
		t.Errorf("the SSH host key changed at restart (%v)", err)
	}
	stop()
}

func TestServeAuthDisabledWarns(t *testing.T) {
	env := map[string]string{"CLAWDSPACE_DATA_DIR": t.TempDir(), "PORT": "0", "CLAWDSPACE_SSH_LISTEN": "127.0.0.1:0", "CLAWDSPACE_AUTH_DISABLED": "true"}
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := newRootCmd(func(k string) string { return env[k] }, io.Discard, out)
	cmd.SetArgs([]string{"serve"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "auth disabled") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if !strings.Contains(out.String(), "AUTHENTICATION IS DISABLED") {
		t.Fatalf("no loud warning:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(env["CLAWDSPACE_DATA_DIR"], "api-key")); err == nil {
		t.Error("a key was generated although auth is disabled")
	}
}

func TestReadTemplates(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("name: Team\nresources: {memory: 1g}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readTemplates(dir)
	if err != nil || len(got) != 1 || got[0].Name != "team" || got[0].Resources.Memory != "1g" {
		t.Fatalf("readTemplates() = %+v, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.yml"), []byte("name: x\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readTemplates(dir); err == nil || !strings.Contains(err.Error(), "bad.yml") || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("bad template error = %v", err)
	}
}

func TestServeEnvSettings(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
		check   func(t *testing.T, o serveOptions)
	}{
		{"a flag wins over a bad variable", map[string]string{"IDLE_TIMEOUT_MS": "soon"}, []string{"--idle-timeout", "5m"}, "", func(t *testing.T, o serveOptions) {
			if o.IdleTimeout != 5*time.Minute {
				t.Errorf("idle = %v", o.IdleTimeout)
			}
		}},
		{"no token hosts", map[string]string{"CLAWDSPACE_GIT_TOKEN_HOSTS": "none"}, nil, "", func(t *testing.T, o serveOptions) {
			if h := tokenHosts(o.GitTokenHosts); h == nil || len(h) != 0 {
				t.Errorf("hosts = %v", h)
			}
		}},
		{"zero max file", nil, []string{"--max-file-bytes", "0"}, "max-file-bytes", nil},
		{"zero exec output", nil, []string{"--max-exec-output", "0"}, "max-exec-output", nil},
		{"bad exec output", map[string]string{"CLAWDSPACE_MAX_EXEC_OUTPUT": "lots"}, nil, "CLAWDSPACE_MAX_EXEC_OUTPUT", nil},
		{"defaults", map[string]string{}, nil, "", func(t *testing.T, o serveOptions) {
			if o.IdleTimeout != 10*time.Minute || o.HistoryInterval != 15*time.Second || o.MaxFileBytes != 10<<30 || o.MaxExecOutput != 256<<20 ||
				len(o.GitTokenHosts) != 1 || o.GitTokenHosts[0] != "github.com" || o.Listen != "127.0.0.1:7777" {
				t.Errorf("options = %+v", o)
			}
		}},
		{"from the environment", map[string]string{"IDLE_TIMEOUT_MS": "0", "HISTORY_INGEST_MS": "2500", "PORT": "8000",
			"CLAWDSPACE_MAX_FILE_BYTES": "1024", "CLAWDSPACE_MAX_EXEC_OUTPUT": "4096", "CLAWDSPACE_GIT_TOKEN_HOSTS": "github.com, git.example.com"}, nil, "", func(t *testing.T, o serveOptions) {
			if o.IdleTimeout != 0 || o.HistoryInterval != 2500*time.Millisecond || o.MaxFileBytes != 1024 || o.MaxExecOutput != 4096 ||
				len(o.GitTokenHosts) != 2 || o.GitTokenHosts[1] != "git.example.com" || o.Listen != "127.0.0.1:8000" {
				t.Errorf("options = %+v", o)
			}
		}},
		{"bad idle timeout", map[string]string{"IDLE_TIMEOUT_MS": "soon"}, nil, "IDLE_TIMEOUT_MS", nil},
		{"negative interval", map[string]string{"HISTORY_INGEST_MS": "-5"}, nil, "HISTORY_INGEST_MS", nil},
		{"bad max file", map[string]string{"CLAWDSPACE_MAX_FILE_BYTES": "0"}, nil, "CLAWDSPACE_MAX_FILE_BYTES", nil},
		{"bad ssh port variable", map[string]string{"CLAWDSPACE_SSH_PORT": "70000"}, nil, "CLAWDSPACE_SSH_PORT", nil},
		{"zero ssh port", nil, []string{"--ssh-port", "0"}, "ssh-port", nil},
		{"ssh defaults", map[string]string{}, nil, "", func(t *testing.T, o serveOptions) {
			if o.SSHPort != 22 || o.SSHListen != "127.0.0.1:2222" || o.NoSSH {
				t.Errorf("ssh options = %+v", o)
			}
		}},
		{"ssh from the environment", map[string]string{"CLAWDSPACE_SSH_PORT": "2022", "CLAWDSPACE_SSH_LISTEN": "127.0.0.1:2300", "CLAWDSPACE_NO_SSH": "true"}, nil, "", func(t *testing.T, o serveOptions) {
			if o.SSHPort != 2022 || o.SSHListen != "127.0.0.1:2300" || !o.NoSSH {
				t.Errorf("ssh options = %+v", o)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got serveOptions
			cmd := newServeCmd(func(k string) string { return tt.env[k] })
			cmd.RunE = func(*cobra.Command, []string) error {
				got.Listen, _ = cmd.Flags().GetString("listen")
				got.IdleTimeout, _ = cmd.Flags().GetDuration("idle-timeout")
				got.HistoryInterval, _ = cmd.Flags().GetDuration("history-interval")
				got.MaxFileBytes, _ = cmd.Flags().GetInt64("max-file-bytes")
				got.MaxExecOutput, _ = cmd.Flags().GetInt64("max-exec-output")
				got.GitTokenHosts, _ = cmd.Flags().GetStringSlice("git-token-hosts")
				got.SSHPort, _ = cmd.Flags().GetUint16("ssh-port")
				got.SSHListen, _ = cmd.Flags().GetString("ssh-listen")
				got.NoSSH, _ = cmd.Flags().GetBool("no-ssh")
				return nil
			}
			cmd.SetArgs(tt.args)
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			err := cmd.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, got)
		})
	}
}

// TestServeOnFullDisk: a node restarted on a full disk says so, not
// "disk I/O error".
func TestServeOnFullDisk(t *testing.T) {
	dir := nodetest.SmallDisk(t, "4m")
	env := map[string]string{"CLAWDSPACE_DATA_DIR": dir, "PORT": "0", "CLAWDSPACE_SSH_LISTEN": "127.0.0.1:0", "CLAWDSPACE_NAMESPACE": "cmdfull", "API_KEY": nodetest.Key}
	started := regexp.MustCompile(`Clawdspace node on (http://127\.0\.0\.1:\d+)`)
	_, out, stop, err := startServe(t, env, nil, started)
	if err != nil {
		t.Fatalf("first start: %v\n%s", err, out.String())
	}
	stop()
	nodetest.FillDisk(t, dir)
	_, out, stop, err = startServe(t, env, nil, started)
	if err == nil {
		stop()
		t.Fatalf("a node started on a full disk:\n%s", out.String())
	}
	if !strings.Contains(err.Error(), "the node's disk is full: its data folder "+dir+" has ") {
		t.Fatalf("start on a full disk: %v, want the node's disk is full", err)
	}
	t.Log(err)
}

func TestParseWarmPool(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want map[string]int
		bad  bool
	}{
		{name: "none", in: nil, want: map[string]int{}},
		{name: "two", in: []string{"default=3", " Offline = 1 "}, want: map[string]int{"default": 3, "offline": 1}},
		{name: "later wins", in: []string{"default=3", "default=0"}, want: map[string]int{"default": 0}},
		{name: "no size", in: []string{"default"}, bad: true},
		{name: "negative", in: []string{"default=-1"}, bad: true},
		{name: "too many", in: []string{"default=101"}, bad: true},
		{name: "bad template", in: []string{"../x=1"}, bad: true},
	}
	for _, tt := range tests {
		got, err := parseWarmPool(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && !maps.Equal(got, tt.want)) {
			t.Errorf("%s: parseWarmPool(%q) = %v, %v", tt.name, tt.in, got, err)
		}
	}
}
