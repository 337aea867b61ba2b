package spaces

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Audit events of checkpoints and forks.
const (
	EventCheckpointCreate  = "checkpoint.create"
	EventCheckpointDelete  = "checkpoint.delete"
	EventCheckpointRestore = "checkpoint.restore"
	EventFork              = "space.fork"
)

// Intent kinds of checkpoints: a checkpoint freezes the space (a crash
// must thaw it), a restore replaces it (a crash must finish it).
const (
	IntentCheckpoint = "checkpoint"
	IntentRestore    = "restore"
)

// DefaultMaxCheckpoints is the per-space limit when Config.MaxCheckpoints
// is 0.
const DefaultMaxCheckpoints = 10

// forkPrefix names the implicit checkpoint a fork from a space makes; user
// names cannot start with '_', and start-up recovery removes any left.
const forkPrefix = "_fork-"

// Checkpoint is a space's root filesystem changes and /workspace, as they
// were at one instant. The engine keeps it (labels on its image and volume),
// so a restarted node finds it.
type Checkpoint struct {
	Space   string
	Name    string
	Created time.Time
	// Image and Template are the space's when it was taken.
	Image    string
	Template string
	// WorkspaceBytes and RootfsBytes are the sizes of its /workspace copy
	// and of the root filesystem changes.
	WorkspaceBytes int64
	RootfsBytes    int64
}

// Size is the disk the checkpoint uses (at most: a copy-on-write copy
// shares blocks with the space).
func (c Checkpoint) Size() int64 { return c.WorkspaceBytes + c.RootfsBytes }

// CheckpointTaken is a new checkpoint and how long the space was frozen
// while it was taken (zero for a space already paused or stopped).
type CheckpointTaken struct {
	Checkpoint
	Frozen time.Duration
}

// CheckpointList is a space's checkpoints, oldest first, with the limit.
type CheckpointList struct {
	Checkpoints []Checkpoint
	Limit       int
	TotalBytes  int64
}

// CheckpointEngine is what checkpoints need of an Engine (part of it).
type CheckpointEngine interface {
	// Checkpoint freezes a running space (a paused or stopped one is
	// already still), copies its /workspace and commits its root
	// filesystem, then thaws it. The checkpoint exists only once complete;
	// on any failure nothing of it is left (ErrDiskFull on a full disk).
	Checkpoint(ctx context.Context, space, name string) (CheckpointTaken, error)
	// Checkpoints lists a space's complete checkpoints, oldest first.
	Checkpoints(ctx context.Context, space string) ([]Checkpoint, error)
	// DeleteCheckpoint removes one; ErrNotFound when there is none.
	DeleteCheckpoint(ctx context.Context, space, name string) error
	// Restore puts the space back to the checkpoint: same name, settings
	// and volume; it ends in state (running, paused or stopped). It can be
	// called again after a crash at any point and finishes the restore.
	Restore(ctx context.Context, space, name string, state Status) error
	// Fork makes the space dst from src's checkpoint name, with src's
	// settings, and starts it. before is called once nothing of dst
	// exists yet and before anything is made (the create intent); ErrExists
	// when dst or its volume exists.
	Fork(ctx context.Context, src, name, dst string, before func() error) (Space, error)
	// SweepCheckpoints removes what unfinished checkpoints left (a copy
	// without its commit, an implicit fork checkpoint) and returns what it
	// removed.
	SweepCheckpoints(ctx context.Context) ([]string, error)
}

var checkpointNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$`)

// ValidateCheckpointName checks a checkpoint name: 1 to 40 letters, digits,
// '_' and '-', starting with a letter or digit.
func ValidateCheckpointName(name string) error {
	if !checkpointNameRE.MatchString(name) {
		return Errorf(ErrInvalid, "checkpoint name must be 1 to 40 letters, digits, '_' and '-', starting with a letter or digit")
	}
	return nil
}

// CheckpointNotFound is the error for a missing checkpoint.
func CheckpointNotFound(space, name string) error {
	return Errorf(ErrNotFound, "Checkpoint not found: %s@%s", space, name)
}

func (s *Service) maxCheckpoints() int {
	if s.cfg.MaxCheckpoints > 0 {
		return s.cfg.MaxCheckpoints
	}
	return DefaultMaxCheckpoints
}

// Checkpoints lists a space's checkpoints.
func (s *Service) Checkpoints(ctx context.Context, c Caller, space string) (CheckpointList, error) {
	if err := s.authorize(ctx, c, space, ActRead); err != nil {
		return CheckpointList{}, err
	}
	if err := ValidateName(space); err != nil {
		return CheckpointList{}, SpaceNotFound()
	}
	ce := s.cfg.Engine
	if _, err := s.cfg.Engine.Get(ctx, space); err != nil {
		return CheckpointList{}, err
	}
	list, err := ce.Checkpoints(ctx, space)
	if err != nil {
		return CheckpointList{}, err
	}
	out := CheckpointList{Checkpoints: visible(list), Limit: s.maxCheckpoints()}
	for _, cp := range out.Checkpoints {
		out.TotalBytes += cp.Size()
	}
	return out, nil
}

// visible drops the implicit checkpoints of forks and exports under way
// (names starting with '_', which users' names cannot).
func visible(list []Checkpoint) []Checkpoint {
	out := make([]Checkpoint, 0, len(list))
	for _, cp := range list {
		if !strings.HasPrefix(cp.Name, "_") {
			out = append(out, cp)
		}
	}
	return out
}

// CreateCheckpoint takes a checkpoint of a space, named name or, when name
// is empty, numbered (one more than the highest number in use).
func (s *Service) CreateCheckpoint(ctx context.Context, c Caller, space, name string) (CheckpointTaken, error) {
	if err := s.authorize(ctx, c, space, ActCheckpoint); err != nil {
		return CheckpointTaken{}, err
	}
	if err := ValidateName(space); err != nil {
		return CheckpointTaken{}, SpaceNotFound()
	}
	if name != "" {
		if err := ValidateCheckpointName(name); err != nil {
			return CheckpointTaken{}, err
		}
	}
	ce := s.cfg.Engine
	unlock := s.locks.Lock(space)
	defer unlock()
	sp, err := s.cfg.Engine.Get(ctx, space)
	if err != nil {
		return CheckpointTaken{}, err
	}
	list, err := ce.Checkpoints(ctx, space)
	if err != nil {
		return CheckpointTaken{}, err
	}
	list = visible(list)
	if len(list) >= s.maxCheckpoints() {
		return CheckpointTaken{}, Errorf(ErrConflict, "space %s has %d checkpoints, the most this node keeps per space: delete one first", space, len(list))
	}
	name, err = checkpointName(list, name)
	if err != nil {
		return CheckpointTaken{}, err
	}
	if err := s.audit(ctx, c, space, EventCheckpointCreate, map[string]any{"checkpoint": name}); err != nil {
		return CheckpointTaken{}, err
	}
	return s.takeCheckpoint(ctx, ce, sp, name)
}

// takeCheckpoint records the intent that thaws the space after a crash,
// then takes the checkpoint. The space's lock is held.
func (s *Service) takeCheckpoint(ctx context.Context, ce CheckpointEngine, sp Space, name string) (CheckpointTaken, error) {
	if err := s.beginIntent(ctx, Intent{Space: sp.Name, Kind: IntentCheckpoint, Checkpoint: name, State: sp.Status}); err != nil {
		return CheckpointTaken{}, err
	}
	defer s.endIntent(ctx, sp.Name)
	taken, err := ce.Checkpoint(ctx, sp.Name, name)
	if err != nil {
		return CheckpointTaken{}, err
	}
	s.log.Info("checkpoint taken", "space", sp.Name, "checkpoint", name, "frozen", taken.Frozen, "bytes", taken.Size())
	return taken, nil
}

// checkpointName returns want when it is free, or the next number.
func checkpointName(list []Checkpoint, want string) (string, error) {
	most := 0
	for _, cp := range list {
		if want != "" && cp.Name == want {
			return "", Errorf(ErrExists, "checkpoint %s already exists", want)
		}
		if n, err := strconv.Atoi(cp.Name); err == nil && n > most {
			most = n
		}
	}
	if want != "" {
		return want, nil
	}
	return strconv.Itoa(most + 1), nil
}

// DeleteCheckpoint removes one checkpoint of a space.
func (s *Service) DeleteCheckpoint(ctx context.Context, c Caller, space, name string) error {
	if err := s.authorize(ctx, c, space, ActCheckpoint); err != nil {
		return err
	}
	if ValidateName(space) != nil || ValidateCheckpointName(name) != nil {
		return CheckpointNotFound(space, name)
	}
	ce := s.cfg.Engine
	unlock := s.locks.Lock(space)
	defer unlock()
	if err := s.audit(ctx, c, space, EventCheckpointDelete, map[string]any{"checkpoint": name}); err != nil {
		return err
	}
	return ce.DeleteCheckpoint(ctx, space, name)
}

// Restore puts a space back to one of its checkpoints. A checkpoint taken
// with another image or template than the space has now is refused
// (ErrConflict, saying what differs) unless force is set.
func (s *Service) Restore(ctx context.Context, c Caller, space, name string, force bool) (Space, error) {
	if err := s.authorize(ctx, c, space, ActCheckpoint); err != nil {
		return Space{}, err
	}
	if ValidateName(space) != nil {
		return Space{}, SpaceNotFound()
	}
	if ValidateCheckpointName(name) != nil {
		return Space{}, CheckpointNotFound(space, name)
	}
	ce := s.cfg.Engine
	unlock := s.locks.Lock(space)
	defer unlock()
	sp, err := s.cfg.Engine.Get(ctx, space)
	if err != nil {
		return Space{}, err
	}
	cp, err := findCheckpoint(ctx, ce, space, name)
	if err != nil {
		return Space{}, err
	}
	if diff := checkpointDiff(sp, cp); len(diff) > 0 && !force {
		return Space{}, Errorf(ErrConflict, "checkpoint %s was taken with another %s; restore with force to use it anyway", name, strings.Join(diff, " and "))
	}
	if err := s.audit(ctx, c, space, EventCheckpointRestore, map[string]any{"checkpoint": name, "force": force}); err != nil {
		return Space{}, err
	}
	// A crash from here on is finished at the next start (Recover): the
	// space is never left half restored.
	if err := s.beginIntent(ctx, Intent{Space: space, Kind: IntentRestore, Checkpoint: name, State: sp.Status}); err != nil {
		return Space{}, err
	}
	if err := ce.Restore(ctx, space, name, sp.Status); err != nil {
		// The intent stays: the next start finishes the restore.
		return Space{}, err
	}
	s.endIntent(ctx, space)
	s.touch(ctx, space)
	return s.cfg.Engine.Get(ctx, space)
}

func findCheckpoint(ctx context.Context, ce CheckpointEngine, space, name string) (Checkpoint, error) {
	list, err := ce.Checkpoints(ctx, space)
	if err != nil {
		return Checkpoint{}, err
	}
	for _, cp := range list {
		if cp.Name == name {
			return cp, nil
		}
	}
	return Checkpoint{}, CheckpointNotFound(space, name)
}

// checkpointDiff says what of the space differs from when cp was taken.
func checkpointDiff(sp Space, cp Checkpoint) []string {
	var diff []string
	if cp.Image != "" && sp.Image != cp.Image {
		diff = append(diff, fmt.Sprintf("image (%s, the space has %s)", cp.Image, sp.Image))
	}
	if sp.Template != cp.Template {
		diff = append(diff, fmt.Sprintf("template (%q, the space has %q)", cp.Template, sp.Template))
	}
	return diff
}

// ParseFrom splits a fork source, "NAME" or "NAME@CHECKPOINT".
func ParseFrom(from string) (space, checkpoint string, err error) {
	space, checkpoint, at := strings.Cut(strings.TrimSpace(from), "@")
	if ValidateName(space) != nil {
		return "", "", Errorf(ErrInvalid, "from must be a space name or NAME@CHECKPOINT")
	}
	if at {
		if err := ValidateCheckpointName(checkpoint); err != nil {
			return "", "", err
		}
	}
	return space, checkpoint, nil
}

// Fork makes the space dst from the space src or one of its checkpoints
// (from is "NAME" or "NAME@CHECKPOINT"). It needs create on dst, and
// checkpoint and files on the source. The fork has the source's settings and is
// independent of it.
func (s *Service) Fork(ctx context.Context, c Caller, from, dst string) (Space, error) {
	if err := s.authorize(ctx, c, dst, ActCreate); err != nil {
		return Space{}, err
	}
	src, cpName, err := ParseFrom(from)
	if err != nil {
		return Space{}, err
	}
	// The fork gets every file of the source: checkpoint and files.
	if err := s.authorize(ctx, c, src, ActCheckpoint); err != nil {
		return Space{}, err
	}
	if err := s.authorize(ctx, c, src, ActFiles); err != nil {
		return Space{}, err
	}
	if err := ValidateName(dst); err != nil {
		return Space{}, err
	}
	if src == dst {
		return Space{}, SpaceExists()
	}
	ce := s.cfg.Engine
	// Both names are locked, in order, so two forks never deadlock.
	first, second := src, dst
	if second < first {
		first, second = second, first
	}
	defer s.locks.Lock(first)()
	defer s.locks.Lock(second)()
	sp, err := s.cfg.Engine.Get(ctx, src)
	if err != nil {
		return Space{}, err
	}
	if _, err := s.cfg.Engine.Get(ctx, dst); err == nil {
		return Space{}, SpaceExists()
	} else if !errors.Is(err, ErrNotFound) {
		return Space{}, err
	}
	if err := s.audit(ctx, c, dst, EventFork, map[string]any{"from": from}); err != nil {
		return Space{}, err
	}
	if cpName == "" {
		// An implicit checkpoint, removed once the fork is made.
		cpName = forkPrefix + dst
		_ = ce.DeleteCheckpoint(ctx, src, cpName) // one a crash left
		if _, err := s.takeCheckpoint(ctx, ce, sp, cpName); err != nil {
			return Space{}, err
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := ce.DeleteCheckpoint(cctx, src, cpName); err != nil {
				s.log.Error("removing a fork's implicit checkpoint", "space", src, "checkpoint", cpName, "err", err)
			}
		}()
	} else if _, err := findCheckpoint(ctx, ce, src, cpName); err != nil {
		return Space{}, err
	}
	began := false
	before := func() error {
		began = true
		// An image that exists lets recovery hold the name against a
		// create the engine finishes after the node died (SettleCreate).
		return s.beginIntent(ctx, Intent{Space: dst, Kind: IntentCreate, Image: s.cfg.DefaultImage})
	}
	fork, err := ce.Fork(ctx, src, cpName, dst, before)
	if began {
		s.endIntent(ctx, dst)
	}
	if err != nil {
		return Space{}, err
	}
	now := s.clock.Now()
	if err := s.cfg.Store.MarkStarted(ctx, dst, now); err != nil {
		s.log.Error("recording start", "space", dst, "err", err)
	}
	fork.LastActivity = now
	if fork.Started.IsZero() {
		fork.Started = now
	}
	return fork, nil
}

// recoverCheckpoint thaws a space an interrupted checkpoint froze (unless
// it was paused or stopped before); the half-made checkpoint itself is
// removed by the sweep.
func (s *Service) recoverCheckpoint(ctx context.Context, in Intent) (string, error) {
	if in.State != StatusRunning {
		return "nothing: the space was not running", nil
	}
	err := s.cfg.Engine.Resume(ctx, in.Space)
	switch {
	case errors.Is(err, ErrNotFound):
		return "nothing: the space is gone", nil
	case err != nil:
		return "", err
	}
	return "thawed the space the interrupted checkpoint froze", nil
}

// finishRestore finishes an interrupted restore.
func (s *Service) finishRestore(ctx context.Context, in Intent) (string, error) {
	if err := s.cfg.Engine.Restore(ctx, in.Space, in.Checkpoint, in.State); err != nil {
		return "", err
	}
	return "finished the restore of checkpoint " + in.Checkpoint, nil
}

// sweepCheckpoints removes what interrupted checkpoints left.
func (s *Service) sweepCheckpoints(ctx context.Context) {
	removed, err := s.cfg.Engine.SweepCheckpoints(ctx)
	if err != nil {
		s.log.Warn("sweeping unfinished checkpoints", "err", err)
	}
	if len(removed) > 0 {
		sort.Strings(removed)
		s.log.Warn("removed what unfinished checkpoints left", "removed", removed)
	}
}
