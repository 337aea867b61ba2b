package node_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/adam91holt/clawdspace/engine"
	"github.com/adam91holt/clawdspace/nodetest"
)

// TestSpaceLogIsCapped: a space writing 50 MB to its own stdout leaves at
// most two log files of about 10 MB on the host.
func TestSpaceLogIsCapped(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := nodetest.Name(t, n.Engine, "logcap")
	createSpace(t, n, name, map[string]any{"template": "offline", "memory": "128m"})
	out := execIn(t, n, name, "dd if=/dev/zero bs=1048576 count=50 2>/dev/null | tr '\\0' a > /proc/1/fd/1")
	if out.ExitCode != 0 {
		t.Fatalf("writing to the container's stdout: %+v", out)
	}
	logPath := inspect(t, n, name).LogPath
	files, err := filepath.Glob(logPath + "*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no log files at %s: %v", logPath, err)
	}
	const perFile = 10<<20 + 64<<10 // max-size plus one entry
	var total int64
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > perFile {
			t.Errorf("log file %s has %d bytes, want at most %d", f, st.Size(), perFile)
		}
		total += st.Size()
	}
	if len(files) > 2 {
		t.Errorf("%d log files (%v), want at most 2", len(files), files)
	}
	if total < 10<<20 {
		t.Errorf("only %d bytes of log: the write did not reach the log, the test is broken", total)
	}
}

// TestWorkspaceMaxSize: templates validate workspace.maxSize and
// network.hostPorts; a node that cannot enforce the size refuses the
// create (nothing is left), unless it runs with --insecure-workspace-size.
func TestWorkspaceMaxSize(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	for _, tt := range []struct {
		name, yaml, want string
	}{
		{name: "bad size", yaml: "name: x\nworkspace:\n  maxSize: lots\n", want: "workspace.maxSize"},
		{name: "tiny size", yaml: "name: x\nworkspace:\n  maxSize: 10k\n", want: "minimum"},
		{name: "port 0", yaml: "name: x\nnetwork:\n  hostPorts: [0]\n", want: "network.hostPorts"},
		{name: "port too big", yaml: "name: x\nnetwork:\n  hostPorts: [70000]\n", want: "network.hostPorts"},
		{name: "too many ports", yaml: "name: x\nnetwork:\n  hostPorts: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]\n", want: "at most 16"},
		{name: "ports without network", yaml: "name: x\nnetwork:\n  mode: none\n  hostPorts: [80]\n", want: "mode is none"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := n.Do(t, http.MethodPut, "/api/templates", map[string]string{"yaml": tt.yaml})
			wantErrorContains(t, r, http.StatusBadRequest, tt.want)
		})
	}

	tpl := "name: sized\nnetwork:\n  mode: none\nworkspace:\n  maxSize: 1g\n"
	if r := n.Do(t, http.MethodPut, "/api/templates", map[string]string{"yaml": tpl}); r.Status != http.StatusOK {
		t.Fatalf("PUT template: %d %s", r.Status, r.Body)
	}
	name := nodetest.Name(t, n.Engine, "sized")
	r := n.Do(t, http.MethodPost, "/api/spaces", map[string]any{"name": name, "template": "sized", "memory": "64m"})
	wantErrorContains(t, r, http.StatusBadRequest, "cannot enforce", "workspace.maxSize", "--insecure-workspace-size")
	wantNothingLeft(t, n, name)

	loose := nodetest.Start(t, nodetest.Options{InsecureWorkspaceSize: true})
	if r := loose.Do(t, http.MethodPut, "/api/templates", map[string]string{"yaml": tpl}); r.Status != http.StatusOK {
		t.Fatalf("PUT template: %d %s", r.Status, r.Body)
	}
	createSpace(t, loose, name, map[string]any{"template": "sized", "memory": "64m"})
	if got := inspect(t, loose, name).Config.Labels["clawdspace.workspace.maxbytes"]; got != "1073741824" {
		t.Errorf("label clawdspace.workspace.maxbytes = %q, want 1073741824", got)
	}
	if !strings.Contains(inspect(t, loose, name).Config.Labels["clawdspace.template"], "sized") {
		t.Error("the space is not from the sized template")
	}
}

// btrfsQuotaDir mounts a small btrfs file system with quotas enabled (a
// loop device over a file in the test's temp folder) and unmounts it when
// the test ends.
func btrfsQuotaDir(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"mkfs.btrfs", "btrfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: run make test-deps (btrfs-progs)", tool)
		}
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "img"), filepath.Join(dir, "mnt")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("truncate", "-s", "400M", img)
	run("mkfs.btrfs", "-q", img)
	run("mkdir", mnt)
	run("mount", "-o", "loop", img, mnt)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	run("btrfs", "quota", "enable", mnt)
	return mnt
}

// TestWorkspaceMaxSizeEnforced: with a quota folder on btrfs, a space's
// workspace holds no more than its template's workspace.maxSize, and
// deleting the space removes its subvolume.
func TestWorkspaceMaxSizeEnforced(t *testing.T) {
	t.Parallel()
	quota := btrfsQuotaDir(t)
	if err := engine.CheckWorkspaceQuotaDir(quota); err != nil {
		t.Fatal(err)
	}
	if err := engine.CheckWorkspaceQuotaDir(t.TempDir()); err == nil {
		t.Error("a folder that is not on btrfs was accepted as the quota folder")
	}
	n := nodetest.Start(t, nodetest.Options{WorkspaceQuotaDir: quota})
	tpl := "name: sized\nnetwork:\n  mode: none\nworkspace:\n  maxSize: 50m\n"
	if r := n.Do(t, http.MethodPut, "/api/templates", map[string]string{"yaml": tpl}); r.Status != http.StatusOK {
		t.Fatalf("PUT template: %d %s", r.Status, r.Body)
	}
	name := nodetest.Name(t, n.Engine, "quota")
	createSpace(t, n, name, map[string]any{"template": "sized", "memory": "128m"})
	out := execIn(t, n, name, "dd if=/dev/zero of=/workspace/big bs=1048576 count=80; sync; stat -c %s /workspace/big; stat -c %U /workspace")
	if !strings.Contains(out.Stderr, "Disk quota exceeded") {
		t.Errorf("writing 80 MB into a 50 MB workspace: %+v, want a quota error", out)
	}
	if f := strings.Fields(out.Stdout); len(f) != 2 || f[1] != "sandbox" {
		t.Errorf("stat output %q, want the size and the owner sandbox", out.Stdout)
	} else if size, _ := strconv.ParseInt(f[0], 10, 64); size > 50<<20 {
		t.Errorf("the workspace holds %d bytes, more than 50 MB", size)
	}
	// Files still work below the limit.
	if out := execIn(t, n, name, "rm /workspace/big && echo ok > /workspace/small && cat /workspace/small"); out.Stdout != "ok\n" {
		t.Errorf("writing after freeing space: %+v", out)
	}
	sub := filepath.Join(quota, "clawdspace-vol-"+name)
	if _, err := os.Stat(sub); err != nil {
		t.Fatalf("no subvolume for the workspace: %v", err)
	}
	if r := n.Do(t, http.MethodDelete, "/api/spaces/"+name+"?removeVolume=true", nil); r.Status != http.StatusOK {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if _, err := os.Stat(sub); !os.IsNotExist(err) {
		t.Errorf("the workspace subvolume is still there after the delete (%v)", err)
	}
}
