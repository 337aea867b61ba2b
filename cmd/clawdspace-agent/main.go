// Command clawdspace-agent runs in every space (mounted read-only from the
// node) as the space's user. It dials the node's socket and runs what the
// node asks on that connection (see package agent); it exits when the
// connection ends.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/adam91holt/clawdspace/agent"
)

func main() {
	// It runs in every space: keep its memory small.
	debug.SetGCPercent(50)
	debug.SetMemoryLimit(32 << 20)
	socket := agent.SocketPath
	if len(os.Args) > 1 {
		socket = os.Args[1]
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := agent.Serve(ctx, socket); err != nil {
		fmt.Fprintln(os.Stderr, "clawdspace-agent:", err)
		os.Exit(1)
	}
}
