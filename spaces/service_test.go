package spaces_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/store"
)

// fakeEngine records specs and simulates a paused space; the same rules run
// against the real engine in the node package's tests.
type fakeEngine struct {
	spaces.Engine
	mu      sync.Mutex
	created []spaces.ContainerSpec
	paused  map[string]bool
	resumes int
}

func (f *fakeEngine) Create(_ context.Context, spec spaces.ContainerSpec) (spaces.Space, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, spec)
	return spaces.Space{Name: spec.Name, Status: spaces.StatusRunning}, nil
}

func (f *fakeEngine) Exec(_ context.Context, name string, _ spaces.ExecSpec) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.paused[name] {
		return 0, spaces.ErrNotRunning
	}
	return 5, nil
}

func (f *fakeEngine) Resume(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused[name] = false
	f.resumes++
	return nil
}

func newService(t *testing.T, eng *fakeEngine, hasGPU bool) (*spaces.Service, *store.Store) {
	t.Helper()
	st, err := store.New(t.Context(), store.Config{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := spaces.New(t.Context(), spaces.Config{Engine: eng, Store: st, DefaultImage: "def:img", GPUImage: "gpu:img", HostCPUs: 8, HostMemory: 4 << 30, HasGPU: hasGPU})
	if err != nil {
		t.Fatal(err)
	}
	return svc, st
}

func TestCreateResolvesTemplate(t *testing.T) {
	tests := []struct {
		name    string
		tplYAML string
		req     spaces.CreateRequest
		want    spaces.ContainerSpec
		wantErr error
	}{
		{
			name: "node defaults through the default template",
			req:  spaces.CreateRequest{Name: "a"},
			want: spaces.ContainerSpec{Name: "a", Image: "def:img", MemoryBytes: 2 << 30, CPUs: 1, NetworkMode: "internet", Template: "default"},
		},
		{
			name:    "template fills what the request leaves out",
			tplYAML: "name: small\nresources: {memory: 256m, cpus: 0.5, image: tpl:img}\nnetwork: {mode: none}\nsecurity: {writableRootfs: false}\n",
			req:     spaces.CreateRequest{Name: "b", Template: "Small"},
			want:    spaces.ContainerSpec{Name: "b", Image: "tpl:img", MemoryBytes: 256 << 20, CPUs: 0.5, NetworkMode: "none", ReadOnlyRootfs: true, Template: "small"},
		},
		{
			name:    "request wins over template",
			tplYAML: "name: small2\nresources: {memory: 256m, cpus: 0.5, image: tpl:img}\n",
			req:     spaces.CreateRequest{Name: "c", Template: "small2", Memory: "1g", CPUs: new(2.0), Image: "req:img", Env: map[string]string{"B": "2", "A": "1"}},
			want:    spaces.ContainerSpec{Name: "c", Image: "req:img", MemoryBytes: 1 << 30, CPUs: 2, NetworkMode: "internet", Template: "small2", Env: []string{"A=1", "B=2"}},
		},
		{
			name:    "gpu template needs a gpu",
			req:     spaces.CreateRequest{Name: "d", Template: "gpu"},
			wantErr: spaces.ErrInvalid,
		},
		{
			name:    "unknown template",
			req:     spaces.CreateRequest{Name: "e", Template: "nope"},
			wantErr: spaces.ErrNotFound,
		},
		{
			name:    "request turns a template's gpu off",
			tplYAML: "name: maybe-gpu\nresources: {gpu: true}\n",
			req:     spaces.CreateRequest{Name: "g2", Template: "maybe-gpu", GPU: new(false)},
			want:    spaces.ContainerSpec{Name: "g2", Image: "def:img", MemoryBytes: 2 << 30, CPUs: 1, NetworkMode: "internet", Template: "maybe-gpu"},
		},
		{
			name:    "explicit zero cpus",
			req:     spaces.CreateRequest{Name: "z", CPUs: new(0.0)},
			wantErr: spaces.ErrInvalid,
		},
		{
			name:    "memory beyond the host",
			req:     spaces.CreateRequest{Name: "m", Memory: "8g"},
			wantErr: spaces.ErrInvalid,
		},
		{
			name:    "cpus beyond the host",
			req:     spaces.CreateRequest{Name: "f", CPUs: new(9.0)},
			wantErr: spaces.ErrInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eng := &fakeEngine{paused: map[string]bool{}}
			svc, _ := newService(t, eng, false)
			if tt.tplYAML != "" {
				if _, err := svc.PutTemplate(t.Context(), spaces.CallerLocal(), tt.tplYAML); err != nil {
					t.Fatal(err)
				}
			}
			_, err := svc.Create(t.Context(), spaces.CallerAPIKey(), tt.req)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Create() = %v, want %v", err, tt.wantErr)
				}
				if len(eng.created) != 0 {
					t.Fatalf("engine asked to create %v after a refused request", eng.created)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := eng.created[0]
			if got.Name != tt.want.Name || got.Image != tt.want.Image || got.MemoryBytes != tt.want.MemoryBytes ||
				got.CPUs != tt.want.CPUs || got.NetworkMode != tt.want.NetworkMode || got.ReadOnlyRootfs != tt.want.ReadOnlyRootfs ||
				got.Template != tt.want.Template || len(got.Env) != len(tt.want.Env) {
				t.Fatalf("spec = %+v\nwant   %+v", got, tt.want)
			}
			for i := range got.Env {
				if got.Env[i] != tt.want.Env[i] {
					t.Fatalf("env = %v, want %v", got.Env, tt.want.Env)
				}
			}
		})
	}
}

func TestGPUSpaceUsesGPUImage(t *testing.T) {
	eng := &fakeEngine{paused: map[string]bool{}}
	svc, _ := newService(t, eng, true)
	if _, err := svc.Create(t.Context(), spaces.CallerAPIKey(), spaces.CreateRequest{Name: "g", GPU: new(true)}); err != nil {
		t.Fatal(err)
	}
	if got := eng.created[0]; !got.GPU || got.Image != "gpu:img" {
		t.Fatalf("spec = %+v", got)
	}
}

func TestExecResumesPausedSpaceOnce(t *testing.T) {
	eng := &fakeEngine{paused: map[string]bool{"p": true}}
	svc, st := newService(t, eng, false)
	res, err := svc.Exec(t.Context(), spaces.CallerAPIKey(), "p", spaces.ExecRequest{Cmd: []string{"true"}})
	if err != nil || res.ExitCode != 5 || eng.resumes != 1 {
		t.Fatalf("Exec() = %+v, %v after %d resumes", res, err, eng.resumes)
	}
	events, err := st.Events(t.Context(), spaces.AuditQuery{Space: "p", Limit: 10})
	if err != nil || len(events) != 1 || events[0].Type != spaces.EventExec || events[0].Actor != "api-key" {
		t.Fatalf("events = %+v, %v", events, err)
	}
}

func TestCreateNeverStoresEnvValues(t *testing.T) {
	eng := &fakeEngine{paused: map[string]bool{}}
	svc, st := newService(t, eng, false)
	if _, err := svc.Create(t.Context(), spaces.CallerAPIKey(), spaces.CreateRequest{Name: "s", Env: map[string]string{"GITHUB_TOKEN": "ghp_secret"}}); err != nil {
		t.Fatal(err)
	}
	events, _ := st.Events(t.Context(), spaces.AuditQuery{Limit: 10})
	for _, e := range events {
		for k, v := range e.Meta {
			if s, ok := v.(string); ok && s == "ghp_secret" {
				t.Fatalf("event %s meta %s holds the secret", e.Type, k)
			}
		}
		if keys, ok := e.Meta["envKeys"].([]any); ok && (len(keys) != 1 || keys[0] != "GITHUB_TOKEN") {
			t.Fatalf("envKeys = %v", keys)
		}
	}
}
