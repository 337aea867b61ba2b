// Command clawdspace runs a Clawdspace node (clawdspace serve) and is the
// workstation CLI that talks to nodes (create, list, exec, shell, ...).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/adam91holt/clawdspace/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := buildRoot(os.Getenv, cli.SystemIO()).ExecuteContext(ctx)
	stop()
	if msg := cli.ErrorMessage(err); msg != "" {
		fmt.Fprintln(os.Stderr, "clawdspace:", msg)
	}
	os.Exit(cli.ExitCode(err))
}
