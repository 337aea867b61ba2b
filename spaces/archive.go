package spaces

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Audit events of archives.
const (
	EventExport = "space.export"
	EventImport = "space.import"
)

// exportPrefix names the implicit checkpoint of an export of a space.
const exportPrefix = "_export-"

// ArchiveVersion is the version of the archive format this node writes
// and reads.
const ArchiveVersion = 1

// ArchiveManifest is manifest.json, the first entry of a space's archive:
// the settings a create needs to make the space again. Env values are not
// in it: the node never stores them.
type ArchiveManifest struct {
	Version    int       `json:"version"`
	Space      string    `json:"space"`
	Checkpoint string    `json:"checkpoint,omitempty"`
	Created    time.Time `json:"created"`
	// Image is the image the space was made with; the archive holds only
	// the layers of the checkpoint on top of it, so the importing node
	// must have it.
	Image       string  `json:"image"`
	Template    string  `json:"template,omitempty"`
	Memory      int64   `json:"memory"`
	CPUs        float64 `json:"cpus"`
	GPU         bool    `json:"gpu,omitempty"`
	NetworkMode string  `json:"networkMode,omitempty"`
}

// ArchiveEngine is what archives need of an Engine.
type ArchiveEngine interface {
	// Export writes the archive of a space's checkpoint to w: a tar of
	// manifest.json, the image's layers above its first image (image/...)
	// and the workspace (workspace/...).
	Export(ctx context.Context, space, checkpoint string, w io.Writer) error
	// Import makes a space from an archive read from r: resolve turns the
	// manifest into the space's spec (and records the intent) before
	// anything is made. On any failure nothing is left (ErrDiskFull on a
	// full disk, ErrInvalid for an archive it cannot read).
	// Entries of the archive larger than maxBytes in all (when > 0) are
	// refused with ErrTooLarge.
	Import(ctx context.Context, r io.Reader, maxBytes int64, resolve func(ArchiveManifest) (ContainerSpec, error)) (Space, error)
}

// Export writes the archive of a space, or of one of its checkpoints, to
// w. It needs checkpoint and files on the space. Of a space, it takes an implicit checkpoint (the space is frozen a
// moment) and removes it after.
func (s *Service) Export(ctx context.Context, c Caller, space, checkpoint string, w io.Writer) error {
	// The archive holds every file of the space: checkpoint and files.
	if err := s.authorize(ctx, c, space, ActCheckpoint); err != nil {
		return err
	}
	if err := s.authorize(ctx, c, space, ActFiles); err != nil {
		return err
	}
	if ValidateName(space) != nil {
		return SpaceNotFound()
	}
	if checkpoint != "" && ValidateCheckpointName(checkpoint) != nil {
		return CheckpointNotFound(space, checkpoint)
	}
	ce := s.cfg.Engine
	unlock := s.locks.Lock(space)
	sp, err := ce.Get(ctx, space)
	if err != nil {
		unlock()
		return err
	}
	if checkpoint != "" {
		if _, err := findCheckpoint(ctx, ce, space, checkpoint); err != nil {
			unlock()
			return err
		}
	}
	if err := s.audit(ctx, c, space, EventExport, map[string]any{"checkpoint": checkpoint}); err != nil {
		unlock()
		return err
	}
	if checkpoint == "" {
		checkpoint = exportPrefix + strconv.FormatInt(s.clock.Now().UnixNano(), 36)
		if _, err := s.takeCheckpoint(ctx, ce, sp, checkpoint); err != nil {
			unlock()
			return err
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			unlock := s.locks.Lock(space)
			defer unlock()
			if err := ce.DeleteCheckpoint(cctx, space, checkpoint); err != nil {
				s.log.Error("removing an export's implicit checkpoint", "space", space, "checkpoint", checkpoint, "err", err)
			}
		}()
	}
	// The stream may take long: the space is not held meanwhile; the
	// checkpoint does not change.
	unlock()
	return ce.Export(ctx, space, checkpoint, w)
}

// Import makes the space name from an archive (see Export), on this node,
// with the settings of its manifest under this node's rules (its template
// must exist here, its image too).
func (s *Service) Import(ctx context.Context, c Caller, name string, r io.Reader, maxBytes int64) (Space, error) {
	if err := s.authorize(ctx, c, name, ActCreate); err != nil {
		return Space{}, err
	}
	if err := ValidateName(name); err != nil {
		return Space{}, err
	}
	unlock := s.locks.Lock(name)
	defer unlock()
	if _, err := s.cfg.Engine.Get(ctx, name); err == nil {
		return Space{}, SpaceExists()
	}
	began := false
	resolve := func(m ArchiveManifest) (ContainerSpec, error) {
		if m.Version != ArchiveVersion {
			return ContainerSpec{}, Errorf(ErrInvalid, "archive version %d: this node reads version %d", m.Version, ArchiveVersion)
		}
		req := CreateRequest{Name: name, Template: m.Template, Image: m.Image, GPU: &m.GPU}
		if m.Memory > 0 {
			req.Memory = strconv.FormatInt(max(m.Memory>>10, 1), 10) + "k"
		}
		if m.CPUs > 0 {
			req.CPUs = &m.CPUs
		}
		spec, _, err := s.resolve(ctx, req)
		if err != nil {
			return ContainerSpec{}, err
		}
		meta := map[string]any{"from": m.Space, "checkpoint": m.Checkpoint, "template": spec.Template, "image": spec.Image}
		if err := s.audit(ctx, c, name, EventImport, meta); err != nil {
			return ContainerSpec{}, err
		}
		began = true
		// The image lets recovery hold the name (SettleCreate) against a
		// create the engine finishes after the node died; any image
		// that exists does, the archive's own base is not tagged yet.
		if err := s.beginIntent(ctx, Intent{Space: name, Kind: IntentCreate, Image: spec.Image}); err != nil {
			return ContainerSpec{}, fmt.Errorf("importing: %w", err)
		}
		return spec, nil
	}
	sp, err := s.cfg.Engine.Import(ctx, r, maxBytes, resolve)
	if began {
		s.endIntent(ctx, name)
	}
	if err != nil {
		return Space{}, err
	}
	now := s.clock.Now()
	if err := s.cfg.Store.MarkStarted(ctx, name, now); err != nil {
		s.log.Error("recording start", "space", name, "err", err)
	}
	sp.LastActivity = now
	if sp.Started.IsZero() {
		sp.Started = now
	}
	return sp, nil
}
