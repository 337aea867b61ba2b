package cli

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/nodetest"
)

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"bogus"}, `unknown command "bogus"`},
		{"unknown flag", []string{"list", "--bogus"}, "unknown flag: --bogus"},
		{"unknown shorthand", []string{"create", "x", "-Z"}, "unknown shorthand flag: 'Z'"},
		{"bad flag value", []string{"create", "x", "--cpus", "many"}, `invalid argument "many"`},
		{"missing name", []string{"create"}, "missing NAME"},
		{"missing command", []string{"exec", "dev"}, "missing COMMAND"},
		{"too many arguments", []string{"stop", "a", "b"}, "too many arguments"},
		{"unknown subcommand", []string{"files", "bogus"}, `unknown command "bogus" for "clawdspace files"`},
		{"two token flags", []string{"create", "x", "--github-token", "t", "--github-token-stdin"}, "not both"},
		{"branch without repo", []string{"create", "x", "--branch", "main"}, "--branch and --dest need --repo"},
		{"audit limit", []string{"audit", "--limit", "0"}, "--limit must be between 1 and 1000"},
		{"bad env", []string{"exec", "-e", "NOEQUALS", "dev", "true"}, "must be NAME=VALUE"},
		{"config setting", []string{"config", "set", "colour", "red"}, `unknown setting "colour"`},
		{"serve flag", []string{"serve", "--bogus"}, "unknown flag: --bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			oneLineError(t, e.run(nil, tt.args...), 2, tt.want)
		})
	}
	if r := e.run(nil); r.Code != 0 || !strings.Contains(r.Stdout, "Available Commands") {
		t.Errorf("no arguments: %s", r)
	}
	if r := e.run(nil, "files"); r.Code != 0 || !strings.Contains(r.Stdout, "Available Commands") {
		t.Errorf("files alone: %s", r)
	}
}

func TestWrongKeyAndUnreachable(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	name := e.space("auth")

	wrong := newBareEnv(t)
	wrong.env["CLAWDSPACE_HOSTS"] = e.node.URL
	wrong.env["CLAWDSPACE_KEY"] = "wrong-key-wrong-key"
	noKey := newBareEnv(t)
	noKey.env["CLAWDSPACE_HOSTS"] = e.node.URL

	// A port that was free a moment ago: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	down := newBareEnv(t)
	down.env["CLAWDSPACE_HOSTS"] = dead
	down.env["CLAWDSPACE_KEY"] = "whatever-key-000"

	tests := []struct {
		name string
		env  *cliEnv
		args []string
		want string
	}{
		{"wrong key list", wrong, []string{"list"}, "Unauthorized: wrong API key"},
		{"wrong key exec", wrong, []string{"exec", name, "true"}, "Unauthorized: wrong API key"},
		{"wrong key files", wrong, []string{"files", "get", name, "/x", "-"}, "Unauthorized: wrong API key"},
		{"no key", noKey, []string{"templates", "ls"}, "missing API key"},
		{"unreachable host list", down, []string{"list"}, "cannot reach http://" + dead + ": connection refused"},
		{"unreachable host exec", down, []string{"exec", name, "true"}, "cannot reach http://" + dead},
		{"unreachable --server", e, []string{"system", "--server", dead}, "cannot reach http://" + dead},
		{"unreachable --server url", e, []string{"stop", "--server", "http://" + dead, name}, "cannot reach http://" + dead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.env.run(nil, tt.args...)
			oneLineError(t, r, 1, tt.want)
			if k := tt.env.env["CLAWDSPACE_KEY"]; k != "" && strings.Contains(r.Stderr, k) {
				t.Errorf("the error shows the key: %s", r)
			}
		})
	}
}

// TestWrongKeyRateLimited: once a node slows down an address that sent
// wrong keys, the CLI says so and when to come back, not a bare 429.
func TestWrongKeyRateLimited(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{AuthFreeFailures: 1, AuthBackoff: time.Hour})
	wrong := newBareEnv(t)
	wrong.env["CLAWDSPACE_HOSTS"] = n.URL
	wrong.env["CLAWDSPACE_KEY"] = "wrong-key-wrong-key"
	// The first wrong key is free; a run may send more than one request.
	oneLineError(t, wrong.run(nil, "system"), 1, "")
	r := wrong.run(nil, "list")
	oneLineError(t, r, 1, "refuses keys from this address for 300 s")
	if !strings.Contains(r.Stderr, "after too many wrong API keys") || !strings.Contains(r.Stderr, "CLAWDSPACE_KEY") {
		t.Errorf("429 message: %s", r)
	}
}
