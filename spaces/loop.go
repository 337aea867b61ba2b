package spaces

import (
	"context"
	"sync"
	"time"
)

// Loop runs a pass every interval until closed: the one background-loop
// owner behind the Ingester and the Sleeper.
type Loop struct {
	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// Start runs pass every interval (first at once when now is set) until
// close or until ctx ends. Starting a started or closed loop does nothing.
func (l *Loop) Start(ctx context.Context, every time.Duration, now bool, pass func(context.Context)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started || l.closed {
		return
	}
	l.started = true
	ctx, l.cancel = context.WithCancel(ctx)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		if now {
			pass(ctx)
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				pass(ctx)
			}
		}
	}()
}

// Close stops the loop and waits for a pass under way to end; it is safe
// to call twice, or without start.
func (l *Loop) Close() {
	l.mu.Lock()
	l.closed = true
	cancel := l.cancel
	l.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	l.wg.Wait()
}
