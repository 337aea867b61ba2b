package spaces

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// EventRecovered is the audit row of what start-up recovery did about a
// crash of an earlier run of the node (actor "node").
const EventRecovered = "space.recovered"

// ActorNode is the audit actor of what the node does on its own at start-up.
const ActorNode = "node"

// Intent kinds: the operations that must be done or not done.
const (
	IntentCreate  = "create"
	IntentDestroy = "destroy"
)

// NodeRunEnv is the environment variable every process the node starts in
// a space carries: the run of the node that started it (RunID), so that
// the next run can tell its predecessors' commands from its own.
const NodeRunEnv = "CLAWDSPACE_NODE_RUN"

// Intent is an operation on a space that the node began and has not yet
// answered. A crash leaves it behind; Recover finishes or undoes it.
type Intent struct {
	Space string
	Kind  string // IntentCreate, IntentDestroy, IntentCheckpoint or IntentRestore
	// NodeRun is the run of the node that began it.
	NodeRun string
	// VolumeExisted (create) says the workspace volume was there before,
	// so undoing the create keeps it.
	VolumeExisted bool
	// Image (create) is the space's image.
	Image string
	// PoolMember (create) is the container ID of the warm pool member
	// the create claims (pool.go); empty for a cold create.
	PoolMember string
	// RemoveVolume (destroy) is what the destroy was asked.
	RemoveVolume bool
	// Checkpoint (checkpoint, restore) names the checkpoint.
	Checkpoint string
	// State (checkpoint, restore) is the space's state before: a crash
	// thaws a space the checkpoint froze, and a finished restore leaves
	// the space in it.
	State   Status
	Created time.Time
}

// IntentStore keeps intents. A space has at most one: beginning another
// replaces it (operations on a space are serialised by its lock).
type IntentStore interface {
	BeginIntent(ctx context.Context, in Intent) error
	// EndIntent removes the intent of space; a missing one is not an error.
	EndIntent(ctx context.Context, space string) error
	// Intents returns every intent, oldest first.
	Intents(ctx context.Context) ([]Intent, error)
}

// Stray is a process in a space that an earlier, dead run of the node
// started (an exec or terminal whose node was killed) and that start-up
// recovery killed.
type Stray struct {
	Space   string
	PID     int // host PID
	NodeRun string
	Command string
}

// creationSlack allows for the engine's and the node's clocks reading a
// little apart: a container made this long before its create intent is
// still taken as that create's.
const creationSlack = time.Second

// beginIntent records in before the engine is touched.
func (s *Service) beginIntent(ctx context.Context, in Intent) error {
	in.NodeRun, in.Created = s.cfg.NodeRun, s.clock.Now()
	if err := s.cfg.Store.BeginIntent(ctx, in); err != nil {
		return fmt.Errorf("recording %s intent: %w", in.Kind, err)
	}
	return nil
}

// endIntent clears the intent of space once the node answers. It runs
// with a fresh context: the request's may be gone, and a stale intent
// would undo finished work at the next start.
func (s *Service) endIntent(ctx context.Context, space string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.cfg.Store.EndIntent(cctx, space); err != nil {
		s.log.Error("clearing intent", "space", space, "err", err)
	}
}

// Recover repairs what a crash of an earlier run of the node left, before
// the node serves: it undoes creates and finishes destroys that had not
// been answered, kills the commands earlier runs started in the spaces,
// and reports workspace volumes that no space uses. What it does is logged
// at WARN and audited as space.recovered (actor "node"). Work it could not
// do (the engine failed) stays recorded and is tried again at the next
// start; only a store that cannot be read is an error.
func (s *Service) Recover(ctx context.Context) error {
	intents, err := s.cfg.Store.Intents(ctx)
	if err != nil {
		return fmt.Errorf("reading intents: %w", err)
	}
	for _, in := range intents {
		s.recoverIntent(ctx, in)
	}
	s.sweepCheckpoints(ctx)
	s.sweepPool(ctx)
	s.killStrays(ctx)
	s.reportOrphanVolumes(ctx)
	s.sweepUploads(ctx)
	return nil
}

// sweepUploads removes the partial files writes left when an earlier run
// of the node was killed midway (see Engine.WriteFile), in running spaces.
func (s *Service) sweepUploads(ctx context.Context) {
	list, err := s.cfg.Engine.List(ctx)
	if err != nil {
		s.log.Warn("listing spaces to sweep unfinished uploads", "err", err)
		return
	}
	// File times come from the real clock, whatever clock the service has.
	before := time.Now()
	for _, sp := range list {
		if sp.Status != StatusRunning {
			continue
		}
		// Each space has its own deadline: a space whose agent stalls must
		// not hold the node's start (it serves after Recover).
		sctx, cancel := context.WithTimeout(ctx, internalCallTimeout)
		removed, err := s.cfg.Engine.SweepUploads(sctx, sp.Name, before)
		cancel()
		if err != nil {
			s.log.Warn("sweeping unfinished uploads", "space", sp.Name, "err", err)
			continue
		}
		if len(removed) > 0 {
			s.log.Warn("removed files of uploads an earlier run of the node did not finish", "space", sp.Name, "paths", removed)
		}
	}
}

