package api

import "github.com/adam91holt/clawdspace/spaces"

// Checkpoint is one checkpoint of a space.
type Checkpoint struct {
	Space   string `json:"space"`
	Name    string `json:"name"`
	Created string `json:"created"`
	// Image and Template are the space's when it was taken.
	Image    string `json:"image"`
	Template string `json:"template,omitempty"`
	// Size is WorkspaceBytes plus RootfsBytes.
	Size           int64 `json:"size"`
	WorkspaceBytes int64 `json:"workspaceBytes"`
	RootfsBytes    int64 `json:"rootfsBytes"`
}

// CheckpointFrom is cp as the API shows it.
func CheckpointFrom(cp spaces.Checkpoint) Checkpoint {
	return Checkpoint{
		Space: cp.Space, Name: cp.Name, Created: Time(cp.Created), Image: cp.Image, Template: cp.Template,
		Size: cp.Size(), WorkspaceBytes: cp.WorkspaceBytes, RootfsBytes: cp.RootfsBytes,
	}
}

// CheckpointList is GET /api/spaces/NAME/checkpoints.
type CheckpointList struct {
	Checkpoints []Checkpoint `json:"checkpoints"`
	// Limit is the most checkpoints the node keeps per space.
	Limit int `json:"limit"`
	// TotalBytes is the disk they use at most.
	TotalBytes int64 `json:"totalBytes"`
}

// CheckpointListFrom is l as the API shows it.
func CheckpointListFrom(l spaces.CheckpointList) CheckpointList {
	out := CheckpointList{Checkpoints: make([]Checkpoint, 0, len(l.Checkpoints)), Limit: l.Limit, TotalBytes: l.TotalBytes}
	for _, cp := range l.Checkpoints {
		out.Checkpoints = append(out.Checkpoints, CheckpointFrom(cp))
	}
	return out
}

// CreateCheckpoint is the body of POST /api/spaces/NAME/checkpoints.
type CreateCheckpoint struct {
	// Name is the checkpoint's name; empty numbers it.
	Name string `json:"name,omitempty"`
}

// CheckpointAnswer is the answer of POST /api/spaces/NAME/checkpoints.
type CheckpointAnswer struct {
	Checkpoint Checkpoint `json:"checkpoint"`
	// FrozenMs is how long the space was frozen (0 when it was paused or
	// stopped already).
	FrozenMs float64 `json:"frozenMs"`
}

// CheckpointAnswerFrom is t as the API shows it.
func CheckpointAnswerFrom(t spaces.CheckpointTaken) CheckpointAnswer {
	return CheckpointAnswer{Checkpoint: CheckpointFrom(t.Checkpoint), FrozenMs: float64(t.Frozen.Microseconds()) / 1000}
}
