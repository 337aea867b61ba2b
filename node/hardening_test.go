package node_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/adam91holt/clawdspace/nodetest"
)

func TestSpaceContainerIsHardened(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := nodetest.Name(t, n.Engine, "hard")
	createSpace(t, n, name, map[string]any{"memory": "300m", "cpus": 0.5})
	c := inspect(t, n, name)
	cfg, h := c.Config, c.HostConfig

	checks := []struct {
		name      string
		got, want any
	}{
		{name: "user", got: cfg.User, want: "1001:1001"},
		{name: "working dir", got: cfg.WorkingDir, want: "/workspace"},
		{name: "cmd", got: strings.Join(cfg.Cmd, " "), want: "sleep infinity"},
		{name: "hostname", got: cfg.Hostname, want: name},
		{name: "image", got: cfg.Image, want: nodetest.TestImage},
		{name: "cap drop", got: strings.Join(h.CapDrop, ","), want: "ALL"},
		{name: "cap add", got: len(h.CapAdd), want: 0},
		{name: "privileged", got: h.Privileged, want: false},
		{name: "no-new-privileges", got: slices.Contains(h.SecurityOpt, "no-new-privileges") || slices.Contains(h.SecurityOpt, "no-new-privileges:true"), want: true},
		{name: "pids limit", got: ptrValue(h.PidsLimit), want: int64(512)},
		{name: "restart policy", got: string(h.RestartPolicy.Name), want: "no"},
		{name: "health check", got: healthTest(cfg), want: "NONE"},
		{name: "log driver", got: h.LogConfig.Type, want: "json-file"},
		{name: "log max-size", got: h.LogConfig.Config["max-size"], want: "10m"},
		{name: "log max-file", got: h.LogConfig.Config["max-file"], want: "2"},
		{name: "memory", got: h.Memory, want: int64(300 << 20)},
		{name: "nano cpus", got: h.NanoCPUs, want: int64(5e8)},
		{name: "read-only rootfs", got: h.ReadonlyRootfs, want: false},
		{name: "label kind", got: cfg.Labels["clawdspace.kind"], want: "space"},
		{name: "label space", got: cfg.Labels["clawdspace.space"], want: name},
		{name: "label volume", got: cfg.Labels["clawdspace.volume"], want: "clawdspace-vol-" + name},
		{name: "label template", got: cfg.Labels["clawdspace.template"], want: "default"},
		{name: "label network mode", got: cfg.Labels["clawdspace.network.mode"], want: "internet"},
		{name: "network mode", got: string(h.NetworkMode) != "none", want: true},
		{name: "device requests", got: len(h.DeviceRequests), want: 0},
	}
	for _, tt := range checks {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	for _, dir := range []string{"/tmp", "/run"} {
		if _, ok := h.Tmpfs[dir]; !ok {
			t.Errorf("no tmpfs on %s (tmpfs: %v)", dir, h.Tmpfs)
		}
	}
	var mounted bool
	for _, m := range c.Mounts {
		if m.Destination == "/workspace" {
			mounted = true
			if m.Name != "clawdspace-vol-"+name || string(m.Type) != "volume" || !m.RW {
				t.Errorf("workspace mount = %+v, want the writable volume clawdspace-vol-%s", m, name)
			}
		}
	}
	if !mounted {
		t.Errorf("nothing mounted on /workspace: %+v", c.Mounts)
	}

	out := execIn(t, n, name, "touch /workspace/f && stat -c %u /workspace/f && id -u && hostname && pwd")
	if out.ExitCode != 0 || out.Stdout != "1001\n1001\n"+name+"\n/workspace\n" {
		t.Errorf("exec = %+v, want the sandbox user (1001) writing /workspace on host %s", out, name)
	}
	// Dropped capabilities: even chown of the user's own file to root fails.
	if out := execIn(t, n, name, "chown 0 /workspace/f"); out.ExitCode == 0 {
		t.Errorf("chown to root succeeded: %+v", out)
	}
}

// healthTest is the container's health check command, joined.
func healthTest(cfg *container.Config) string {
	if cfg.Healthcheck == nil {
		return "<image default>"
	}
	return strings.Join(cfg.Healthcheck.Test, " ")
}

func ptrValue[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestTemplatesApplyToSpaces(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})

	t.Run("offline", func(t *testing.T) {
		name := nodetest.Name(t, n.Engine, "offline")
		createSpace(t, n, name, map[string]any{"template": "offline", "memory": "64m"})
		c := inspect(t, n, name)
		if got := string(c.HostConfig.NetworkMode); got != "none" {
			t.Errorf("network mode = %q, want none", got)
		}
		if got := c.Config.Labels["clawdspace.network.mode"]; got != "none" {
			t.Errorf("label network.mode = %q, want none", got)
		}
		if got := c.Config.Labels["clawdspace.template"]; got != "offline" {
			t.Errorf("label template = %q, want offline", got)
		}
		// The request's memory wins over the template's 2g.
		if c.HostConfig.Memory != 64<<20 {
			t.Errorf("memory = %d, want %d", c.HostConfig.Memory, 64<<20)
		}
	})

	t.Run("read-only rootfs", func(t *testing.T) {
		tpl := "name: ro-test\ndescription: read-only root\nresources:\n  memory: 256m\n  cpus: 0.5\nsecurity:\n  writableRootfs: false\n"
		res := n.Do(t, http.MethodPut, "/api/templates", map[string]string{"yaml": tpl})
		if res.Status != http.StatusOK {
			t.Fatalf("PUT template: %d %s", res.Status, res.Body)
		}
		name := nodetest.Name(t, n.Engine, "ro")
		sp := createSpace(t, n, name, map[string]any{"template": "ro-test"})
		if sp.Memory != 256<<20 || sp.CPUs != 0.5 {
			t.Errorf("space memory %d cpus %v, want the template's %d and 0.5", sp.Memory, sp.CPUs, 256<<20)
		}
		c := inspect(t, n, name)
		if !c.HostConfig.ReadonlyRootfs {
			t.Error("ReadonlyRootfs = false, want true")
		}
		if c.HostConfig.Memory != 256<<20 {
			t.Errorf("memory = %d, want %d", c.HostConfig.Memory, 256<<20)
		}
		if got := c.Config.Labels["clawdspace.template"]; got != "ro-test" {
			t.Errorf("label template = %q, want ro-test", got)
		}
		// /home/sandbox belongs to the sandbox user: only the read-only root stops the write.
		out := execIn(t, n, name, "touch /home/sandbox/x")
		if out.ExitCode == 0 {
			t.Errorf("writing outside /workspace succeeded: %+v", out)
		} else if !strings.Contains(strings.ToLower(out.Stderr), "read-only") {
			t.Errorf("writing outside /workspace failed with %q, want a read-only file system error", out.Stderr)
		}
		out = execIn(t, n, name, "echo a > /workspace/a && echo b > /tmp/b && cat /workspace/a /tmp/b")
		if out.ExitCode != 0 || out.Stdout != "a\nb\n" {
			t.Errorf("writing /workspace and /tmp: %+v, want success", out)
		}
	})
}