func (s *Service) recoverIntent(ctx context.Context, in Intent) {
	unlock := s.locks.Lock(in.Space)
	defer unlock()
	var done string
	var err error
	switch in.Kind {
	case IntentCreate:
		done, err = s.undoCreate(ctx, in)
	case IntentDestroy:
		done, err = s.finishDestroy(ctx, in)
	case IntentCheckpoint:
		done, err = s.recoverCheckpoint(ctx, in)
	case IntentRestore:
		done, err = s.finishRestore(ctx, in)
	default:
		done = "nothing (unknown operation)"
	}
	if err != nil {
		s.log.Error("recovering an interrupted operation; it is tried again at the next start",
			"space", in.Space, "operation", in.Kind, "err", err)
		return
	}
	s.log.Warn("recovered a space after a crash of the node",
		"space", in.Space, "operation", in.Kind, "since", in.Created, "done", done)
	s.recordRecovery(ctx, in.Space, map[string]any{
		"operation": in.Kind, "done": done, "nodeRun": in.NodeRun, "since": in.Created.UTC().Format(time.RFC3339Nano),
	})
	if err := s.cfg.Store.EndIntent(ctx, in.Space); err != nil {
		s.log.Error("clearing intent", "space", in.Space, "err", err)
	}
}

// undoCreate removes what an unanswered create made: its container, and
// its volume unless the volume was there before. The creator got no 201,
// so the space must not exist. A container older than the intent is not
// this create's (the create failed on the taken name) and is kept.
func (s *Service) undoCreate(ctx context.Context, in Intent) (string, error) {
	if err := s.cfg.Engine.SettleCreate(ctx, in.Space, in.Image); err != nil {
		return "", err
	}
	sp, err := s.cfg.Engine.Get(ctx, in.Space)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return "", err
	case in.PoolMember != "":
		// A claimed member was made before the intent: the space is the
		// create's only when it is that very container.
		if !strings.HasPrefix(in.PoolMember, sp.ID) || sp.ID == "" {
			return "nothing: the space is not the pool member the interrupted create claimed", nil
		}
	case sp.Created.Before(in.Created.Add(-creationSlack)):
		return "nothing: the space is older than the interrupted create", nil
	}
	removeVolume := !in.VolumeExisted
	err = s.cfg.Engine.Remove(ctx, in.Space, removeVolume)
	switch {
	case errors.Is(err, ErrNotFound):
		return "nothing: the create had made nothing yet", nil
	case err != nil:
		return "", err
	}
	if ferr := s.cfg.Store.Forget(ctx, in.Space); ferr != nil {
		s.log.Error("forgetting activity", "space", in.Space, "err", ferr)
	}
	if removeVolume {
		return "removed the half-made space and its volume", nil
	}
	return "removed the half-made space (kept the volume, which existed before)", nil
}

// finishDestroy completes an unanswered destroy: the user asked for it.
func (s *Service) finishDestroy(ctx context.Context, in Intent) (string, error) {
	err := s.cfg.Engine.Remove(ctx, in.Space, in.RemoveVolume)
	if ferr := s.cfg.Store.Forget(ctx, in.Space); ferr != nil {
		s.log.Error("forgetting activity", "space", in.Space, "err", ferr)
	}
	switch {
	case errors.Is(err, ErrNotFound):
		return "nothing: the destroy had finished", nil
	case err != nil:
		return "", err
	case in.RemoveVolume:
		return "finished the destroy (container and volume removed)", nil
	}
	return "finished the destroy (container removed, volume kept as asked)", nil
}

// killStrays kills the commands earlier runs of the node started.
func (s *Service) killStrays(ctx context.Context) {
	strays, err := s.cfg.Engine.KillStrays(ctx)
	if err != nil {
		s.log.Warn("looking for commands left running by an earlier run of the node", "err", err)
	}
	bySpace := map[string][]Stray{}
	for _, st := range strays {
		bySpace[st.Space] = append(bySpace[st.Space], st)
	}
	names := make([]string, 0, len(bySpace))
	for n := range bySpace {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		list := bySpace[name]
		pids := make([]int, 0, len(list))
		cmds := make([]string, 0, len(list))
		runs := map[string]bool{}
		for _, st := range list {
			pids = append(pids, st.PID)
			cmds = append(cmds, truncate(st.Command, 200))
			runs[st.NodeRun] = true
		}
		runList := make([]string, 0, len(runs))
		for r := range runs {
			runList = append(runList, r)
		}
		sort.Strings(runList)
		s.log.Warn("killed commands left running by an earlier run of the node",
			"space", name, "pids", pids, "commands", strings.Join(cmds, "; "), "nodeRuns", runList)
		s.recordRecovery(ctx, name, map[string]any{
			"operation": "exec", "done": fmt.Sprintf("killed %d process(es) left by an earlier run of the node", len(pids)),
			"pids": pids, "commands": cmds, "nodeRun": strings.Join(runList, ","),
		})
	}
}

// reportOrphanVolumes logs the workspace volumes no space uses. They are
// kept: a destroy without removeVolume leaves one on purpose, and a create
// of the same name takes it up again. Interrupted destroys are finished
// from their intents instead.
func (s *Service) reportOrphanVolumes(ctx context.Context) {
	vols, err := s.cfg.Engine.OrphanVolumes(ctx)
	if err != nil {
		s.log.Warn("listing workspace volumes", "err", err)
		return
	}
	if len(vols) == 0 {
		return
	}
	s.log.Info("workspace volumes without a space are kept (a create of the same name uses one again; "+
		"DELETE /api/spaces/NAME?removeVolume=true removes one)", "count", len(vols), "spaces", vols)
}

func (s *Service) recordRecovery(ctx context.Context, space string, meta map[string]any) {
	err := s.cfg.Store.Record(ctx, Event{Time: s.clock.Now(), Space: space, Type: EventRecovered, Actor: ActorNode, Meta: meta})
	if err != nil {
		s.log.Error("recording audit event "+EventRecovered, "space", space, "err", err)
	}
}
