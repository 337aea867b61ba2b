package engine

import (
	"context"
	"errors"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/spaces"
)

// attachErr explains a failed exec attach. The SDK reports a refused
// upgrade only as "unable to upgrade to tcp, received 500", whatever the
// engine said, so the container is looked at: removed meanwhile is the
// SDK's not-found error (a stale ID or a missing space to the caller),
// stopped or paused meanwhile is spaces.ErrNotRunning (the service resumes
// the space and tries once more); anything else stays as it was.
func (e *Engine) attachErr(ctx context.Context, id string, err error) error {
	if errors.Is(err, spaces.ErrNotRunning) {
		return err // attachExec knew it from the engine's 409
	}
	ictx, end := e.short(context.WithoutCancel(ctx))
	c, ierr := e.c.ContainerInspect(ictx, id, client.ContainerInspectOptions{})
	end(&ierr)
	switch {
	case ierr != nil && cerrdefs.IsNotFound(ierr):
		return ierr
	case ierr != nil:
		return err
	case c.Container.State == nil || !c.Container.State.Running || c.Container.State.Paused:
		return fmt.Errorf("attaching to an exec: %w (%w)", spaces.ErrNotRunning, err)
	}
	return err
}
