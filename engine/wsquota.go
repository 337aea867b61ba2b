package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/mount"
	"golang.org/x/sys/unix"

	"github.com/adam91holt/clawdspace/spaces"
)

// Workspace size limits need storage that can cap one folder. Docker's
// local volumes cannot, and this kernel family often lacks XFS and ext4
// project quotas (CONFIG_QUOTA), but btrfs quota groups work wherever
// btrfs does: a space whose template sets workspace.maxSize gets its
// workspace as a btrfs subvolume under Config.WorkspaceQuotaDir with a
// qgroup limit, bind-mounted through a local volume of the usual name.

// CheckWorkspaceQuotaDir says whether dir can hold size-limited
// workspaces: a folder on btrfs with quotas enabled, and the btrfs tool.
func CheckWorkspaceQuotaDir(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("workspace quota folder: %w", err)
	}
	if st.Type != unix.BTRFS_SUPER_MAGIC {
		return fmt.Errorf("workspace quota folder %s is not on btrfs", dir)
	}
	if _, err := exec.LookPath("btrfs"); err != nil {
		return errors.New("workspace quota folder: the btrfs tool (btrfs-progs) is missing")
	}
	if out, err := exec.Command("btrfs", "qgroup", "show", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("workspace quota folder %s: quotas are not enabled (btrfs quota enable %s): %s", dir, dir, strings.TrimSpace(string(out)))
	}
	return nil
}

// quotaPath is the subvolume of a size-limited workspace volume.
func (e *Engine) quotaPath(vname string) string { return filepath.Join(e.quotaDir, vname) }

// prepareQuotaVolume makes the limited subvolume of a new workspace and
// returns the mount that binds it as the space's volume.
func (e *Engine) prepareQuotaVolume(ctx context.Context, m mount.Mount, vname string, maxBytes int64) (mount.Mount, error) {
	p := e.quotaPath(vname)
	if out, err := exec.CommandContext(ctx, "btrfs", "subvolume", "create", p).CombinedOutput(); err != nil {
		return m, fmt.Errorf("creating workspace subvolume: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if err := os.Chown(p, spaces.SandboxUID, spaces.SandboxUID); err != nil {
		e.deleteQuotaVolume(vname)
		return m, fmt.Errorf("giving the workspace to the sandbox user: %w", err)
	}
	if out, err := exec.CommandContext(ctx, "btrfs", "qgroup", "limit", strconv.FormatInt(maxBytes, 10), p).CombinedOutput(); err != nil {
		e.deleteQuotaVolume(vname)
		return m, fmt.Errorf("limiting the workspace: %v: %s", err, strings.TrimSpace(string(out)))
	}
	m.VolumeOptions.DriverConfig = &mount.Driver{Name: "local", Options: map[string]string{"type": "none", "o": "bind", "device": p}}
	return m, nil
}

// deleteQuotaVolume removes a workspace subvolume, if there is one.
func (e *Engine) deleteQuotaVolume(vname string) {
	if e.quotaDir == "" {
		return
	}
	p := e.quotaPath(vname)
	if _, err := os.Stat(p); err != nil {
		return
	}
	if out, err := exec.Command("btrfs", "subvolume", "delete", p).CombinedOutput(); err != nil {
		e.log.Error("deleting workspace subvolume", "path", p, "err", err, "out", strings.TrimSpace(string(out)))
	}
}
