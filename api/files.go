package api

import (
	"fmt"

	"github.com/adam91holt/clawdspace/spaces"
)

// FileEntry is one entry of a folder listing. Path is shown with a
// leading "/" for /workspace.
type FileEntry struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Type    string `json:"type"`
	Size    int64  `json:"size"`
	MtimeMs int64  `json:"mtimeMs"`
	Mode    string `json:"mode,omitempty"`
}

// FileEntryFrom is e as the contract shows it.
func FileEntryFrom(e spaces.FileInfo) FileEntry {
	return FileEntry{
		Name: e.Name, Path: spaces.DisplayPath(e.Path), Type: string(e.Type), Size: e.Size,
		MtimeMs: e.MTime.UnixMilli(), Mode: fmt.Sprintf("%04o", e.Mode),
	}
}

// FileList is GET /api/spaces/NAME/files.
type FileList struct {
	Path    string      `json:"path"`
	Entries []FileEntry `json:"entries"`
}

// FileContent is GET /api/spaces/NAME/file without raw=true.
type FileContent struct {
	Path          string `json:"path"`
	ContentBase64 string `json:"contentBase64"`
	Truncated     bool   `json:"truncated"`
	Size          int64  `json:"size"`
}

// WriteFile is the JSON body of PUT /api/spaces/NAME/file.
type WriteFile struct {
	ContentBase64 *string `json:"contentBase64"`
}

// WriteFileAnswer is the answer of PUT /api/spaces/NAME/file.
type WriteFileAnswer struct {
	Message string `json:"message"`
	Size    int64  `json:"size"`
}

// Mkdir is the body of POST /api/spaces/NAME/mkdir.
type Mkdir struct {
	Path string `json:"path"`
}

// GitPush is the body of POST /api/spaces/NAME/git/push. The token is
// used for this push only and never stored.
type GitPush struct {
	RepoPath string `json:"repoPath"`
	Remote   string `json:"remote"`
	Branch   string `json:"branch"`
	Token    string `json:"token"`
}

// Domain is the service's request.
func (g GitPush) Domain() spaces.PushRequest {
	return spaces.PushRequest{RepoPath: g.RepoPath, Remote: g.Remote, Branch: g.Branch, Token: g.Token}
}

// GitPushAnswer is the answer of a push: git's output, and Error when
// git ran and failed.
type GitPushAnswer struct {
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	ExitCode int    `json:"exitCode"`
	Error    string `json:"error,omitempty"`
}
