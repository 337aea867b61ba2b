package api_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
)

func TestCreateSpaceJSON(t *testing.T) {
	cpus, gpu, text := 1.5, false, "A=1\n"
	tests := []struct {
		name string
		req  spaces.CreateRequest
		want string
	}{
		{name: "name only", req: spaces.CreateRequest{Name: "a"}, want: `{"name":"a"}`},
		{
			name: "all set",
			req: spaces.CreateRequest{Name: "a", Memory: "2g", CPUs: &cpus, GPU: &gpu, Template: "lan",
				EnvFileText: &text, RepoURL: "https://x/y.git", RepoBranch: "main"},
			want: `{"name":"a","memory":"2g","cpus":1.5,"gpu":false,"template":"lan","envFileText":"A=1\n","repoUrl":"https://x/y.git","repoBranch":"main"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(api.CreateSpaceFrom(tt.req))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got  %s\nwant %s", b, tt.want)
			}
		})
	}
}

func TestCreateSpaceDecode(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		memory  string
		cpus    *float64
		wantErr string
	}{
		{name: "numbers", body: `{"memory":512,"cpus":2}`, memory: "512", cpus: ptr(2.0)},
		{name: "strings", body: `{"memory":"1g","cpus":"0.5"}`, memory: "1g", cpus: ptr(0.5)},
		{name: "unset", body: `{"cpus":null}`},
		{name: "empty cpus", body: `{"cpus":""}`},
		{name: "bad cpus", body: `{"cpus":"many"}`, wantErr: "cpus must be a number"},
		{name: "bad memory", body: `{"memory":true}`, wantErr: `memory must be a string such as "2g"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c api.CreateSpace
			err := json.Unmarshal([]byte(tt.body), &c)
			if tt.wantErr != "" {
				if msg, _ := api.ErrorMessage(err); msg != tt.wantErr || !errors.Is(err, spaces.ErrInvalid) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d := c.Domain()
			if d.Memory != tt.memory || (d.CPUs == nil) != (tt.cpus == nil) || (d.CPUs != nil && *d.CPUs != *tt.cpus) {
				t.Errorf("memory %q cpus %v, want %q %v", d.Memory, d.CPUs, tt.memory, tt.cpus)
			}
		})
	}
}

func TestExecRequestDomain(t *testing.T) {
	ms := func(v int64) *int64 { return &v }
	tests := []struct {
		name    string
		req     api.ExecRequest
		cmd     []string
		timeout time.Duration
		wantErr string
	}{
		{name: "string", req: api.ExecRequest{Command: api.ShellCommand("ls -l")}, cmd: []string{"sh", "-c", "ls -l"}},
		{name: "argv", req: api.ExecRequest{Command: json.RawMessage(`["ls","-l"]`)}, cmd: []string{"ls", "-l"}},
		{name: "missing: the service says it is required", req: api.ExecRequest{}},
		{name: "empty string", req: api.ExecRequest{Command: api.ShellCommand("")}},
		{name: "wrong shape", req: api.ExecRequest{Command: json.RawMessage(`{"a":1}`)}, wantErr: "command must be a string or a non-empty array of strings"},
		{name: "timeout", req: api.ExecRequest{TimeoutMs: ms(1500)}, timeout: 1500 * time.Millisecond},
		{name: "zero timeout is out of range", req: api.ExecRequest{TimeoutMs: ms(0)}, timeout: -1},
		{name: "huge timeout saturates", req: api.ExecRequest{TimeoutMs: ms(1 << 62)}, timeout: 1<<63 - 1},
		{name: "two stdins", req: api.ExecRequest{Stdin: new(string), StdinBase64: new(string)}, wantErr: "give stdin or stdinBase64, not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := tt.req.Domain()
			if tt.wantErr != "" {
				if msg, _ := api.ErrorMessage(err); msg != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(in.Cmd) != len(tt.cmd) || in.Timeout != tt.timeout {
				t.Errorf("cmd %q timeout %v, want %q %v", in.Cmd, in.Timeout, tt.cmd, tt.timeout)
			}
		})
	}
}

// TestErrorMessage: a domain error about a field is worded with the
// field's JSON name by the API and with the domain's word by the domain.
func TestErrorMessage(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		api, domain string
		field       spaces.Field
	}{
		{name: "named", err: spaces.ValidateRepoURL("ftp://x"), api: "repoUrl must be https://… or user@host:path",
			domain: "repository URL must be https://… or user@host:path", field: spaces.FieldRepoURL},
		{name: "same word", err: spaces.ValidateName(""), api: "name is required", domain: "name is required", field: spaces.FieldName},
		{name: "about a field", err: spaces.SpaceExists(), api: "Space already exists", domain: "Space already exists", field: spaces.FieldName},
		{name: "no field", err: spaces.SpaceNotFound(), api: "Space not found", domain: "Space not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := api.ErrorMessage(tt.err)
			dom, _ := spaces.Message(tt.err)
			if !ok || got != tt.api || dom != tt.domain || spaces.FieldOf(tt.err) != tt.field {
				t.Errorf("api %q, domain %q, field %q; want %q, %q, %q", got, dom, spaces.FieldOf(tt.err), tt.api, tt.domain, tt.field)
			}
		})
	}
	if _, ok := api.ErrorMessage(errors.New("internal")); ok {
		t.Error("an error without a client-safe message has one")
	}
}

func TestSpaceFrom(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.FixedZone("x", 3600))
	b, err := json.Marshal(api.SpaceFrom(spaces.Space{Name: "a", ID: "abc", Status: spaces.StatusRunning, Created: created, Volume: "v"}))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"a","id":"abc","status":"running","created":"2026-01-02T02:04:05.006Z","started":"","image":"","memory":0,"cpus":0,"gpu":false,"lastActivity":"","volume":{"name":"v","mountpoint":"/workspace"}}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

func ptr[T any](v T) *T { return &v }
