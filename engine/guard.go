package engine

import (
	"context"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

// EgressGuard owns the GuardEgress loop, so the node starts and stops it
// like its other background loops.
type EgressGuard struct {
	e    *Engine
	loop spaces.Loop
}

// NewEgressGuard returns a guard of e's spaces; nothing runs until Start.
func NewEgressGuard(e *Engine) *EgressGuard { return &EgressGuard{e: e} }

// Start runs GuardEgress until Close or until ctx ends. GuardEgress itself
// runs until ctx ends; the hourly pass only calls it again where it returns
// at once (egress not enforced). Starting twice does nothing.
func (g *EgressGuard) Start(ctx context.Context) {
	g.loop.Start(ctx, time.Hour, true, g.e.GuardEgress)
}

// Close stops the guard and waits for it; it is safe to call twice, or
// without Start.
func (g *EgressGuard) Close() { g.loop.Close() }
