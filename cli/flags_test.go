package cli

import (
	"io"
	"strings"
	"testing"
	"time"
)

// testDeps are Deps with no network and no real configuration.
func testDeps() *Deps {
	return &Deps{
		IO:     &IO{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard},
		Config: func() (*Config, error) { return &Config{Hosts: []string{"127.0.0.1:1"}}, nil },
	}
}

// TestCreateFlags parses create's flags into its options through runF, as
// the older CLI's users type them.
func TestCreateFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want CreateOptions
	}{
		{"name only: resources left to the template", []string{"dev"}, CreateOptions{Name: "dev"}},
		{"short flags", []string{"dev", "-s", "gpu-box", "-t", "ml", "-m", "8g", "-c", "2", "-g"},
			CreateOptions{Name: "dev", Server: "gpu-box", Template: "ml", Memory: "8g", CPUs: 2, GPU: true, MemorySet: true, CPUsSet: true, GPUSet: true}},
		{"long flags", []string{"--server", "http://h:1", "--template", "lan", "--memory", "512m", "--cpus", "0.5", "--gpu", "dev"},
			CreateOptions{Name: "dev", Server: "http://h:1", Template: "lan", Memory: "512m", CPUs: 0.5, GPU: true, MemorySet: true, CPUsSet: true, GPUSet: true}},
		{"repository", []string{"dev", "--repo", "https://github.com/a/b.git", "--branch", "main", "--dest", "src", "--github-token", "tok"},
			CreateOptions{Name: "dev", Repo: "https://github.com/a/b.git", Branch: "main", Dest: "src", Token: "tok"}},
		{"token from stdin", []string{"dev", "--github-token-stdin", "--json"}, CreateOptions{Name: "dev", TokenStdin: true, JSON: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *CreateOptions
			cmd := NewCmdCreate(testDeps(), func(o *CreateOptions) error { got = o; return nil })
			cmd.SetArgs(tt.args)
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			got.IO, got.Printer, got.Nodes, got.Spaces = nil, nil, nil, nil
			if *got != tt.want {
				t.Errorf("options = %+v\nwant      %+v", *got, tt.want)
			}
		})
	}
}

// TestOtherFlags checks the flags of the commands the older CLI had, and
// those of the new ones, through runF.
func TestOtherFlags(t *testing.T) {
	d := testDeps()
	t.Run("exec stops parsing at the space name", func(t *testing.T) {
		var got *ExecOptions
		cmd := NewCmdExec(d, func(o *ExecOptions) error { got = o; return nil })
		cmd.SetArgs([]string{"--timeout", "5s", "-e", "A=1", "-n", "dev", "ls", "-la", "--timeout", "x"})
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		if got.Name != "dev" || strings.Join(got.Command, " ") != "ls -la --timeout x" || got.Timeout != 5*time.Second || !got.NoStdin || got.Env[0] != "A=1" {
			t.Errorf("options = %+v", got)
		}
	})
	t.Run("exec NAME -- CMD: the -- ends the flags", func(t *testing.T) {
		for _, args := range [][]string{{"dev", "--", "ls", "-la"}, {"-e", "A=1", "--", "dev", "ls", "-la"}, {"dev", "ls", "-la"}} {
			var got *ExecOptions
			cmd := NewCmdExec(d, func(o *ExecOptions) error { got = o; return nil })
			cmd.SetArgs(args)
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			if got.Name != "dev" || strings.Join(got.Command, " ") != "ls -la" {
				t.Errorf("%q: options = %+v", args, got)
			}
		}
		cmd := NewCmdExec(d, func(o *ExecOptions) error { t.Error("ran without a command"); return nil })
		cmd.SetArgs([]string{"dev", "--"})
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "missing COMMAND") {
			t.Errorf("exec dev -- = %v, want a usage error", err)
		}
	})
	t.Run("destroy -f --volume", func(t *testing.T) {
		var got *LifecycleOptions
		cmd := NewCmdDestroy(d, func(o *LifecycleOptions) error { got = o; return nil })
		cmd.SetArgs([]string{"dev", "-f", "--volume", "-s", "box"})
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		if got.Name != "dev" || !got.Force || !got.Volume || got.Server != "box" {
			t.Errorf("options = %+v", got)
		}
	})
	t.Run("servers -r", func(t *testing.T) {
		var got *ServersOptions
		cmd := NewCmdServers(d, func(o *ServersOptions) error { got = o; return nil })
		cmd.SetArgs([]string{"-r"})
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		if !got.Refresh {
			t.Errorf("options = %+v", got)
		}
	})
	t.Run("audit", func(t *testing.T) {
		var got *AuditOptions
		cmd := NewCmdAudit(d, func(o *AuditOptions) error { got = o; return nil })
		cmd.SetArgs([]string{"--space", "dev", "-l", "7", "-f"})
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		if got.Space != "dev" || got.Limit != 7 || !got.Follow || got.Interval != 2*time.Second {
			t.Errorf("options = %+v", got)
		}
	})
}
