package main

import (
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/adam91holt/clawdspace/cli"
)

// newRootCmd builds the command tree with the given output streams and no
// stdin; getenv is os.Getenv outside tests.
func newRootCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	return buildRoot(getenv, &cli.IO{In: strings.NewReader(""), Out: stdout, ErrOut: stderr})
}

// buildRoot builds the command tree: `serve` runs a node, every other
// command is the workstation CLI (package cli).
func buildRoot(getenv func(string) string, streams *cli.IO) *cobra.Command {
	root := &cobra.Command{
		Use:   "clawdspace",
		Short: "Self-hosted sandboxes (spaces) on your own machines",
		Long: `Clawdspace runs sandboxes ("spaces": containers with a volume at /workspace) on your
own machines. 'clawdspace serve' runs a node; the other commands talk to nodes.

Configuration: CLAWDSPACE_KEY (API key), CLAWDSPACE_HOSTS (known nodes),
CLAWDSPACE_SERVER (default node), or the config file ('clawdspace config' shows where).
Exit codes: 0 success, 1 error, 2 usage mistake; exec exits with the command's code.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.AddCommand(newServeCmd(getenv))
	cli.Register(root, &cli.Deps{
		IO:          streams,
		Config:      func() (*cli.Config, error) { return cli.LoadConfig(getenv) },
		OpenBrowser: cli.SystemBrowser(getenv),
		Version:     version,
	})
	return root
}
