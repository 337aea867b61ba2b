package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseEnvFile(t *testing.T) {
	tests := []struct {
		name string
		line string
		key  string
		want string
	}{
		{"plain", "CLAWDSPACE_KEY=abc", "CLAWDSPACE_KEY", "abc"},
		{"export", "export CLAWDSPACE_KEY=abc", "CLAWDSPACE_KEY", "abc"},
		{"double quotes", `CLAWDSPACE_KEY="a b\"c"`, "CLAWDSPACE_KEY", `a b"c`},
		{"single quotes", `CLAWDSPACE_HOSTS='h1 h2'`, "CLAWDSPACE_HOSTS", "h1 h2"},
		{"comment after value", "CLAWDSPACE_KEY=abc # my key", "CLAWDSPACE_KEY", "abc"},
		{"hash inside quotes", `CLAWDSPACE_KEY="a#b # c"`, "CLAWDSPACE_KEY", "a#b # c"},
		{"spaces around", "  export   CLAWDSPACE_KEY=abc  ", "CLAWDSPACE_KEY", "abc"},
		{"comment line", "# CLAWDSPACE_KEY=abc", "CLAWDSPACE_KEY", ""},
		{"shell code ignored", "if [ -f x ]; then KEY=1; fi", "CLAWDSPACE_KEY", ""},
		{"empty value", "CLAWDSPACE_KEY=", "CLAWDSPACE_KEY", ""},
		{"concatenated quotes", `CLAWDSPACE_KEY='it'\''s'"x"y`, "CLAWDSPACE_KEY", "it's" + "xy"},
		{"escaped space", `CLAWDSPACE_KEY=a\ b`, "CLAWDSPACE_KEY", "a b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseEnvFile([]byte(tt.line + "\n"))[tt.key]; got != tt.want {
				t.Errorf("parseEnvFile(%q)[%s] = %q, want %q", tt.line, tt.key, got, tt.want)
			}
		})
	}
}

func TestNormalizeServer(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "oracle", want: "http://oracle:7777"},
		{in: "100.64.0.2", want: "http://100.64.0.2:7777"},
		{in: "box:8000", want: "http://box:8000"},
		{in: "::1", want: "http://[::1]:7777"},
		{in: "[::1]:9000", want: "http://[::1]:9000"},
		{in: "http://box:7777/", want: "http://box:7777"},
		{in: "https://cs.example.com/api", want: "https://cs.example.com"},
		{in: "http://box", want: "http://box"},
		{in: "ftp://box", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizeServer(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("NormalizeServer(%q) = %q, %v; want %q (error %v)", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestMaskKey(t *testing.T) {
	tests := []struct{ key, want string }{
		{"", "(not set)"},
		{"short", "*****"},
		{"test-key-0123456789abcdef", "test…cdef (25 characters)"},
	}
	for _, tt := range tests {
		if got := MaskKey(tt.key); got != tt.want {
			t.Errorf("MaskKey(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		code    int
		message string
	}{
		{"success", nil, 0, ""},
		{"error", errors.New("boom"), 1, "boom"},
		{"usage", usageErrorf("missing NAME"), 2, "missing NAME"},
		{"wrapped usage", fmt.Errorf("x: %w", &UsageError{Err: errors.New("bad flag")}), 2, "x: bad flag"},
		{"remote exit code", &ExitError{Code: 3}, 3, ""},
		{"timeout", &ExitError{Code: 124, Message: "timed out"}, 124, "timed out"},
		{"cancelled confirmation", ErrCancelled, 0, ""},
		{"interrupted", fmt.Errorf("exec: %w", context.Canceled), 130, ""},
		{"api error", &APIError{Status: 404, Message: "Space not found", Node: "vm"}, 1, "vm: Space not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExitCode(tt.err); got != tt.code {
				t.Errorf("ExitCode() = %d, want %d", got, tt.code)
			}
			if got := ErrorMessage(tt.err); got != tt.message {
				t.Errorf("ErrorMessage() = %q, want %q", got, tt.message)
			}
		})
	}
}

func TestAPIErrorIsOneLine(t *testing.T) {
	e := &APIError{Status: 400, Message: "invalid template yaml: unmarshal errors:\n  line 2: field foo not found", Node: "vm"}
	if got := e.Error(); strings.Contains(got, "\n") || !strings.Contains(got, "line 2: field foo") {
		t.Errorf("Error() = %q", got)
	}
	if got := (&APIError{Status: 401, Message: "Unauthorized: wrong API key"}).Error(); !strings.Contains(got, "CLAWDSPACE_KEY") {
		t.Errorf("401 gives no hint: %q", got)
	}
}

func TestLoadConfigPrecedence(t *testing.T) {
	home := t.TempDir()
	cfgFile := filepath.Join(home, "cfg", "clawdspace", "config")
	write := func(path, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(home, ".clawdspace"), "API_KEY=legacy-key-000000\nKNOWN_HOSTS=\"old1 old2\"\nCLAWDSPACE_URL=http://old:7777\n")
	tests := []struct {
		name      string
		env       map[string]string
		file      string
		wantKey   string
		keySource string
		wantHosts string
		server    string
	}{
		{"older file only", nil, "", "legacy-key-000000", filepath.Join(home, ".clawdspace"), "old1 old2", "http://old:7777"},
		{"config file wins over older file", nil, "CLAWDSPACE_KEY=new-key\nCLAWDSPACE_HOSTS=n1,n2\n", "new-key", cfgFile, "n1 n2", "http://old:7777"},
		{"environment wins", map[string]string{"CLAWDSPACE_KEY": "env-key", "CLAWDSPACE_SERVER": "s1"}, "CLAWDSPACE_KEY=new-key\n",
			"env-key", "$CLAWDSPACE_KEY", "old1 old2", "s1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(cfgFile)
			if tt.file != "" {
				write(cfgFile, tt.file)
			}
			env := map[string]string{"HOME": home, "XDG_CONFIG_HOME": filepath.Join(home, "cfg")}
			for k, v := range tt.env {
				env[k] = v
			}
			c, err := LoadConfig(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if c.Key != tt.wantKey || c.KeySource != tt.keySource || strings.Join(c.Hosts, " ") != tt.wantHosts || c.Server != tt.server {
				t.Errorf("got key %q from %q, hosts %q, server %q", c.Key, c.KeySource, c.Hosts, c.Server)
			}
			if c.File != cfgFile {
				t.Errorf("File = %q, want %q", c.File, cfgFile)
			}
		})
	}
}

func TestSetConfigValue(t *testing.T) {
	p := filepath.Join(t.TempDir(), "clawdspace", "config")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("# mine\nexport CLAWDSPACE_KEY=old\nOTHER=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		key, value string
		want       string
	}{
		{envKey, "it's new", "# mine\nCLAWDSPACE_KEY='it'\\''s new'\nOTHER=1\n"},
		{envHosts, "a b", "# mine\nCLAWDSPACE_KEY='it'\\''s new'\nOTHER=1\nCLAWDSPACE_HOSTS='a b'\n"},
		{envKey, "", "# mine\nOTHER=1\nCLAWDSPACE_HOSTS='a b'\n"},
	}
	for _, s := range steps {
		if err := setConfigValue(p, s.key, s.value); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		if string(b) != s.want {
			t.Fatalf("after setting %s=%q the file is\n%s\nwant\n%s", s.key, s.value, b, s.want)
		}
	}
	if got := parseEnvFile([]byte("CLAWDSPACE_KEY='it'\\''s new'\n"))[envKey]; got != "it's new" {
		t.Errorf("a written value reads back as %q", got)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}
